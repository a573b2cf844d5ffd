"""The engine's decisions in words for staff: why a stage, why a flag.

Reason codes are decided by `lifecycle.rules.stage_for` (and stored on each StageChange);
flag reasons are worded from the numbers the last run stored on crm.StudentStage, with the
kept aggregates (StudentActivity) they came from.
"""

from __future__ import annotations

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from crm.models import StudentStage
from lifecycle.models import LifecycleSettings, StudentActivity
from lifecycle.rules import Thresholds

STAGE_REASON_LABELS = {
    "new_lead": gettext_lazy("new lead: no consultation, trial or contract yet"),
    "consulted": gettext_lazy("consulted, no trial or contract yet"),
    "trial": gettext_lazy("trial lesson booked or taken, no contract yet"),
    "closed_lost": gettext_lazy("closed as lost by a person"),
    "stale_lead": gettext_lazy("lead untouched for too long"),
    "signed": gettext_lazy("signed, not attending yet"),
    "not_started": gettext_lazy("signed, but no lesson attended since"),
    "not_started_long": gettext_lazy("signed long ago, never attended since"),
    "attending": gettext_lazy("attending lessons"),
    "silent": gettext_lazy("no attendance recently"),
    "silent_long": gettext_lazy("no attendance for a long time"),
    "refunded": gettext_lazy("contract refunded"),
    "ended_recently": gettext_lazy("contract ended recently, not renewed"),
    "ended_long_ago": gettext_lazy("contract ended long ago, not renewed"),
}


def stage_reason_label(code: str) -> str:
    return str(STAGE_REASON_LABELS.get(code, code))


def flag_reasons(
    flags: StudentStage, activity: StudentActivity | None, thresholds: Thresholds | None = None
) -> list[str]:
    """Why the student is flagged at_risk / renewal_due, in words (empty when not flagged).

    Pass the campus's thresholds when wording many students (a list page); otherwise they
    are read for this student's campus.
    """
    if activity is None or not (flags.at_risk or flags.renewal_due):
        return []
    if thresholds is None:
        from lifecycle.services.facts import thresholds_of

        row = LifecycleSettings.objects.filter(campus_id=flags.campus_id).first()
        thresholds = thresholds_of(row) if row else Thresholds()
    reasons: list[str] = []
    if flags.at_risk:
        recent, before = flags.risk_recent, flags.risk_before
        if before > 0 and recent * 100 <= before * (100 - thresholds.risk_drop_pct):
            reasons.append(
                _("attended %(recent)d lessons in the last %(days)d days against %(before)d before: -%(pct)d%%")
                % {
                    "recent": recent,
                    "days": thresholds.risk_window_days,
                    "before": before,
                    "pct": round((before - recent) * 100 / before),
                }
            )
        n = activity.consecutive_absences
        if thresholds.risk_consecutive_absences and n >= thresholds.risk_consecutive_absences:
            reasons.append(ngettext("%(n)d missed lesson in a row", "%(n)d missed lessons in a row", n) % {"n": n})
    if flags.renewal_due:
        hours = activity.active_hours_remaining
        if hours is not None and hours <= thresholds.renewal_hours:
            shown = f"{hours.normalize():f}" if hours == hours.to_integral() else f"{hours:f}"
            reasons.append(_("%(hours)s hours left") % {"hours": shown})
        until = activity.active_until
        if until is not None and (until - timezone.localdate()).days <= thresholds.renewal_days:
            reasons.append(_("contract ends on %(date)s") % {"date": until.isoformat()})
    return reasons
