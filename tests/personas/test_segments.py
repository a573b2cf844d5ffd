"""Segments: the services (who may write what, checked and audited), the selectors (members as
the viewer sees them) and the doors that refuse bad conditions with a message."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from crm.models import AuditAction, AuditEntry, Stage
from personas.models import Segment
from personas.selectors import segment_get, segment_members, segments_visible_to
from personas.services.segments import segment_create, segment_delete, segment_update
from tests import factories

pytestmark = pytest.mark.django_db

DORMANT = {"all": [{"field": "stage", "op": "in", "value": ["dormant"]}]}


def test_a_manager_saves_a_segment_of_their_campus_audited(manager, campus_a, campus_b):
    segment = segment_create(actor=manager, name=" 沉睡学员 ", conditions=DORMANT, campus=None)
    assert (segment.name, segment.campus, segment.created_by) == ("沉睡学员", campus_a, manager)
    entry = AuditEntry.objects.get(action=AuditAction.SEGMENT_CREATE)
    assert entry.actor == manager and entry.detail["segment"] == str(segment.pk)

    with pytest.raises(PermissionDenied):
        segment_create(actor=manager, name="别的校区", conditions=DORMANT, campus=campus_b)


def test_an_admin_chooses_a_campus_or_every_campus(admin_user, campus_b):
    shared = segment_create(actor=admin_user, name="全校沉睡", conditions=DORMANT)
    of_b = segment_create(actor=admin_user, name="全校沉睡", conditions=DORMANT, campus=campus_b)
    assert shared.campus is None and of_b.campus == campus_b


@pytest.mark.parametrize("actor", ["front_desk", "teacher"])
def test_only_managers_and_admins_build(request, actor):
    with pytest.raises(PermissionDenied):
        segment_create(actor=request.getfixturevalue(actor), name="x", conditions=DORMANT)


def test_bad_conditions_and_names_are_refused_with_a_message(manager):
    with pytest.raises(ValidationError) as caught:
        segment_create(actor=manager, name="", conditions={"all": [{"field": "nope", "op": "in", "value": []}]})
    errors = caught.value.message_dict
    assert "name" in errors
    assert "nope" in errors["conditions"][0]
    assert caught.value.error_dict["conditions"][0].params == {"path": "0"}

    segment_create(actor=manager, name="重名", conditions=DORMANT)
    with pytest.raises(ValidationError) as caught:
        segment_create(actor=manager, name="重名", conditions=DORMANT)
    assert "name" in caught.value.message_dict
    assert Segment.objects.count() == 1


def test_update_and_delete_by_the_campus_manager_only(manager, manager_b, admin_user, front_desk):
    segment = segment_create(actor=manager, name="沉睡", conditions=DORMANT)
    for outsider in (manager_b, front_desk):
        with pytest.raises(PermissionDenied):
            segment_update(actor=outsider, segment=segment, name="x", conditions=DORMANT)
        with pytest.raises(PermissionDenied):
            segment_delete(actor=outsider, segment=segment)

    churned = {"any": [{"field": "stage", "op": "in", "value": ["churned"]}]}
    segment = segment_update(actor=manager, segment=segment, name="流失", conditions=churned, description="赢回")
    assert (segment.name, segment.conditions, segment.description) == ("流失", churned, "赢回")
    assert AuditEntry.objects.filter(action=AuditAction.SEGMENT_UPDATE).count() == 1
    segment_update(actor=manager, segment=segment, name="流失", conditions=churned, description="赢回")
    assert AuditEntry.objects.filter(action=AuditAction.SEGMENT_UPDATE).count() == 1  # nothing changed

    shared = segment_create(actor=admin_user, name="共享", conditions=DORMANT)
    with pytest.raises(PermissionDenied):
        segment_update(actor=manager, segment=shared, name="改", conditions=DORMANT)

    segment_delete(actor=manager, segment=segment)
    assert not Segment.objects.filter(pk=segment.pk).exists()
    assert AuditEntry.objects.filter(action=AuditAction.SEGMENT_DELETE).count() == 1


def test_who_sees_which_segments(manager, manager_b, front_desk, teacher, admin_user, campus_a, campus_b):
    mine = factories.SegmentFactory(campus=campus_a)
    theirs = factories.SegmentFactory(campus=campus_b)
    shared = factories.SegmentFactory(campus=None)
    assert set(segments_visible_to(manager)) == {mine, shared}
    assert set(segments_visible_to(front_desk)) == {mine, shared}
    assert set(segments_visible_to(manager_b)) == {theirs, shared}
    assert set(segments_visible_to(teacher)) == set()
    assert set(segments_visible_to(admin_user)) == {mine, theirs, shared}
    with pytest.raises(Exception) as caught:
        segment_get(viewer=manager_b, segment_id=mine.pk)
    assert caught.type.__name__ == "Http404"


def test_members_are_the_viewers_students_even_in_an_admins_segment(manager, manager_b, admin_user, campus_a, campus_b):
    a = factories.StudentFactory(campus=campus_a, stage=Stage.DORMANT)
    b = factories.StudentFactory(campus=campus_b, stage=Stage.DORMANT)
    factories.StudentFactory(campus=campus_a, stage=Stage.ACTIVE)
    shared = segment_create(actor=admin_user, name="全校沉睡", conditions=DORMANT)
    assert set(segment_members(viewer=admin_user, segment=shared)) == {a, b}
    assert set(segment_members(viewer=manager, segment=shared)) == {a}
    assert set(segment_members(viewer=manager_b, segment=shared)) == {b}

    # A campus segment never reaches beyond its campus, even for an administrator.
    of_a = segment_create(actor=admin_user, name="望京沉睡", conditions=DORMANT, campus=campus_a)
    assert set(segment_members(viewer=admin_user, segment=of_a)) == {a}


def test_an_admins_campus_segment_names_only_that_campus_rows(admin_user, campus_a, campus_b):
    course_b = factories.CourseFactory(campus=campus_b)
    conditions = {"all": [{"field": "course", "op": "has", "value": course_b.pk}]}
    with pytest.raises(ValidationError) as caught:
        segment_create(actor=admin_user, name="望京编程", conditions=conditions, campus=campus_a)
    assert "no such value" in caught.value.message_dict["conditions"][0]
    assert segment_create(actor=admin_user, name="中关村编程", conditions=conditions, campus=campus_b).pk
    assert segment_create(actor=admin_user, name="全校编程", conditions=conditions).campus is None
