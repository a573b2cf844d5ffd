from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PersonasConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "personas"
    verbose_name = _("Personas")

    def ready(self) -> None:
        from crm.events import on_campus_created
        from crm.pages import on_followups
        from lifecycle.services.events import on_students_decided
        from personas import filters
        from personas.services.events import students_decided
        from personas.services.tag_rules import ship_defaults_to_new_campus
        from personas.views.followups import care_tasks_section

        # Once the lifecycle engine has decided students after a fact, their profiles follow.
        on_students_decided(students_decided)
        # A campus created through crm's service starts with the default tag rules.
        on_campus_created(ship_defaults_to_new_campus)
        # The board's student filter gains a segment, the RFM segment and the value tier.
        filters.register()
        # A detractor's care task sits in the consultant's follow-up list.
        on_followups(care_tasks_section)
