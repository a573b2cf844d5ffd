from django.apps import AppConfig


class LifecycleConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "lifecycle"

    def ready(self) -> None:
        from crm.events import on_student_facts_changed
        from lifecycle.services.events import student_facts_changed

        # Every fact-changing crm service schedules the recomputation of its students after commit.
        on_student_facts_changed(student_facts_changed)
