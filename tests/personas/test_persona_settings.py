"""A campus's value-tier cut-offs: one audited service behind the admin; new cut-offs score the
campus again after commit; managers change their own campus's only."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse

from crm.models import AuditAction, AuditEntry, Campus, Contract, Course, User
from personas.models import PersonaSettings, StudentProfile
from personas.services.persona_settings import persona_settings_update
from personas.services.profiles import profiles_recompute
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def five_signed(campus_a: Campus) -> list[int]:
    """Five students paying 100..500: with the default cut-offs (80 %, 40 %) one high, two medium."""
    course = Course.objects.create(campus=campus_a, name="数学", subject="数学", price_per_hour=100)
    ids = []
    for i in range(1, 6):
        student = factories.StudentFactory(campus=campus_a, guardians=[])
        Contract.objects.create(
            student=student,
            course=course,
            hours_bought=10,
            amount=100 * i,
            paid_amount=Decimal(100 * i),
            signed_at=dt.datetime(2026, 3, 1, tzinfo=dt.UTC),
        )
        ids.append(student.pk)
    profiles_recompute(full=True)
    return ids


def tiers(ids: list[int]) -> list[str]:
    rows = StudentProfile.objects.in_bulk(ids)
    return [rows[sid].value_tier for sid in ids]


def admin_client(user: User) -> Client:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def test_new_cut_offs_score_the_campus_again(
    five_signed: list[int], manager: User, campus_a: Campus, django_capture_on_commit_callbacks
) -> None:
    assert tiers(five_signed) == ["low", "low", "medium", "medium", "high"]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        persona_settings_update(actor=manager, campus=campus_a, tier_high_above_pct=50, tier_medium_above_pct=10)
    assert len(callbacks) == 1  # the scoring is a task after commit, not part of the write
    assert tiers(five_signed) == ["medium", "medium", "high", "high", "high"]
    entry = AuditEntry.objects.get(action=AuditAction.PERSONA_SETTINGS_UPDATE)
    assert entry.actor == manager and "tier_high_above_pct: 80 → 50" in entry.detail["changes"]


def test_the_cut_offs_must_be_ordered(manager: User, campus_a: Campus) -> None:
    with pytest.raises(ValidationError) as caught:
        persona_settings_update(actor=manager, campus=campus_a, tier_high_above_pct=40, tier_medium_above_pct=60)
    assert "tier_medium_above_pct" in caught.value.message_dict
    with pytest.raises(ValidationError) as caught:
        persona_settings_update(actor=manager, campus=campus_a, tier_high_above_pct=100)
    assert "tier_high_above_pct" in caught.value.message_dict
    assert not AuditEntry.objects.filter(action=AuditAction.PERSONA_SETTINGS_UPDATE).exists()


def test_only_a_manager_of_the_campus_or_an_administrator(
    manager_b: User, front_desk: User, teacher: User, admin_user: User, campus_a: Campus
) -> None:
    for actor in (manager_b, front_desk, teacher):
        with pytest.raises(PermissionDenied):
            persona_settings_update(actor=actor, campus=campus_a, tier_high_above_pct=70)
    persona_settings_update(actor=admin_user, campus=campus_a, tier_high_above_pct=70)
    assert PersonaSettings.objects.get(campus=campus_a).tier_high_above_pct == 70


def test_the_admin_saves_through_the_service(
    five_signed: list[int], manager: User, campus_a: Campus, django_capture_on_commit_callbacks
) -> None:
    client = admin_client(manager)
    assert client.get(reverse("admin:personas_personasettings_changelist")).status_code == 200
    row = PersonaSettings.objects.get(campus=campus_a)
    url = reverse("admin:personas_personasettings_change", args=[row.pk])
    schedule = {"satisfaction_after_lessons": 8, "satisfaction_every_days": 90}
    response = client.post(url, {"tier_high_above_pct": 30, "tier_medium_above_pct": 50, **schedule})
    assert response.status_code == 200  # the form again, with the reason on the field
    assert "tier_medium_above_pct" in response.context["adminform"].form.errors
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"tier_high_above_pct": 50, "tier_medium_above_pct": 10, **schedule})
    assert response.status_code == 302
    assert tiers(five_signed) == ["medium", "medium", "high", "high", "high"]
    assert AuditEntry.objects.filter(action=AuditAction.PERSONA_SETTINGS_UPDATE, actor=manager).count() == 1


def test_another_campus_and_other_roles_are_refused_in_the_admin(
    manager_b: User, front_desk: User, campus_a: Campus
) -> None:
    row = PersonaSettings.objects.create(campus=campus_a)
    url = reverse("admin:personas_personasettings_change", args=[row.pk])
    response = admin_client(manager_b).get(url)
    assert response.status_code in (302, 404)  # Django's admin: not found for this viewer
    assert row.campus.name not in response.content.decode()
    assert admin_client(front_desk).get(url).status_code in (302, 403)
