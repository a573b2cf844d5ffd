"""The product speaks Simplified Chinese whatever the browser says, and English on request.

Every other test runs in English (the autouse fixture in tests/conftest.py); here the
real default is restored. The walk at the end opens every staff page and every admin page
as each role and looks for English left in the Chinese UI.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings as django_settings
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone, translation

from campaigns.models import CallTask, Campaign, CampaignMember, CampaignTemplate, MarketingSettings, Message
from campaigns.services.consent import consent_record, unsubscribe_token
from crm.models import Stage, Student, StudentStage, Tag, User
from lifecycle.models import StageChange
from lifecycle.services.activity import activity_refresh
from lifecycle.services.facts import settings_ensure
from parents.models import TrialRequest
from personas.models import CareTask, PersonaSettings, SatisfactionAnswer, Segment, TagRule
from personas.services.overview import overview_refresh
from personas.services.tag_rules import tag_rules_ship_defaults
from tests.crm.test_admin import build_world
from tests.factories import StudentProfileFactory

CATALOGUE = Path(django_settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
ENGLISH_BROWSER = "en-US,en;q=0.9"
CJK = re.compile(r"[\u3400-\u9fff]")


@pytest.fixture
def chinese_default(settings) -> None:
    settings.LANGUAGE_CODE = "zh-hans"


def browser(user: User | None = None, accept_language: str = ENGLISH_BROWSER) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE=accept_language)
    if user is not None:
        client.force_login(user)
    return client


# --- the default and the switch ------------------------------------------------------------


def test_login_page_is_chinese_without_accept_language(chinese_default: None, client: Client) -> None:
    html = client.get(reverse("login")).content.decode()
    assert "登录" in html
    assert "Log in" not in html
    assert '<html lang="zh-hans">' in html


def test_an_english_browser_still_reads_chinese(chinese_default: None, front_desk: User) -> None:
    for page in (reverse("login"), reverse("followups")):
        client = browser(front_desk if page != reverse("login") else None)
        response = client.get(page)
        html = response.content.decode()
        assert '<html lang="zh-hans">' in html, page
        assert response["Content-Language"] == "zh-hans"
    assert "跟进" in html
    assert "Follow-ups" not in html


def test_english_is_one_click_away_and_remembered(chinese_default: None, front_desk: User) -> None:
    client = browser(front_desk, accept_language="zh-CN,zh;q=0.9")
    menu = client.get(reverse("followups")).content.decode()
    assert 'name="language" value="en"' in menu  # the switch in the menu

    answer = client.post(reverse("set_language"), {"language": "en", "next": reverse("followups")})
    assert answer.status_code == 302
    assert answer.cookies[django_settings.LANGUAGE_COOKIE_NAME]["max-age"] >= 30 * 24 * 3600  # outlives the tab
    for page in ("followups", "student_list", "board"):
        html = client.get(reverse(page)).content.decode()
        assert '<html lang="en">' in html, page
    assert "Follow-ups" in client.get(reverse("followups")).content.decode()

    client.post(reverse("set_language"), {"language": "zh-hans", "next": reverse("followups")})
    html = client.get(reverse("student_list")).content.decode()
    assert '<html lang="zh-hans">' in html
    assert "学员" in html


def test_a_language_we_do_not_speak_falls_back_to_chinese(chinese_default: None, front_desk: User) -> None:
    client = browser(front_desk)
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "fr"
    assert '<html lang="zh-hans">' in client.get(reverse("followups")).content.decode()


def test_catalogue_is_compiled() -> None:
    """The committed django.mo carries the translations (a fuzzy or missing entry would not)."""
    with translation.override("zh-hans"):
        assert translation.gettext("Follow-ups") == "跟进"
        assert translation.gettext("Lead pool") == "公海"
        assert translation.ngettext("%(n)s error", "%(n)s errors", 2) % {"n": 2} == "2 个错误"
        assert translation.gettext("at risk") == "流失预警"


# --- 403 and 404 ----------------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["production", "make-run-debug"])
def test_not_found_is_a_product_page(
    chinese_default: None, settings, debug: bool, front_desk: User, campus_b, teacher_b: User, front_desk_b: User
) -> None:
    settings.DEBUG = debug
    elsewhere = build_world(campus_b, teacher_b, front_desk_b)
    client = browser(front_desk)
    for path in (reverse("student_detail", args=[elsewhere.student.pk]), "/no/such/page/"):
        response = client.get(path)
        html = response.content.decode()
        assert response.status_code == 404, path
        assert "页面不存在" in html, path
        assert 'class="topbar"' in html and reverse("followups") in html, path  # the menu
        assert "Page not found" not in html and "Using the URLconf" not in html, path


@pytest.mark.parametrize("debug", [False, True], ids=["production", "make-run-debug"])
def test_forbidden_is_a_product_page(chinese_default: None, settings, debug: bool, teacher: User) -> None:
    settings.DEBUG = debug
    response = browser(teacher).get(reverse("followups"))
    html = response.content.decode()
    assert response.status_code == 403
    assert "无权访问" in html
    assert 'class="topbar"' in html and reverse("teacher_today") in html
    assert "Forbidden" not in html


def test_a_missing_slash_still_redirects(chinese_default: None, front_desk: User) -> None:
    response = browser(front_desk).get("/followups")
    assert response.status_code == 301
    assert response["Location"] == "/followups/"


# --- the catalogue ----------------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str
    msgstr: list[str] = field(default_factory=list)
    plural: str = ""
    fuzzy: bool = False


def read_catalogue(path: Path = CATALOGUE) -> list[Entry]:
    """The entries of a .po file (enough of the format for our own catalogue)."""
    entries: list[Entry] = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        parts: dict[str, list[str]] = {}
        key, fuzzy = "", False
        for line in block.splitlines():
            if line.startswith("#,") and "fuzzy" in line:
                fuzzy = True
            elif line.startswith("#") or not line.strip():
                continue
            elif line.startswith('"'):
                parts[key].append(json.loads(line))
            else:
                key, _, rest = line.partition(" ")
                parts[key] = [json.loads(rest)]
        if "msgid" not in parts:
            continue
        msgid = "".join(parts["msgid"])
        if not msgid:
            continue  # the header
        strings = ["".join(v) for k, v in parts.items() if k.startswith("msgstr")]
        entries.append(Entry(msgid, strings, "".join(parts.get("msgid_plural", [])), fuzzy))
    return entries


def test_catalogue_has_no_empty_or_fuzzy_entry() -> None:
    entries = read_catalogue()
    assert len(entries) > 300
    empty = [e.msgid for e in entries if not all(e.msgstr)]
    fuzzy = [e.msgid for e in entries if e.fuzzy]
    assert empty == [] and fuzzy == []


PLACEHOLDER = re.compile(r"%\(\w+\)[sdf]|%[sdf]|\{\w*\}")
OUTSIDE_WORD = r"(?<![A-Za-z0-9_])", r"(?![A-Za-z0-9_])"


def english_patterns() -> dict[str, re.Pattern[str]]:
    """A pattern per English text of the catalogue whose translation differs from it (text kept
    as it is, like the "English" of the language switch, is left out). A placeholder matches
    anything; a text with only a few letters outside its placeholders is too vague to look for."""
    patterns: dict[str, re.Pattern[str]] = {}
    for entry in read_catalogue():
        for text in filter(None, (entry.msgid, entry.plural)):
            if text in entry.msgstr:
                continue
            literals = PLACEHOLDER.split(text)
            if len(re.sub(r"[^A-Za-z]", "", "".join(literals))) < (2 if len(literals) == 1 else 4):
                continue
            body = ".+?".join(re.escape(part) for part in literals)
            patterns[text] = re.compile(OUTSIDE_WORD[0] + body + OUTSIDE_WORD[1], re.IGNORECASE)
    return patterns


class VisibleText(HTMLParser):
    """What a person reads: text outside scripts and styles, and the attributes a browser shows."""

    # Not `alt`: the only image is the admin's search icon, whose alt Django hard-codes.
    SHOWN_ATTRIBUTES = ("title", "placeholder", "aria-label")

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.hidden = 0
        # Elements marked translate="no" (HTML's own "not words"): the JSON of a tag rule's
        # conditions and the field keys beside it are code a person types, in any language.
        self.code: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "template"):
            self.hidden += 1
        values = dict(attrs)
        if values.get("translate") == "no":
            self.code.append(tag)
            self.hidden += 1
        for name in self.SHOWN_ATTRIBUTES:
            if values.get(name):
                self.texts.append(values[name] or "")
        if tag == "input" and values.get("type") in ("submit", "button") and values.get("value"):
            self.texts.append(values["value"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "template") and self.hidden:
            self.hidden -= 1
        if self.code and tag == self.code[-1]:
            self.code.pop()
            self.hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden and data.strip():
            self.texts.append(" ".join(data.split()))


def visible_texts(html: str) -> list[str]:
    parser = VisibleText()
    parser.feed(html)
    return parser.texts


# English that no catalogue can reach: a third-party app's name not marked for translation.
UPSTREAM_ENGLISH = {"Task Name", "以 Task Name"}  # django-celery-beat's PeriodicTask.name
# Names rather than words: time zones ("America/New York") and task names ("lifecycle.pool_sweep").
IDENTIFIER = re.compile(r"^[A-Za-z_]+(?:[./][A-Za-z_ -]+)+$")


# str() of a datetime (UTC, with seconds), where the admin's formats show local time in words.
RAW_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


def english_in(html: str, patterns: dict[str, re.Pattern[str]]) -> list[str]:
    found = []
    for text in visible_texts(html):
        if RAW_TIMESTAMP.search(text) or text in ("None", "True", "False"):
            found.append(f"a raw Python value in {text!r}")
        if not re.search("[A-Za-z]", text) or text in UPSTREAM_ENGLISH or IDENTIFIER.match(text):
            continue
        found += [f"{msgid!r} in {text!r}" for msgid, pattern in patterns.items() if pattern.search(text)]
        if "object (" in text:
            found.append(f"a raw object name in {text!r}")
    return found


def test_the_check_finds_what_it_looks_for() -> None:
    patterns = english_patterns()
    assert english_in("<th>At risk</th>", patterns)
    assert english_in("<label>以 at risk</label>", patterns)
    assert english_in('<input type="submit" value="Save consultation">', patterns)
    assert english_in("<td>Student_guardians object (304)</td>", patterns)
    assert english_in("<div>2026-12-02 05:26:00.123+00:00</div>", patterns)
    assert english_in("<div>None</div>", patterns)
    assert english_in('<a title="Next follow-up">x</a>', patterns)
    assert not english_in("<th>流失预警</th><script>var at_risk = 'At risk';</script>", patterns)
    assert not english_in('<div class="board-card at-risk" data-stage="lead">学生1</div>', patterns)
    assert not english_in('<textarea translate="no">{"field": "grade", "op": "is"}</textarea>', patterns)
    assert english_in('<p><code translate="no">grade</code> Grade</p>', patterns)


# --- the walk -----------------------------------------------------------------------------------


def build_chinese_world(campus_a: Any, campus_b: Any, teacher: User, front_desk: User) -> SimpleNamespace:
    """One of everything, named in Chinese (so English found on a page is the product's own)."""
    world = build_world(campus_a, teacher, front_desk)
    Tag.objects.filter(pk=world.studenttag.tag_id).update(name="高意向")
    settings_ensure()
    activity_refresh([world.student.pk])
    StageChange.objects.create(
        student=world.student,
        from_stage=Stage.LEAD,
        to_stage=Stage.CONSULTING,
        changed_at=timezone.now(),
        reason="咨询",
        source="event",
    )
    # Dates on the stage row, so a page that shows them raw is caught.
    StudentStage.objects.filter(student=world.student).update(changed_at=timezone.now(), recheck_at=timezone.now())
    world.phone = world.guardian.phone
    # A persona profile, so the card shows its segment, tier and behaviour (with a time slot).
    StudentProfileFactory(student=world.student)
    # The default rules, which show every kind of condition the defaults use in words.
    tag_rules_ship_defaults(campus_ids=[campus_a.pk])
    world.tagrule = TagRule.objects.filter(campus=campus_a).order_by("pk").first()
    PersonaSettings.objects.get_or_create(campus=campus_a)
    # The other campus's overview is a snapshot, so the walk sees its "as of" and the live one.
    overview_refresh([campus_b.pk])
    world.other_campus = campus_b.pk
    # A message, so the messages' admin shows a row with its statuses and dates.
    Message.objects.create(
        category="marketing",
        channel="sms",
        campus=campus_a,
        recipient=world.phone,
        text="课程提醒",
        idempotency_key="walk",
    )
    world.segment = Segment.objects.create(
        name="沉睡学员",
        campus=campus_a,
        conditions={
            "all": [
                {"field": "stage", "op": "in", "value": ["dormant"]},
                {"field": "at_risk", "op": "is", "value": True},
            ]
        },
    )
    build_campaigns(world, campus_a, front_desk)
    # A parent's unhappy answer: the follow-ups show its care task, the card its figures.
    answer = SatisfactionAnswer.objects.create(
        student=world.student, guardian=world.guardian, score=3, reason="上课时间总变", answered_at=timezone.now()
    )
    world.caretask = CareTask.objects.create(student=world.student, consultant=front_desk, answer=answer)
    world.trialrequest = TrialRequest.objects.create(
        guardian=world.guardian,
        student=world.student,
        campus=world.student.campus,
        wished_at=timezone.now() + dt.timedelta(days=2),
        note="周末上午",
    )
    return world


def build_campaigns(world: SimpleNamespace, campus: Any, front_desk: User) -> None:
    """A draft (its preview and dry run), a finished campaign with results and a call task, a
    consent with its proof and a family's unsubscribe link."""
    consent_record(
        guardian=world.guardian, channel="sms", granted=True, source="staff", wording="同意接收短信", actor=front_desk
    )
    MarketingSettings.objects.get_or_create(campus=campus)
    everyone = Segment.objects.create(name="全部学员", campus=campus, conditions={"all": []})
    world.draft = Campaign.objects.create(
        campus=campus, name="寒假唤醒", goal="win_back", segment=everyone, channels=["sms", "email", "call"]
    )
    for channel in ("sms", "email", "call"):
        CampaignTemplate.objects.create(
            campaign=world.draft, channel=channel, subject="好久不见", text="{学员}好久不见"
        )
    now = timezone.now()
    world.campaign = Campaign.objects.create(
        campus=campus,
        name="续费提醒",
        goal="renewal",
        segment=everyone,
        channels=["sms", "call"],
        holdout_pct=10,
        status="done",
        launched_at=now,
        resolved_at=now,
        finished_at=now,
    )
    CampaignTemplate.objects.create(campaign=world.campaign, channel="sms", text="{学员}的课时快用完了")
    CampaignMember.objects.create(campaign=world.campaign, student=world.student, group="A", stage_at_launch="active")
    Message.objects.create(
        category="marketing",
        channel="sms",
        campus=campus,
        campaign=world.campaign,
        variant="A",
        student=world.student,
        guardian=world.guardian,
        recipient=world.phone,
        text="课时快用完了",
        idempotency_key="walk-campaign",
        status="suppressed",
        suppressed_reason="opted_out",
    )
    world.calltask = CallTask.objects.create(
        campaign=world.campaign, student=world.student, consultant=front_desk, script="问候家长"
    )
    world.unsubscribe_token = unsubscribe_token(world.guardian.pk, "email")


def staff_requests(world: SimpleNamespace) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, data) for every staff page and the fragments the pages load."""
    student, job = world.student.pk, world.importjob.pk
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("get", reverse("home"), {}),
        ("get", reverse("lead_capture"), {}),
        ("post", reverse("lead_capture"), {}),
        ("get", reverse("lead_check_phone"), {"phone": world.phone}),
        ("get", reverse("lead_check_phone"), {"phone": "13800138000"}),
        ("get", reverse("followups"), {}),
        ("get", reverse("student_list"), {}),
        ("get", reverse("student_list"), {"q": "学生"}),
        ("get", reverse("student_detail", args=[student]), {}),
        ("get", reverse("student_detail", args=[student]), {"do": "first_call"}),
        ("get", reverse("student_timeline", args=[student]), {"page": 1}),
        ("get", reverse("api_student_persona", args=[student]), {}),
        ("get", reverse("teacher_today"), {}),
        ("get", reverse("teacher_today"), {"date": world.lesson.starts_at.date().isoformat()}),
        ("post", reverse("trial_feedback", args=[world.triallesson.pk]), {}),
        ("post", reverse("lesson_attendance", args=[world.lesson.pk]), {}),
        ("post", reverse("attendance_correct", args=[world.attendance.pk]), {}),
        ("get", reverse("import_list"), {}),
        ("post", reverse("import_list"), {}),
        ("get", reverse("import_detail", args=[job]), {}),
        ("get", reverse("import_progress", args=[job]), {}),
        ("get", reverse("board"), {}),
        ("get", reverse("board"), {"q": "没有这个人"}),
        ("get", reverse("pool"), {}),
        ("post", reverse("pool_release"), {"student": student}),
        ("post", reverse("pool_claim", args=[student]), {}),
        ("get", reverse("tag_rule_list"), {}),
        ("get", reverse("tag_rule_create"), {}),
        ("post", reverse("tag_rule_create"), {"conditions": '{"all": [{"field": "shoe_size"}]}'}),
        ("get", reverse("tag_rule_edit", args=[world.tagrule.pk]), {}),
        ("post", reverse("tag_rule_edit", args=[world.tagrule.pk]), {"conditions": "{"}),
        ("get", reverse("tag_rule_delete", args=[world.tagrule.pk]), {}),
        # The overview: the viewer's campus live (no snapshot); the other campus's snapshot (an
        # administrator's pick; a 404 for the others); its refresh.
        ("get", reverse("personas_overview"), {}),
        ("get", reverse("personas_overview"), {"campus": world.other_campus}),
        ("post", reverse("personas_overview_refresh"), {"campus": world.other_campus}),
    ]
    segment = world.segment.pk
    bad_tree = json.dumps({"conditions": {"all": [{"field": "grade", "op": "in", "value": "五年级"}]}})
    requests += [
        ("get", reverse("board"), {"segment": segment, "value_tier": "high", "rfm_segment": "lost"}),
        ("get", reverse("segment_list"), {}),
        ("get", reverse("segment_new"), {}),
        ("post", reverse("segment_new"), {"name": "", "conditions": bad_tree}),
        ("get", reverse("segment_detail", args=[segment]), {}),
        ("post", reverse("segment_detail", args=[segment]), {"name": "", "conditions": "[]"}),
        ("get", reverse("segment_export", args=[segment]), {}),
        ("post", reverse("segment_count"), {}),
        ("get", reverse("api_segment_list"), {}),
        ("get", reverse("campaign_list"), {}),
        ("get", reverse("campaign_new"), {}),
        ("post", reverse("campaign_new"), {"sms_a_text": "{nope}", "channels": ["sms"]}),
        ("get", reverse("campaign_detail", args=[world.draft.pk]), {}),
        ("get", reverse("campaign_edit", args=[world.draft.pk]), {}),
        ("post", reverse("campaign_edit", args=[world.draft.pk]), {}),
        ("post", reverse("campaign_dry_run", args=[world.draft.pk]), {}),
        ("get", reverse("campaign_detail", args=[world.campaign.pk]), {}),
        ("post", reverse("campaign_action", args=[world.campaign.pk, "pause"]), {}),
        ("get", reverse("call_task_record", args=[world.calltask.pk]), {}),
        ("post", reverse("call_task_record", args=[world.calltask.pk]), {}),
        ("get", reverse("unsubscribe", args=[world.unsubscribe_token]), {}),
        ("get", reverse("unsubscribe", args=["forged"]), {}),
        ("get", reverse("api_segment_detail", args=[segment]), {}),
        ("get", reverse("api_segment_members", args=[segment]), {}),
        ("post", reverse("api_segment_count"), {}),
        # The staff API's records (crm/api/): lists, and each write refused for its empty body.
        ("get", reverse("api_course_list"), {}),
        ("get", reverse("api_consultation_list"), {"student": student}),
        ("post", reverse("api_consultation_list"), {}),
        ("get", reverse("api_trial_list"), {"day": "9999-12-31"}),
        ("post", reverse("api_trial_list"), {}),
        ("post", reverse("api_trial_feedback", args=[world.triallesson.pk]), {}),
        ("post", reverse("api_trial_cancel", args=[world.triallesson.pk]), {}),
        ("get", reverse("api_contract_list"), {"status": "active"}),
        ("post", reverse("api_contract_list"), {}),
        ("post", reverse("api_contract_refund", args=[world.contract.pk]), {}),
        ("get", reverse("api_attendance_list"), {"date_from": "2000-01-01"}),
        ("post", reverse("api_lesson_attendance", args=[world.lesson.pk]), {}),
        ("post", reverse("api_attendance_correct", args=[world.attendance.pk]), {}),
        # The H5 parent app's shell: its words, handed to the script, are the catalogue's too.
        ("get", reverse("parent_app"), {}),
        # The staff API: lists with a bad filter (the 400's words), and writes with an empty body.
        ("get", reverse("api_student_list"), {"stage": "nope"}),
        ("post", reverse("api_student_list"), {}),
        ("get", reverse("api_student_detail", args=[student]), {}),
        ("post", reverse("api_student_close_lost", args=[student]), {}),
        ("post", reverse("api_student_tag_add", args=[student]), {}),
        ("delete", reverse("api_student_tag_remove", args=[student, 0]), {}),
        ("post", reverse("api_student_guardian_add", args=[student]), {}),
        ("get", reverse("api_guardian_list"), {"phone": "12"}),
        ("get", reverse("api_guardian_detail", args=[world.guardian.pk]), {}),
        ("get", reverse("api_tag_list"), {}),
        ("get", reverse("api_campaign_list"), {"status": "nope"}),
        ("get", reverse("api_campaign_detail", args=[world.campaign.pk]), {}),
        ("post", reverse("api_campaign_dry_run", args=[world.draft.pk]), {}),
        ("post", reverse("api_campaign_launch", args=[world.campaign.pk]), {}),
        ("post", reverse("api_campaign_pause", args=[world.campaign.pk]), {}),
        ("post", reverse("api_campaign_resume", args=[world.campaign.pk]), {}),
        ("post", reverse("api_campaign_cancel", args=[world.draft.pk]), {}),
        # A parent's trial request, handled from the follow-ups (which showed it above).
        ("post", reverse("trial_request_handle", args=[world.trialrequest.pk]), {"outcome": "booked"}),
        # Last: it closes the care task the follow-ups above showed.
        ("post", reverse("care_task_done", args=[world.caretask.pk]), {"note": "已回电"}),
    ]
    for action in ("consultation", "trial", "contract", "lost", "guardian"):
        requests.append(("post", reverse("student_action", args=[student, action]), {}))
    for stage in Stage.values:
        requests.append(("get", reverse("board_column", args=[stage]), {}))
        requests.append(("post", reverse("board_move", args=[student]), {"to": stage}))
    return requests


# Answered with a file, or a write whose answer is a redirect to a page walked above.
NOT_PAGES = {
    "import_export_download",
    "import_template",
    "import_confirm",
    "logout",
    "login",
    "set_language",
    "segment_delete",
    # The SMS gateway's signed webhooks: no person's page (tests/campaigns/test_messages.py).
    "api_sms_receipts",
    "api_sms_inbound",
    # The OpenAPI schema (YAML for programs) and Swagger UI's page (its own words, served as is).
    "api_schema",
    "api_docs",
}


def staff_url_names() -> set[str]:
    names: set[str] = set()

    def walk(patterns: list[Any]) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                # The admin is walked by admin_paths(); the parent API has no staff page (its words
                # are checked in Chinese by the H5 app's tests, tests/parents/test_h5*.py).
                if pattern.app_name in ("admin", "parent_api"):
                    continue
                walk(pattern.url_patterns)
            elif isinstance(pattern, URLPattern) and pattern.name and pattern.name != "healthz":
                names.add(pattern.name)

    walk(get_resolver().url_patterns)
    return names


def test_the_walk_covers_every_staff_page() -> None:
    world = SimpleNamespace(
        student=SimpleNamespace(pk=1),
        importjob=SimpleNamespace(pk=1),
        triallesson=SimpleNamespace(pk=1),
        lesson=SimpleNamespace(pk=1, starts_at=timezone.now()),
        attendance=SimpleNamespace(pk=1),
        contract=SimpleNamespace(pk=1),
        tagrule=SimpleNamespace(pk=1),
        phone="13800138000",
        other_campus=1,
        segment=SimpleNamespace(pk=1),
        draft=SimpleNamespace(pk=1),
        campaign=SimpleNamespace(pk=1),
        calltask=SimpleNamespace(pk=1),
        caretask=SimpleNamespace(pk=1),
        trialrequest=SimpleNamespace(pk=1),
        guardian=SimpleNamespace(pk=1),
        unsubscribe_token="token",
    )
    walked = {str(get_resolver().resolve(path.split("?")[0]).url_name) for _, path, _ in staff_requests(world)}
    expected = staff_url_names() - NOT_PAGES
    assert expected == walked, (
        f"not walked: {sorted(expected - walked)}; walked, not a page: {sorted(walked - expected)}"
    )


def admin_paths() -> list[str]:
    paths = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        prefix = f"admin:{opts.app_label}_{opts.model_name}"
        paths += [reverse(f"{prefix}_changelist"), reverse(f"{prefix}_add")]
        obj = model._default_manager.order_by("pk").first()
        if opts.app_label in ("crm", "lifecycle", "campaigns") or model in (TagRule, PersonaSettings):
            assert obj is not None, f"the walk needs a {opts.model_name}"
        if obj is not None:
            paths.append(reverse(f"{prefix}_change", args=[obj.pk]))
            if model is Student:
                paths.append(reverse(f"{prefix}_delete", args=[obj.pk]))
        if model_admin.search_fields:
            paths.append(reverse(f"{prefix}_changelist") + "?q=1")
    return paths


@pytest.mark.parametrize("role", ["front_desk", "teacher", "manager", "admin_user"])
def test_no_english_left_in_the_chinese_ui(
    chinese_default: None, request: pytest.FixtureRequest, role: str, campus_a, campus_b, teacher, front_desk
) -> None:
    world = build_chinese_world(campus_a, campus_b, teacher, front_desk)
    user: User = request.getfixturevalue(role)
    client = browser(user)
    patterns = english_patterns()
    problems: list[str] = []
    pages = 0
    for method, path, data in staff_requests(world):
        response = getattr(client, method)(path, data, follow=True)
        assert response.status_code < 500, path
        if "html" not in response.get("Content-Type", ""):
            continue
        html = response.content.decode()
        problems += [f"{method} {path}: {p}" for p in english_in(html, patterns)]
        if "---------" in html:
            problems.append(f"{method} {path}: a choice says ---------")
        pages += 1
    for path in admin_paths():
        response = client.get(path, follow=True)
        assert response.status_code < 500, path
        html = response.content.decode()
        problems += [f"admin {path}: {p}" for p in english_in(html, patterns)]
        filters = re.search(r'<nav id="changelist-filter".*?</nav>', html, re.S)
        if filters and "---------" in filters.group(0):
            problems.append(f"admin {path}: a filter says ---------")
        if path.startswith(("/admin/crm/", "/admin/lifecycle/")) and "---------" in html:
            problems.append(f"admin {path}: a picker says ---------")
        pages += 1
    assert pages > 60
    assert problems == []


def test_every_field_and_model_has_a_chinese_name() -> None:
    """The admin's column, filter and form names come from verbose_name: one left to Django's
    default is the field's English name, which no catalogue entry catches."""
    missing = []
    with translation.override("zh-hans"):
        for label in ("crm", "lifecycle", "personas", "campaigns"):
            for model in apps.get_app_config(label).get_models():
                opts = model._meta
                for name in (opts.verbose_name, opts.verbose_name_plural):
                    if not CJK.search(str(name)):
                        missing.append(f"{opts.label}: {name}")
                for model_field in opts.get_fields(include_hidden=False):
                    if model_field.auto_created or not hasattr(model_field, "verbose_name"):
                        continue
                    if model is User and model_field.name == "password":
                        continue  # Django's own, translated by Django
                    if not CJK.search(str(model_field.verbose_name)):
                        missing.append(f"{opts.label}.{model_field.name}: {model_field.verbose_name}")
    assert missing == []


def test_the_tag_picker_speaks_chinese(chinese_default: None, manager: User) -> None:
    """The admin's two-box pickers (tags, roles) word their help in JavaScript, translated by
    the admin's JavaScript catalogue, which lacks some of Django 5.2's strings."""
    import django.contrib.admin

    script = Path(django.contrib.admin.__file__).parent / "static" / "admin" / "js" / "SelectFilter2.js"
    wanted = {
        match.group(2).replace("\\'", "'").replace('\\"', '"')
        for match in re.finditer(r"\bgettext\((['\"])(.+?)(?<!\\)\1\)", script.read_text(encoding="utf-8"))
    }
    assert 'Choose %s by selecting them and then select the "Choose" arrow button.' in wanted
    source = browser(manager).get(reverse("admin:jsi18n")).content.decode()
    catalogue = json.loads(re.search(r"const newcatalog = (\{.*?\});", source, re.S).group(1))  # type: ignore[union-attr]
    untranslated = sorted(text for text in wanted if not CJK.search(str(catalogue.get(text, ""))))
    assert untranslated == []
