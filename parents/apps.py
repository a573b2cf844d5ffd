from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ParentsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "parents"
    verbose_name = _("Parent app")

    def ready(self) -> None:
        from crm.events import on_student_facts_changed
        from crm.pages import on_followups
        from parents.services.referrals import student_facts_changed
        from parents.views import trial_requests_section

        on_followups(trial_requests_section)

        # A referred child who signs earns their inviter a reward; an inviter's child who signs
        # lets an owed reward be paid. Both are facts crm announces after commit.
        on_student_facts_changed(student_facts_changed)
