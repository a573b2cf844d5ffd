"""The board filtered by a segment and by the profile's RFM segment and value tier: personas
contributes these filters to lifecycle's StudentFilter, and they mean what the builder means."""

from __future__ import annotations

import pytest
from django.urls import reverse

from crm.models import Stage
from crm.selectors import students_visible_to
from lifecycle.filters import StudentFilter
from personas.conditions import compile_tree
from personas.models import RfmSegment, ValueTier
from tests import factories
from tests.lifecycle.test_board import board, login, names, student

pytestmark = pytest.mark.django_db

DORMANT = {"all": [{"field": "stage", "op": "in", "value": ["dormant"]}]}


@pytest.fixture
def people(campus_a, campus_b):
    sleepy = student(campus_a, Stage.DORMANT, name="沉睡甲")
    rich = student(campus_a, Stage.ACTIVE, name="高价值乙")
    student(campus_a, Stage.LEAD, name="线索丙")
    student(campus_b, Stage.DORMANT, name="别校丁")
    factories.StudentProfileFactory(student=rich, rfm_segment=RfmSegment.CHAMPIONS, value_tier=ValueTier.HIGH)
    factories.StudentProfileFactory(student=sleepy, rfm_segment=RfmSegment.AT_RISK, value_tier=ValueTier.HIGH)
    return sleepy, rich


@pytest.mark.parametrize("role", ["front_desk", "manager"])
def test_the_board_shows_a_segments_members(client, request, role, people, campus_a):
    segment = factories.SegmentFactory(campus=campus_a, conditions=DORMANT)
    login(client, request.getfixturevalue(role))
    assert names(board(client, segment=segment.pk)) == {"沉睡甲"}
    assert names(board(client, segment=segment.pk, q="高价值")) == set()


def test_an_admins_shared_segment_shows_a_manager_only_their_campus(client, manager, people):
    shared = factories.SegmentFactory(campus=None, conditions=DORMANT)
    assert names(board(login(client, manager), segment=shared.pk)) == {"沉睡甲"}


def test_another_campus_segment_is_not_a_choice(client, manager, people, campus_b):
    theirs = factories.SegmentFactory(campus=campus_b, conditions=DORMANT)
    response = board(login(client, manager), segment=theirs.pk)
    assert str(theirs.pk) not in [
        str(value) for value, _label in response.context["filter"].form.fields["segment"].choices
    ]
    # The form drops a choice the viewer does not have: the board is not narrowed by it.
    assert names(response) == {"沉睡甲", "高价值乙", "线索丙"}


def test_profile_filters_mean_what_the_builders_conditions_mean(client, manager, people):
    login(client, manager)
    assert names(board(client, value_tier="high")) == {"沉睡甲", "高价值乙"}
    assert names(board(client, rfm_segment="champions", value_tier="high")) == {"高价值乙"}
    for field, value in (("value_tier", "high"), ("rfm_segment", "at_risk"), ("rfm_segment", "lost")):
        filtered = set(StudentFilter({field: value}, viewer=manager).qs)
        leaf = {"field": field, "op": "in", "value": [value]}
        assert filtered == set(students_visible_to(manager).filter(compile_tree(leaf, viewer=manager)))


def test_the_filters_are_on_the_board_form(client, manager, campus_a):
    factories.SegmentFactory(campus=campus_a, name="我的分群")
    html = login(client, manager).get(reverse("board")).content.decode()
    assert 'name="segment"' in html and "我的分群" in html
    assert 'name="rfm_segment"' in html and 'name="value_tier"' in html
