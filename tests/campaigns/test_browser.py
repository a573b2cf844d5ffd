"""A campaign in a real browser, on a tablet in Chinese (issue 11, acceptance 6): a manager builds
a campaign on a segment, previews it for real families, dry-runs, launches and reads the results;
the consultant finds the call in the follow-up list and records it."""

from __future__ import annotations

import datetime as dt

import pytest
from playwright.sync_api import Page, expect

from campaigns.models import CallTask, Campaign, Message, MessageStatus
from campaigns.services.consent import consent_record
from campaigns.services.marketing_settings import marketing_settings_update
from crm.models import Campus, Consultation, Stage, User
from tests import factories
from tests.browser import log_in, snapshot
from tests.campaigns.gateway import Gateway

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_manager_runs_a_campaign_and_the_consultant_makes_the_call(
    live_server, chinese_tablet: Page, sms_gateway_server: Gateway, manager: User, front_desk: User, campus_a: Campus
) -> None:
    page = chinese_tablet
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Any time of day: this campus keeps no quiet hours (they are tested in test_marketing.py).
    marketing_settings_update(actor=manager, campus=campus_a, quiet_from=dt.time(0), quiet_until=dt.time(0))
    names = ["王小明", "李小红", "张小刚", "赵小丽"]
    for name in names:
        guardian = factories.GuardianFactory(name=f"{name[0]}妈妈")
        factories.StudentFactory(
            name=name, campus=campus_a, stage=Stage.DORMANT, owner=front_desk, guardians=[guardian]
        )
        if name != "赵小丽":  # her family never consented to marketing SMS
            consent_record(
                guardian=guardian, channel="sms", granted=True, source="staff", wording="同意", actor=front_desk
            )
    factories.StudentFactory(name="钱小多", campus=campus_a, stage=Stage.ACTIVE)
    factories.SegmentFactory(
        campus=campus_a, name="沉睡学员", conditions={"all": [{"field": "stage", "op": "in", "value": ["dormant"]}]}
    )

    log_in(page, live_server.url, "mary")
    page.goto(f"{live_server.url}/campaigns/")
    expect(page.locator("h1")).to_contain_text("营销活动")
    page.click("[data-new-campaign]")
    page.fill("input[name=name]", "寒假唤醒")
    page.select_option("select[name=goal]", "win_back")
    page.select_option("select[name=segment]", label="沉睡学员")
    page.check("input[name=channels][value=sms]")
    page.check("input[name=channels][value=call]")
    # Only the chosen channels' texts are shown.
    expect(page.locator('[data-block][data-channel="email"]').first).to_be_hidden()
    page.fill("input[name=holdout_pct]", "0")
    page.fill("textarea[name=sms_a_text]", "【望京校区】{家长}您好，{学员}好久没来上课了，本周回来免费体验一节。")
    page.fill("textarea[name=call_a_text]", "问候{家长}，邀请{学员}回来上课。")
    snapshot(page, "campaign_builder")
    page.click("[data-save]")
    expect(page.locator(".msg.success")).to_contain_text("已保存为草稿")
    campaign = Campaign.objects.get()

    preview = page.locator("[data-preview]")
    expect(preview).to_contain_text("王妈妈您好，王小明好久没来上课了")
    page.click("[data-dry-run-button]")
    dry = page.locator("[data-dry-run]")
    expect(dry).to_contain_text("当前人群：4 名学员")
    expect(dry.locator('[data-channel="sms"] [data-reached]')).to_have_text("3")
    expect(dry).to_contain_text("未获该渠道授权: 1")
    snapshot(page, "campaign_dry_run")
    assert not Message.objects.exists()  # a dry run writes nothing

    page.click("[data-launch]")
    expect(page.locator("[data-status]")).to_have_attribute("data-status", "done")
    expect(page.locator('[data-channels] [data-channel="sms"] [data-sent]')).to_have_text("3")
    expect(page.locator('[data-groups] [data-group="A"]')).to_contain_text("4")
    expect(page.locator("#campaign-groups-chart canvas")).to_have_count(1)
    snapshot(page, "campaign_results")
    assert sms_gateway_server.sent_count == 3
    assert Message.objects.filter(campaign=campaign, status=MessageStatus.SENT).count() == 3

    # The consultant's side: the calls wait in the follow-up list, each recorded as a consultation.
    page.context.clear_cookies()
    log_in(page, live_server.url, "alice")
    page.goto(f"{live_server.url}/followups/")
    calls = page.locator('[data-section="calls"]')
    expect(calls.locator("[data-call-task]")).to_have_count(4)
    task = CallTask.objects.get(student__name="王小明")
    calls.locator(f'[data-call-task="{task.pk}"] [data-record-call]').click()
    expect(page.locator("[data-script]")).to_contain_text("问候王妈妈，邀请王小明回来上课。")
    page.fill("textarea[name=content]", "王妈妈说寒假回来上课，约了周六体验课。")
    page.select_option("select[name=intent]", "high")
    page.click("[data-save]")
    expect(page.locator(".msg.success")).to_contain_text("王小明")
    expect(page.locator('[data-section="calls"] [data-call-task]')).to_have_count(3)
    snapshot(page, "campaign_calls")
    task.refresh_from_db()
    assert task.status == "done"
    assert Consultation.objects.get(student__name="王小明").content == "王妈妈说寒假回来上课，约了周六体验课。"
    assert errors == []
