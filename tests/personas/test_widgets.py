"""The condition builder widget: it offers each viewer exactly what compile_tree accepts from
them, and it works in any form through ConditionTreeField (the tag rules' page will use it)."""

from __future__ import annotations

import json

import pytest
from django import forms

from personas.conditions import FIELDS, compile_tree
from personas.forms import ConditionTreeField
from personas.widgets import ConditionTreeWidget, catalogue_for
from tests import factories

pytestmark = pytest.mark.django_db


def fields_of(catalogue):
    return {field["name"]: field for group in catalogue["groups"] for field in group["fields"]}


def test_a_manager_is_offered_their_campus_rows_and_no_campus_field(manager, campus_a, campus_b, front_desk_b):
    course_a = factories.CourseFactory(campus=campus_a, name="编程 A")
    factories.CourseFactory(campus=campus_b, name="编程 B")
    tag = factories.TagFactory(name="高意向")
    offered = fields_of(catalogue_for(manager))
    assert "campus" not in offered
    assert set(offered) == set(FIELDS) - {"campus"}
    assert offered["course"]["choices"] == [(str(course_a.pk), "编程 A")]
    assert str(front_desk_b.pk) not in [key for key, _label in offered["owner"]["choices"]]
    assert str(tag.pk) in [key for key, _label in offered["tag"]["choices"]]
    # Whatever is offered is accepted.
    for name in ("course", "owner", "tag"):
        for key, _label in offered[name]["choices"]:
            compile_tree({"all": [{"field": name, "op": "has", "value": key}]}, viewer=manager)


def test_an_admin_is_offered_every_campus(admin_user, campus_a, campus_b):
    offered = fields_of(catalogue_for(admin_user))
    assert {key for key, _label in offered["campus"]["choices"]} == {str(campus_a.pk), str(campus_b.pk)}


def test_a_widget_without_a_viewer_offers_nothing():
    assert catalogue_for(None)["groups"] == []


class RuleForm(forms.Form):
    """What a tag rule's page does: the field with the builder widget, given the viewer."""

    def __init__(self, *args, viewer, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["conditions"] = ConditionTreeField(viewer=viewer, widget=ConditionTreeWidget(count_url="/count/"))


def test_any_form_gets_the_builder_through_the_field(manager):
    form = RuleForm(viewer=manager)
    html = str(form["conditions"])
    assert "data-condition-builder" in html and 'data-count-url="/count/"' in html
    assert 'type="hidden" name="conditions"' in html
    assert "js/conditions.js" in str(form.media) and "css/conditions.css" in str(form.media)

    tree = {"all": [{"field": "at_risk", "op": "is", "value": True}]}
    assert RuleForm({"conditions": json.dumps(tree)}, viewer=manager).is_valid()
    refused = RuleForm(
        {"conditions": json.dumps({"all": [{"field": "campus", "op": "has", "value": 1}]})}, viewer=manager
    )
    assert not refused.is_valid() and "may not filter" in refused.errors["conditions"][0]
    # What was posted comes back as it was typed.
    assert "campus" in str(refused["conditions"])
