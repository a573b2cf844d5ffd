from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LifecycleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "lifecycle"
    verbose_name = _("Lifecycle")

    def ready(self) -> None:
        from crm.events import on_student_facts_changed
        from lifecycle.services.events import student_facts_changed

        # Every fact-changing crm service schedules the recomputation of its students after commit.
        on_student_facts_changed(student_facts_changed)
