"""Segments in the admin: scoped like the pages, written through the service, the conditions
built with the segment page's widget and checked for the person saving them."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from crm.models import AuditAction, AuditEntry
from personas.models import Segment
from tests import factories

pytestmark = pytest.mark.django_db

DORMANT = {"all": [{"field": "stage", "op": "in", "value": ["dormant"]}]}


def login(client, user):
    client.force_login(user)
    return client


def test_a_manager_sees_their_campus_and_shared_segments(client, manager, campus_a, campus_b):
    mine = factories.SegmentFactory(campus=campus_a, name="本校分群")
    factories.SegmentFactory(campus=campus_b, name="别校分群")
    shared = factories.SegmentFactory(campus=None, name="共享分群")
    html = login(client, manager).get(reverse("admin:personas_segment_changelist")).content.decode()
    assert "本校分群" in html and "共享分群" in html and "别校分群" not in html
    assert "Stage is one of Lead" in html
    theirs = Segment.objects.get(name="别校分群")
    assert client.get(reverse("admin:personas_segment_change", args=[theirs.pk])).status_code == 404
    # A shared segment is read-only for a manager.
    page = client.get(reverse("admin:personas_segment_change", args=[shared.pk]))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert client.get(reverse("admin:personas_segment_change", args=[mine.pk])).status_code == 200


def test_the_front_desk_has_no_segment_admin_and_teachers_no_admin(client, front_desk, teacher, campus_a):
    segment = factories.SegmentFactory(campus=campus_a)
    login(client, front_desk)
    assert client.get(reverse("admin:personas_segment_changelist")).status_code == 403
    assert client.get(reverse("admin:personas_segment_change", args=[segment.pk])).status_code == 403
    login(client, teacher)
    response = client.get(reverse("admin:personas_segment_changelist"))
    assert response.status_code == 302 and "login" in response.url


def test_adding_goes_through_the_service(client, manager, campus_a):
    login(client, manager)
    page = client.get(reverse("admin:personas_segment_add")).content.decode()
    assert "data-condition-builder" in page and "js/conditions.js" in page
    assert 'name="campus"' not in page  # a manager's segment is their campus's
    response = client.post(
        reverse("admin:personas_segment_add"), {"name": "沉睡", "description": "", "conditions": json.dumps(DORMANT)}
    )
    assert response.status_code == 302
    segment = Segment.objects.get()
    assert (segment.campus, segment.created_by, segment.conditions) == (campus_a, manager, DORMANT)
    assert AuditEntry.objects.filter(action=AuditAction.SEGMENT_CREATE).count() == 1

    bad = {"all": [{"field": "campus", "op": "has", "value": campus_a.pk}]}
    response = client.post(
        reverse("admin:personas_segment_change", args=[segment.pk]),
        {"name": "沉睡", "description": "", "conditions": json.dumps(bad)},
    )
    assert response.status_code == 200 and "You may not filter on" in response.content.decode()
    segment.refresh_from_db()
    assert segment.conditions == DORMANT

    response = client.post(reverse("admin:personas_segment_delete", args=[segment.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Segment.objects.exists()
    assert AuditEntry.objects.filter(action=AuditAction.SEGMENT_DELETE).count() == 1


def test_an_admin_chooses_the_campus(client, admin_user, campus_b):
    login(client, admin_user)
    response = client.post(
        reverse("admin:personas_segment_add"),
        {"name": "中关村沉睡", "description": "", "campus": campus_b.pk, "conditions": json.dumps(DORMANT)},
    )
    assert response.status_code == 302
    assert Segment.objects.get().campus == campus_b
