"""The API's permission matrix: every endpoint against every caller.

The endpoints are read from the URL conf, so an endpoint without an entry in RULES fails
`test_every_endpoint_has_a_rule`. Each call must be allowed (anything but 401/403/404/5xx: a
400 for the empty body is fine, it got past the permissions) or refused exactly as written;
and whatever it answers, the body never holds another campus's or family's data, nor a full
phone for a teacher."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.authtoken.models import Token

from crm.models import Guardian, Student
from crm.services.referrals import guardian_invite_code
from parents.models import ParentSession
from parents.services.sessions import session_open, session_revoke
from tests import factories

pytestmark = pytest.mark.django_db

OK = "ok"  # past the permissions: 2xx, or 400/409/422/429 for the empty body
ANON, EXPIRED, REVOKED = "anonymous", "expired_token", "revoked_token"
STAFF_A = ("front_desk", "teacher", "manager", "manager_token")
STAFF_B = ("front_desk_b", "teacher_b", "manager_b")
PARENTS = ("parent_a", "parent_b", "parent_two")
CALLERS = (ANON, EXPIRED, REVOKED, *STAFF_A, "admin", *STAFF_B, *PARENTS)
ROLE_OF = {
    "front_desk": "front_desk",
    "teacher": "teacher",
    "manager": "manager",
    "manager_token": "manager",
    "admin": "admin",
    "front_desk_b": "front_desk",
    "teacher_b": "teacher",
    "manager_b": "manager",
}


# -- the endpoints, from the URL conf -------------------------------------------------------


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> Iterator[tuple[str, str, Any]]:
    for p in patterns:
        if isinstance(p, URLResolver):
            ns = f"{namespace}{p.namespace}:" if p.namespace else namespace
            yield from _walk(p.url_patterns, prefix + str(p.pattern), ns)
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), f"{namespace}{p.name}", p.callback


def api_endpoints() -> dict[str, tuple[str, tuple[str, ...]]]:
    """URL name -> (route, the HTTP methods its view answers), for everything under /api/v1/."""
    found = {}
    for route, name, callback in _walk(get_resolver().url_patterns):
        if not route.startswith("api/v1/"):
            continue
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        methods = tuple(m for m in ("get", "post", "put", "patch", "delete") if view and hasattr(view, m))
        found[name] = (route, methods)
    return found


# -- the world every call runs in -------------------------------------------------------------


@dataclass
class World:
    campus_a: Any
    campus_b: Any
    student_a: Student  # 王小明, parent_a's child, campus A
    student_b: Student  # 乙校学生, campus B
    objects: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["objects"][name]
        except KeyError as exc:
            raise AttributeError(name) from exc


@pytest.fixture
def world(
    campus_a, campus_b, front_desk, teacher, manager, parent_a, parent_b, parent_two_campuses, course_a, course_b
):
    student_a = Student.objects.get(guardians=parent_a)
    student_b = factories.StudentFactory(
        name="乙校学生", campus=campus_b, guardians=[factories.GuardianFactory(phone="+8613900139009")]
    )
    contract = factories.ContractFactory(student=student_a, course=course_a, hours_bought=Decimal("20"))
    lesson = factories.LessonFactory(course=course_a, teacher=teacher, starts_at=timezone.now() + dt.timedelta(days=1))
    lesson.students.add(student_a)
    objects = {
        "guardian_a": parent_a,
        "course_a": course_a,
        "contract_a": contract,
        "lesson_a": lesson,
        "attendance_a": factories.AttendanceFactory(
            student=student_a, contract=contract, teacher=teacher, lesson_at=timezone.now() - dt.timedelta(days=2)
        ),
        "trial_a": factories.TrialLessonFactory(
            student=student_a, course=course_a, teacher=teacher, scheduled_at=timezone.now() + dt.timedelta(days=2)
        ),
        "consultation_a": factories.ConsultationFactory(student=student_a, consultant=front_desk),
        "segment_a": factories.SegmentFactory(campus=campus_a, created_by=manager),
        "tag": factories.TagFactory(),
    }
    for name, make in EXTRA_OBJECTS.items():
        objects[name] = make(locals())
    return World(campus_a, campus_b, student_a, student_b, objects)


# Objects later parts of the API need (campaigns, care tasks, invitations...), by name.
EXTRA_OBJECTS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "invite_code_a": lambda made: guardian_invite_code(made["parent_a"]),
}


def _campaign_a(ns: dict[str, Any]) -> Any:
    from campaigns.services.campaigns import CampaignInput, TemplateInput, campaign_save

    templates = [TemplateInput(channel="sms", text="{student}想念你")]
    data = CampaignInput(
        name="唤醒", goal="win_back", segment=ns["objects"]["segment_a"], channels=["sms"], templates=templates
    )
    return campaign_save(actor=ns["manager"], campus=ns["campus_a"], data=data)


EXTRA_OBJECTS["campaign_a"] = _campaign_a


# -- the callers ------------------------------------------------------------------------------


def headers_for(caller: str, request: pytest.FixtureRequest, client: Any) -> dict[str, str]:
    client.logout()
    if caller == ANON:
        return {}
    if caller in (EXPIRED, REVOKED):
        guardian = request.getfixturevalue("parent_a")
        tokens = session_open(guardian=guardian, via="sms")
        if caller == EXPIRED:
            ParentSession.objects.filter(pk=tokens.session.pk).update(
                access_expires_at=timezone.now() - dt.timedelta(seconds=1)
            )
        else:
            session_revoke(session=tokens.session)
        return {"HTTP_AUTHORIZATION": f"Bearer {tokens.access}"}
    if caller in PARENTS:
        fixture = {"parent_two": "parent_two_campuses"}.get(caller, caller)
        guardian = request.getfixturevalue(fixture)
        return {"HTTP_AUTHORIZATION": f"Bearer {session_open(guardian=guardian, via='sms').access}"}
    if caller == "manager_token":
        token, _ = Token.objects.get_or_create(user=request.getfixturevalue("manager"))
        return {"HTTP_AUTHORIZATION": f"Token {token.key}"}
    client.force_login(request.getfixturevalue({"admin": "admin_user"}.get(caller, caller)))
    return {}


# -- what each caller must never read -----------------------------------------------------------

CAMPUS_A_NAMES = ("王小明", "李小红", "张一")
CAMPUS_B_NAMES = ("乙校学生", "张二")
FAMILY_NAMES = {
    "parent_a": ("李小红", "张一", "张二", "乙校学生"),
    "parent_b": ("王小明", "张一", "张二", "乙校学生"),
    "parent_two": ("王小明", "李小红", "乙校学生"),
}
FULL_PHONES = (
    "13800138001",
    "138 0013 8001",
    "13800138002",
    "138 0013 8002",
    "13800138003",
    "138 0013 8003",
    "13900139009",
    "139 0013 9009",
)


def never_read(caller: str) -> tuple[str, ...]:
    if caller in STAFF_B:
        # Not parent_two's phone: that family has a child at campus B too, whose staff see its parent.
        forbidden: tuple[str, ...] = CAMPUS_A_NAMES + FULL_PHONES[:4]
    elif caller in STAFF_A:
        forbidden = CAMPUS_B_NAMES + FULL_PHONES[6:]
    elif caller in FAMILY_NAMES:
        own = {"parent_a": 0, "parent_b": 2, "parent_two": 4}[caller]
        forbidden = FAMILY_NAMES[caller] + tuple(p for i, p in enumerate(FULL_PHONES) if i // 2 != own // 2)
    elif caller == "admin":
        forbidden = ()
    else:
        forbidden = CAMPUS_A_NAMES + CAMPUS_B_NAMES + FULL_PHONES
    if ROLE_OF.get(caller) == "teacher":
        forbidden += FULL_PHONES
    return forbidden


# -- expectations -------------------------------------------------------------------------------

Expect = dict[str, Any]


def staff(*roles: str, other_campus: Any = 404) -> Expect:
    """Staff of these roles; campus B's staff of those roles get `other_campus` (404 for an
    object of campus A, OK for a list, which then must not show campus A)."""
    out: Expect = {ANON: 401, EXPIRED: 401, REVOKED: 401}
    for caller in (*STAFF_A, "admin", *STAFF_B):
        allowed = ROLE_OF[caller] in roles or ROLE_OF[caller] == "admin"
        out[caller] = (other_campus if caller in STAFF_B else OK) if allowed else 403
    for caller in PARENTS:
        out[caller] = 403
    return out


ALL_ROLES = ("front_desk", "teacher", "manager", "admin")


def parent(*, own_child: bool) -> Expect:
    """Parents only; for an endpoint about parent_a's child, other families get a 404."""
    out: Expect = {ANON: 401, EXPIRED: 401, REVOKED: 401}
    for caller in (*STAFF_A, "admin", *STAFF_B):
        out[caller] = 403
    out.update(parent_a=OK, parent_b=404 if own_child else OK, parent_two=404 if own_child else OK)
    return out


