from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ParentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "parents"
    verbose_name = _("Parent app")

    def ready(self) -> None:
        from crm.pages import on_followups
        from parents.views import trial_requests_section

        on_followups(trial_requests_section)
