"""Everything we hold on a family, as JSON, for the parent to download (PIPL art. 45).

Read in a constant number of queries per kind of record; the download itself is audited."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Model
from django.utils import timezone

from campaigns.models import ConsentRecord, Message
from crm.models import Attendance, AuditAction, Consultation, Contract, Guardian, StudentTag, TrialLesson
from crm.phones import phone_display
from crm.services.audit import audit
from parents.models import ParentSession, ReferralReward, TrialRequest
from parents.selectors import children_of
from personas.models import SatisfactionAnswer


def _rows(objects: Iterable[Model], fields: list[str]) -> list[dict[str, Any]]:
    out = []
    for obj in objects:
        row: dict[str, Any] = {}
        for field in fields:
            value: Any = obj
            for part in field.split("__"):
                value = getattr(value, part, None) if value is not None else None
            row[field] = value.isoformat() if hasattr(value, "isoformat") else value
        out.append(row)
    return out


def _message_text(message: Message) -> str:
    # A login code is the parent's to know at the time, not to keep in a file.
    return "" if message.holds_secret else message.text


@transaction.atomic
def family_data_export(*, guardian: Guardian) -> dict[str, Any]:
    children = list(children_of(guardian))
    ids = [c.pk for c in children]
    data: dict[str, Any] = {
        "exported_at": timezone.now().isoformat(),
        "guardian": {
            "name": guardian.name,
            "phone": phone_display(guardian.phone),
            "relation": guardian.relation,
            "email": guardian.email,
            "wechat_openid": guardian.wechat_openid,
            "invite_code": guardian.invite_code,
            "created_at": guardian.created_at.isoformat(),
        },
        "children": _rows(
            children,
            ["id", "name", "gender", "birth_date", "grade", "school", "campus__name", "channel", "created_at"],
        ),
        "tags": _rows(
            StudentTag.objects.filter(student_id__in=ids).select_related("tag__group"),
            ["student_id", "tag__group__name", "tag__name", "source", "created_at"],
        ),
        "consultations": _rows(
            Consultation.objects.filter(student_id__in=ids).order_by("pk"),
            ["student_id", "consulted_at", "channel", "content", "intent", "outcome"],
        ),
        "trial_lessons": _rows(
            TrialLesson.objects.filter(student_id__in=ids).select_related("course").order_by("pk"),
            ["student_id", "course__name", "scheduled_at", "status", "rating", "comment", "recommended_level"],
        ),
        "contracts": _rows(
            Contract.objects.filter(student_id__in=ids).select_related("course").order_by("pk"),
            [
                "student_id",
                "course__name",
                "hours_bought",
                "hours_consumed",
                "amount",
                "paid_amount",
                "signed_at",
                "valid_until",
                "status",
                "refund_amount",
            ],
        ),
        "attendance": _rows(
            Attendance.objects.filter(student_id__in=ids).select_related("contract__course").order_by("pk"),
            ["student_id", "contract__course__name", "lesson_at", "status", "hours", "feedback"],
        ),
        "trial_requests": _rows(
            TrialRequest.objects.filter(guardian=guardian).order_by("pk"),
            ["student_id", "subject", "wished_at", "note", "status", "created_at"],
        ),
        "consents": _rows(
            ConsentRecord.objects.filter(guardian=guardian).order_by("pk"),
            ["channel", "granted", "source", "wording", "recorded_at"],
        ),
        "messages": [
            {"channel": m.channel, "category": m.category, "at": m.created_at.isoformat(), "text": _message_text(m)}
            for m in Message.objects.filter(guardian=guardian).order_by("pk")
        ],
        "logins": _rows(
            ParentSession.objects.filter(guardian=guardian).order_by("pk"), ["created_at", "via", "revoked_at"]
        ),
    }
    data["satisfaction"] = _rows(
        SatisfactionAnswer.objects.filter(guardian=guardian).order_by("pk"),
        ["student_id", "score", "reason", "answered_at"],
    )
    # The invited families are not this family's data: only what this family earned.
    data["referral_rewards"] = _rows(
        ReferralReward.objects.filter(guardian=guardian).order_by("pk"), ["hours", "status", "created_at"]
    )
    audit(actor=None, guardian=guardian, action=AuditAction.PARENT_DATA_EXPORT)
    return data
