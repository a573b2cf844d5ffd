"""Referral rewards (转介绍): when a child a parent invited signs, the inviting parent gets the
campus's bonus hours, once.

`referral_rewards_apply(student_ids)` runs after any fact about these students changed (the
listener `student_facts_changed` below, registered in ParentsConfig.ready, schedules the task
`parents.apply_referral_rewards` after commit). It is idempotent: a referred student earns at most
one `ReferralReward` (a unique student, so two workers racing write one), and an owed reward is
paid under its row lock. A reward is owed while the inviter's family has no active contract in
their home campus to credit; it is paid when one of their children signs (a fact about that
child, which reaches this same service).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from crm.models import AuditAction, Campus, Contract, ContractStatus, Guardian, Role, Student, User
from crm.roles import require_campus, require_role
from crm.services.audit import audit
from crm.services.contracts import contract_bonus_hours_add
from crm.services.families import guardian_home_campus_id
from parents.models import ReferralReward, ReferralSettings
from parents.selectors import signed_contract_exists

DEFAULT_REWARD_HOURS = ReferralSettings._meta.get_field("reward_hours").default
MAX_REWARD_HOURS = Decimal("100")


def student_facts_changed(student_ids: list[int]) -> None:
    """crm's listener (after commit): a referred child may have signed, or an inviter's child."""
    from parents.tasks import apply_referral_rewards

    apply_referral_rewards.delay(list(student_ids))


def reward_hours_for(campus_id: int) -> Decimal:
    hours = ReferralSettings.objects.filter(campus_id=campus_id).values_list("reward_hours", flat=True).first()
    return DEFAULT_REWARD_HOURS if hours is None else hours


def contract_to_credit(guardian: Guardian) -> Contract | None:
    """Where an inviter's bonus hours go: their child's active contract with the most hours left,
    in their home campus."""
    home = guardian_home_campus_id(guardian)
    if home is None:
        return None
    return (
        Contract.objects.filter(student__guardians=guardian, student__campus_id=home, status=ContractStatus.ACTIVE)
        .annotate(left=F("hours_bought") - F("hours_consumed"))
        .order_by("-left", "pk")
        .first()
    )


def referral_rewards_apply(student_ids: Iterable[int]) -> int:
    """Earn and pay the referral rewards these students' facts call for; how many were paid."""
    ids = sorted(set(student_ids))
    # An import announces thousands of students at once; few of them are referred or inviters.
    return sum(_rewards_apply_batch(ids[start : start + BATCH]) for start in range(0, len(ids), BATCH))


BATCH = 5000


def _rewards_apply_batch(ids: list[int]) -> int:
    earned = (
        Student.objects.filter(pk__in=ids, referred_by__isnull=False, referral_reward__isnull=True)
        .filter(signed_contract_exists())
        .values_list("pk", "referred_by_id", "campus_id")
    )
    paid = sum(_reward_earn(student_id, guardian_id, campus_id) for student_id, guardian_id, campus_id in earned)
    # An owed reward waits for its inviter's family to have an active contract: one of these
    # students may be the inviter's child who just signed.
    owed = (
        ReferralReward.objects.filter(status=ReferralReward.Status.OWED, guardian__students__in=ids)
        .values_list("pk", flat=True)
        .distinct()
    )
    paid += sum(_reward_pay(pk) for pk in list(owed))
    return paid


@transaction.atomic
def _reward_earn(student_id: int, guardian_id: int, campus_id: int) -> int:
    """The referred student's one reward, by the rule of the campus they signed at (0: none)."""
    hours = reward_hours_for(campus_id)
    if hours <= 0:
        return 0
    try:
        with transaction.atomic():
            # A second worker blocks here until the first commits, then finds the row taken.
            reward = ReferralReward.objects.create(
                student_id=student_id, guardian_id=guardian_id, hours=hours, status=ReferralReward.Status.OWED
            )
    except IntegrityError:
        return 0
    return _reward_pay(reward.pk)


@transaction.atomic
def _reward_pay(reward_id: int) -> int:
    reward = (
        ReferralReward.objects.select_for_update(of=("self",))
        .select_related("guardian")
        .filter(pk=reward_id, status=ReferralReward.Status.OWED)
        .first()
    )
    if reward is None:  # paid by another worker meanwhile
        return 0
    contract = contract_to_credit(reward.guardian)
    if contract is None:
        return 0
    try:
        contract_bonus_hours_add(
            contract=contract,
            hours=reward.hours,
            reason=f"referral of student {reward.student_id}",
            guardian=reward.guardian,
        )
    except ValidationError:  # the contract ended meanwhile, or is full: stays owed, tried again later
        return 0
    reward.status = ReferralReward.Status.APPLIED
    reward.contract = contract
    reward.applied_at = timezone.now()
    reward.save(update_fields=["status", "contract", "applied_at"])
    return 1


def reward_rule_text(hours: Decimal) -> str:
    """The campus's rule in words, for the inviting parent."""
    if hours <= 0:
        return _("This campus gives no reward for referrals at the moment.")
    return _("When a child you invited signs up, you get %(hours)s bonus lesson hours.") % {
        "hours": f"{hours.normalize():f}"
    }


def referral_settings_ensure() -> None:
    """A ReferralSettings row (the default reward) for every campus that has none."""
    missing = Campus.objects.filter(referral_settings__isnull=True).values_list("pk", flat=True)
    ReferralSettings.objects.bulk_create([ReferralSettings(campus_id=pk) for pk in missing], ignore_conflicts=True)


@transaction.atomic
def referral_settings_update(*, actor: User, campus: Campus, reward_hours: Decimal) -> ReferralSettings:
    """Set the campus's referral reward; a manager of the campus or an administrator."""
    require_role(actor, Role.MANAGER)
    require_campus(actor, campus.pk)
    if not reward_hours.is_finite() or reward_hours != reward_hours.quantize(Decimal("0.1")):
        raise ValidationError({"reward_hours": _("Use at most %(places)d decimal place(s).") % {"places": 1}})
    if not Decimal(0) <= reward_hours <= MAX_REWARD_HOURS:
        raise ValidationError(
            {"reward_hours": _("Give between 0 and %(max)s hours; 0 gives no reward.") % {"max": MAX_REWARD_HOURS}}
        )
    ReferralSettings.objects.get_or_create(campus=campus)
    row = ReferralSettings.objects.select_for_update().get(campus=campus)
    before = row.reward_hours
    if before == reward_hours:
        return row
    row.reward_hours = reward_hours
    row.save(update_fields=["reward_hours", "updated_at"])
    audit(
        actor=actor,
        action=AuditAction.PARENT_SETTINGS_UPDATE,
        campus=campus.code,
        changes=f"referral reward_hours: {before} → {reward_hours}",
    )
    return row