def public() -> Expect:
    """No login needed; a parent token that no longer works is still a 401 (it was sent)."""
    return {caller: 401 if caller in (EXPIRED, REVOKED) else OK for caller in CALLERS}


def signed_only() -> Expect:
    """The SMS gateway's webhooks: refused to everyone without the gateway's signature."""
    return dict.fromkeys(CALLERS, 403)


@dataclass
class Rule:
    methods: dict[str, Expect]
    args: Callable[[World], dict[str, Any]] = lambda w: {}


FRONT_OFFICE = ("front_desk", "manager")
TEACHING = ("teacher", "manager")

RULES: dict[str, Rule] = {
    # crm: the staff records (crm/api/); a teacher works on their own trials and lessons
    "api_course_list": Rule({"get": staff(*ALL_ROLES, other_campus=OK)}),
    "api_consultation_list": Rule(
        {"get": staff(*FRONT_OFFICE, other_campus=OK), "post": staff(*FRONT_OFFICE, other_campus=OK)}
    ),
    "api_trial_list": Rule({"get": staff(*ALL_ROLES, other_campus=OK), "post": staff(*FRONT_OFFICE, other_campus=OK)}),
    "api_trial_feedback": Rule({"post": staff(*TEACHING)}, lambda w: {"pk": w.trial_a.pk}),
    "api_trial_cancel": Rule({"post": staff(*FRONT_OFFICE)}, lambda w: {"pk": w.trial_a.pk}),
    "api_contract_list": Rule(
        {"get": staff(*FRONT_OFFICE, other_campus=OK), "post": staff(*FRONT_OFFICE, other_campus=OK)}
    ),
    "api_contract_refund": Rule({"post": staff("manager")}, lambda w: {"pk": w.contract_a.pk}),
    "api_attendance_list": Rule({"get": staff(*ALL_ROLES, other_campus=OK)}),
    "api_lesson_attendance": Rule({"post": staff(*TEACHING)}, lambda w: {"pk": w.lesson_a.pk}),
    # attendance_a is two days old: its teacher may no longer correct it, a manager may.
    "api_attendance_correct": Rule({"post": {**staff(*TEACHING), "teacher": 403}}, lambda w: {"pk": w.attendance_a.pk}),
    # personas
    "api_student_persona": Rule({"get": staff(*ALL_ROLES)}, lambda w: {"pk": w.student_a.pk}),
    "api_segment_list": Rule({"get": staff("manager", other_campus=OK), "post": staff("manager", other_campus=OK)}),
    "api_segment_count": Rule({"post": staff("manager", other_campus=OK)}),
    "api_segment_detail": Rule(
        {"get": staff("manager"), "put": staff("manager"), "patch": staff("manager")}, lambda w: {"pk": w.segment_a.pk}
    ),
    "api_segment_members": Rule({"get": staff("manager")}, lambda w: {"pk": w.segment_a.pk}),
    # campaigns: the staff API (as the pages: managers of the campus, administrators)
    "api_campaign_list": Rule({"get": staff("manager", other_campus=OK)}),
    "api_campaign_detail": Rule({"get": staff("manager")}, lambda w: {"pk": w.campaign_a.pk}),
    **{
        f"api_campaign_{action}": Rule({"post": staff("manager")}, lambda w: {"pk": w.campaign_a.pk})
        for action in ("dry_run", "launch", "pause", "resume", "cancel")
    },
    # the staff API: students, guardians, tags
    "api_student_list": Rule(
        {"get": staff(*ALL_ROLES, other_campus=OK), "post": staff("front_desk", "manager", other_campus=OK)}
    ),
    "api_student_detail": Rule(
        {"get": staff(*ALL_ROLES), "patch": staff("front_desk", "manager")}, lambda w: {"pk": w.student_a.pk}
    ),
    "api_student_close_lost": Rule({"post": staff("front_desk", "manager")}, lambda w: {"pk": w.student_a.pk}),
    "api_student_tag_add": Rule({"post": staff("front_desk", "manager")}, lambda w: {"pk": w.student_a.pk}),
    "api_student_tag_remove": Rule(
        {"delete": staff("front_desk", "manager")}, lambda w: {"pk": w.student_a.pk, "tag_id": w.tag.pk}
    ),
    "api_student_guardian_add": Rule({"post": staff("front_desk", "manager")}, lambda w: {"pk": w.student_a.pk}),
    "api_guardian_list": Rule({"get": staff(*ALL_ROLES, other_campus=OK)}),
    "api_guardian_detail": Rule(
        {"get": staff(*ALL_ROLES), "patch": staff("front_desk", "manager")}, lambda w: {"pk": w.guardian_a.pk}
    ),
    "api_tag_list": Rule({"get": staff("front_desk", "manager", other_campus=OK)}),
    # campaigns: the gateway's webhooks
    "api_sms_receipts": Rule({"post": signed_only()}),
    "api_sms_inbound": Rule({"post": signed_only()}),
    # the parent API
    "parent_api:auth_code": Rule({"post": public()}),
    "parent_api:auth_login": Rule({"post": public()}),
    "parent_api:auth_wechat": Rule({"post": public()}),
    "parent_api:auth_refresh": Rule({"post": public()}),
    "parent_api:auth_logout": Rule({"post": parent(own_child=False)}),
    "parent_api:me": Rule({"get": parent(own_child=False)}),
    "parent_api:children": Rule({"get": parent(own_child=False)}),
    "parent_api:child": Rule({"get": parent(own_child=True)}, lambda w: {"pk": w.student_a.pk}),
    "parent_api:child_attendance": Rule({"get": parent(own_child=True)}, lambda w: {"pk": w.student_a.pk}),
    "parent_api:child_courses": Rule({"get": parent(own_child=True)}, lambda w: {"pk": w.student_a.pk}),
    "parent_api:trial_requests": Rule({"post": parent(own_child=True)}, lambda w: {"pk": w.student_a.pk}),
    "parent_api:preferences": Rule({"get": parent(own_child=False), "patch": parent(own_child=False)}),
    "parent_api:unsubscribe": Rule({"post": parent(own_child=False)}),
    "parent_api:data": Rule({"get": parent(own_child=False)}),
    "parent_api:satisfaction": Rule({"get": parent(own_child=False)}),
    "parent_api:child_satisfaction": Rule({"post": parent(own_child=True)}, lambda w: {"pk": w.student_a.pk}),
    "parent_api:referral": Rule({"get": parent(own_child=False)}),
    "parent_api:referral_invitations": Rule({"get": parent(own_child=False)}),
    "parent_api:invite": Rule({"get": public()}, lambda w: {"code": w.invite_code_a}),
    "parent_api:invite_lead": Rule({"post": public()}, lambda w: {"code": w.invite_code_a}),
}


