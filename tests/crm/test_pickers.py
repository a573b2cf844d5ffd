"""Relation and grade are chosen from a list on every staff form; the columns stay free text,
so an imported word the list lacks survives an edit."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import reverse

from crm.models import Campus, Student, User
from tests import factories

pytestmark = pytest.mark.django_db


def client_for(user: User) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    client.force_login(user)
    return client


def select(html: str, name: str) -> str:
    found = re.search(rf'<select name="{name}"[^>]*>(.*?)</select>', html, re.S)
    assert found, f"no <select name={name}>"
    return found.group(1)


def test_admin_add_offers_relation_and_grade_pickers_and_preselects_no_channel(manager: User) -> None:
    html = client_for(manager).get(reverse("admin:crm_student_add")).content.decode()
    assert '<option value="外婆">' in select(html, "relation")
    assert '<option value="初三">' in select(html, "grade")
    channels = select(html, "channel")
    assert '<option value="" selected>' in channels
    assert channels.count("selected") == 1


def test_admin_change_keeps_an_imported_grade_the_list_lacks(manager: User, campus_a: Campus) -> None:
    student = factories.StudentFactory(campus=campus_a, grade="学前班")
    html = client_for(manager).get(reverse("admin:crm_student_change", args=[student.pk])).content.decode()
    grades = select(html, "grade")
    assert '<option value="学前班" selected>学前班</option>' in grades
    assert '<option value="高三">' in grades
    assert '<option value="母亲">' in select(html, "new_guardian_relation")


def test_the_student_page_adds_a_parent_with_a_relation_picker(front_desk: User, campus_a: Campus) -> None:
    student: Student = factories.StudentFactory(campus=campus_a)
    html = client_for(front_desk).get(reverse("student_detail", args=[student.pk])).content.decode()
    assert '<option value="爷爷">' in select(html, "g-relation")