def test_every_endpoint_has_a_rule() -> None:
    endpoints = api_endpoints()
    missing = sorted(set(endpoints) - set(RULES))
    assert not missing, f"endpoints without a permission rule: {missing}"
    stale = sorted(set(RULES) - set(endpoints))
    assert not stale, f"rules for endpoints that no longer exist: {stale}"
    for name, (route, methods) in endpoints.items():
        assert set(RULES[name].methods) == set(methods), (name, route, methods)


def _url(route: str, args: dict[str, Any]) -> str:
    import re

    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(args[m.group(1)]), route)


def _call(client: Any, method: str, url: str, headers: dict[str, str]) -> Any:
    if method == "get":
        return client.get(url, **headers)
    return getattr(client, method)(url, data=json.dumps({}), content_type="application/json", **headers)


@pytest.mark.parametrize("name", sorted(RULES))
def test_every_caller_is_allowed_or_refused_as_written(name: str, world: World, client, request, settings) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"auth_ip": "10000/min", "auth_phone": "10000/hour", "invite_ip": "10000/hour"},
    }
    endpoints = api_endpoints()
    if name not in endpoints:
        pytest.fail(f"{name} is not in the URL conf")
    route, _ = endpoints[name]
    rule = RULES[name]
    url = _url(route, rule.args(world))
    wrong = []
    for method, expect in rule.methods.items():
        for caller in CALLERS:
            response = _call(client, method, url, headers_for(caller, request, client))
            status = response.status_code
            wanted = expect[caller]
            passed = status < 500 and status not in (401, 403, 404, 405) if wanted == OK else status == wanted
            if not passed:
                wrong.append(
                    f"{method.upper()} {url} as {caller}: {status}, wanted {wanted}: {response.content[:200]!r}"
                )
                continue
            text = response.content.decode(errors="replace")
            leaked = [s for s in never_read(caller) if s in text]
            if leaked:
                wrong.append(f"{method.upper()} {url} as {caller} shows {leaked}")
            if status >= 400 and "json" in response.get("Content-Type", ""):
                body = response.json()
                if not (isinstance(body, dict) and {"code", "message", "fields"} <= set(body)):
                    wrong.append(f"{method.upper()} {url} as {caller}: {status} not in the one error shape: {body}")
    assert not wrong, "\n".join(wrong)


def test_the_guardian_fixtures_are_the_families_the_matrix_means(world: World) -> None:
    # The sentinels above are these families' names and phones: a fixture change must not
    # quietly make the leak checks look for words that are never there.
    assert sorted(Guardian.objects.values_list("phone", flat=True)) == [
        "+8613800138001",
        "+8613800138002",
        "+8613800138003",
        "+8613900139009",
    ]
    assert set(Student.objects.values_list("name", flat=True)) == {*CAMPUS_A_NAMES, *CAMPUS_B_NAMES}
