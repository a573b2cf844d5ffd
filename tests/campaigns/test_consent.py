"""Consent and opt-out with proof, through every door: staff (the admin), an SMS reply, the email
link and a mail client's one-click POST."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Consent, ConsentRecord, ConsentSource, MessageChannel
from campaigns.resources import ConsentRecordResource
from campaigns.services.consent import (
    consent_opt_out_by_reply,
    consent_record,
    unsubscribe_token,
    unsubscribe_url,
)
from crm.models import Campus, Guardian, User
from tests import factories
from tests.campaigns.gateway import Gateway, signed_post

pytestmark = pytest.mark.django_db

PAPER_FORM = "本人同意接收望京校区的课程优惠短信。"


@pytest.fixture
def family_a(campus_a: Campus) -> Guardian:
    guardian = factories.GuardianFactory(phone="+8613800138000", name="王妈妈")
    factories.StudentFactory(campus=campus_a, guardians=[guardian])
    return guardian


def granted(guardian: Guardian, channel: str = MessageChannel.SMS) -> bool | None:
    return Consent.objects.filter(guardian=guardian, channel=channel).values_list("granted", flat=True).first()


class TestRecording:
    def test_staff_record_a_consent_with_its_proof(self, family_a: Guardian, front_desk: User) -> None:
        record = consent_record(
            guardian=family_a,
            channel=MessageChannel.SMS,
            granted=True,
            source=ConsentSource.STAFF,
            wording=PAPER_FORM,
            evidence="入学登记表 No.0042",
            actor=front_desk,
        )
        assert (record.recorded_by, record.wording, record.evidence) == (front_desk, PAPER_FORM, "入学登记表 No.0042")
        assert granted(family_a) is True
        assert granted(family_a, MessageChannel.EMAIL) is None

    def test_a_later_decision_moves_the_standing_consent_and_keeps_the_old_proof(
        self, family_a: Guardian, front_desk: User
    ) -> None:
        first = consent_record(
            guardian=family_a, channel="sms", granted=True, source="staff", wording=PAPER_FORM, actor=front_desk
        )
        second = consent_record(
            guardian=family_a,
            channel="sms",
            granted=False,
            source="staff",
            wording="电话中要求不再发短信",
            actor=front_desk,
        )
        assert granted(family_a) is False
        assert Consent.objects.get(guardian=family_a, channel="sms").record == second
        assert list(ConsentRecord.objects.filter(guardian=family_a)) == [second, first]

    @pytest.mark.parametrize(
        ("changes", "field"),
        [({"wording": "  "}, "wording"), ({"channel": "fax"}, "channel"), ({"source": "rumour"}, "source")],
    )
    def test_a_bad_record_is_refused_and_nothing_is_written(
        self, family_a: Guardian, front_desk: User, changes: dict[str, str], field: str
    ) -> None:
        values: dict[str, Any] = {"channel": "sms", "source": "staff", "wording": PAPER_FORM} | changes
        with pytest.raises(ValidationError) as caught:
            consent_record(guardian=family_a, granted=True, actor=front_desk, **values)
        assert field in caught.value.message_dict
        assert not ConsentRecord.objects.exists() and not Consent.objects.exists()

    def test_staff_consent_needs_a_person(self, family_a: Guardian) -> None:
        with pytest.raises(ValidationError):
            consent_record(guardian=family_a, channel="sms", granted=True, source="staff", wording=PAPER_FORM)

    @pytest.mark.parametrize("who", ["teacher", "front_desk_b", "manager_b"])
    def test_only_the_familys_campus_front_desk_and_managers_record(
        self, family_a: Guardian, who: str, request: pytest.FixtureRequest
    ) -> None:
        actor = request.getfixturevalue(who)
        with pytest.raises(PermissionDenied):
            consent_record(
                guardian=family_a, channel="sms", granted=True, source="staff", wording=PAPER_FORM, actor=actor
            )
        assert not ConsentRecord.objects.exists()

    def test_an_administrator_records_for_any_family(self, family_a: Guardian, admin_user: User) -> None:
        consent_record(
            guardian=family_a, channel="sms", granted=True, source="staff", wording=PAPER_FORM, actor=admin_user
        )
        assert granted(family_a) is True

    def test_a_late_reply_does_not_undo_a_later_consent(self, family_a: Guardian, front_desk: User) -> None:
        now = timezone.now()
        consent_record(
            guardian=family_a, channel="sms", granted=True, source="staff", wording=PAPER_FORM, actor=front_desk
        )
        assert consent_opt_out_by_reply(phone=family_a.phone, reply="TD", at=now - dt.timedelta(hours=2))
        assert granted(family_a) is True
        assert ConsentRecord.objects.filter(guardian=family_a).count() == 2  # the reply is kept as proof


class TestSmsReplies:
    path = reverse("api_sms_inbound")

    def reply(self, client: Client, phone: str, text: str) -> dict[str, int]:
        response = signed_post(client, self.path, [{"phone": phone, "text": text, "received_at": int(time.time())}])
        assert response.status_code == 200, response.content
        return response.json()

    @pytest.mark.parametrize("keyword", ["TD", "t", "退订", "N"])
    def test_an_unsubscribe_keyword_withdraws_sms_consent_with_the_reply_as_proof(
        self, client: Client, sms_gateway_server: Gateway, family_a: Guardian, front_desk: User, keyword: str
    ) -> None:
        consent_record(
            guardian=family_a,
            channel="sms",
            granted=True,
            source="staff",
            wording=PAPER_FORM,
            actor=front_desk,
            at=timezone.now() - dt.timedelta(days=30),
        )
        assert self.reply(client, "138 0013 8000", keyword) == {"opted_out": 1}
        assert granted(family_a) is False
        record = ConsentRecord.objects.filter(guardian=family_a).first()
        assert record is not None
        assert (record.source, record.wording, record.recorded_by) == (ConsentSource.SMS_REPLY, keyword, None)
        assert granted(family_a, MessageChannel.EMAIL) is None  # one channel only

    def test_any_other_reply_or_a_stranger_changes_nothing(
        self, client: Client, sms_gateway_server: Gateway, family_a: Guardian
    ) -> None:
        assert self.reply(client, "+8613800138000", "老师明天几点上课？") == {"opted_out": 0}
        assert self.reply(client, "+8613900000001", "TD") == {"opted_out": 0}
        assert self.reply(client, "not a phone", "TD") == {"opted_out": 0}
        assert not ConsentRecord.objects.exists()

    def test_an_unsigned_reply_is_refused(
        self, client: Client, sms_gateway_server: Gateway, family_a: Guardian
    ) -> None:
        payload = [{"phone": "+8613800138000", "text": "TD", "received_at": 1}]
        response = client.post(self.path, data=payload, content_type="application/json")
        assert response.status_code == 403
        assert signed_post(client, self.path, payload, secret="forged").status_code == 403
        assert not ConsentRecord.objects.exists()

    @pytest.mark.parametrize("payload", [{"phone": "1"}, [{"phone": "1", "text": "TD"}], [{"text": 1}], "["])
    def test_a_malformed_reply_is_a_400(self, client: Client, sms_gateway_server: Gateway, payload: object) -> None:
        response = signed_post(client, self.path, payload)
        assert response.status_code == 400
        assert set(response.json()) == {"code", "message", "fields"}


class TestUnsubscribeLink:
    def url(self, guardian: Guardian) -> str:
        return reverse("unsubscribe", args=[unsubscribe_token(guardian.pk, MessageChannel.EMAIL)])

    def test_the_link_is_absolute_and_signed(self, family_a: Guardian, settings) -> None:
        settings.SITE_URL = "https://crm.example.cn/"
        assert unsubscribe_url(family_a.pk) == f"https://crm.example.cn{self.url(family_a)}"

    def test_opening_the_link_asks_and_changes_nothing(self, family_a: Guardian) -> None:
        response = Client().get(self.url(family_a))
        assert response.status_code == 200
        assert "Stop receiving marketing messages from us by Email?" in response.content.decode()
        assert not ConsentRecord.objects.exists()

    def test_the_button_opts_out_with_the_question_as_proof(self, family_a: Guardian) -> None:
        response = Client(enforce_csrf_checks=True).post(self.url(family_a), {"confirm": "1"}, REMOTE_ADDR="10.1.2.3")
        assert response.status_code == 200
        assert b'data-testid="unsubscribed"' in response.content
        assert granted(family_a, MessageChannel.EMAIL) is False
        record = ConsentRecord.objects.get()
        assert (record.source, record.wording) == (
            ConsentSource.EMAIL_LINK,
            "Stop receiving marketing messages from us by Email?",
        )
        assert record.evidence.startswith("10.1.2.3")

    def test_a_mail_clients_one_click_post_opts_out_once(self, family_a: Guardian) -> None:
        client = Client(enforce_csrf_checks=True)
        for _ in range(2):
            response = client.post(
                self.url(family_a), "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
            )
            assert response.status_code == 200
        record = ConsentRecord.objects.get()
        assert record.wording == "List-Unsubscribe=One-Click"
        assert granted(family_a, MessageChannel.EMAIL) is False

    @pytest.mark.parametrize("token", ["nonsense", "eyJnIjoxLCJjIjoiZW1haWwifQ:forged"])
    def test_a_forged_link_is_a_404_and_changes_nothing(self, family_a: Guardian, token: str) -> None:
        for method in ("get", "post"):
            response = getattr(Client(), method)(reverse("unsubscribe", args=[token]))
            assert response.status_code == 404
        assert not ConsentRecord.objects.exists()

    def test_the_link_of_a_deleted_family_is_a_404(self, family_a: Guardian) -> None:
        url = self.url(family_a)
        family_a.delete()
        assert Client().post(url).status_code == 404


class TestAdmin:
    def test_a_manager_records_a_paper_consent_in_the_admin(
        self, client: Client, family_a: Guardian, manager: User
    ) -> None:
        client.force_login(manager)
        response = client.post(
            reverse("admin:campaigns_consentrecord_add"),
            {"guardian": family_a.pk, "channel": "sms", "granted": "on", "wording": PAPER_FORM, "evidence": "No.7"},
        )
        assert response.status_code == 302, response.content
        record = ConsentRecord.objects.get()
        assert (record.recorded_by, record.source) == (manager, ConsentSource.STAFF)
        assert granted(family_a) is True

    def test_a_blank_wording_is_refused_in_the_form(self, client: Client, family_a: Guardian, manager: User) -> None:
        client.force_login(manager)
        response = client.post(
            reverse("admin:campaigns_consentrecord_add"), {"guardian": family_a.pk, "channel": "sms", "wording": ""}
        )
        assert response.status_code == 200
        assert not ConsentRecord.objects.exists()

    def test_another_campus_neither_sees_nor_records(
        self, client: Client, family_a: Guardian, manager: User, manager_b: User
    ) -> None:
        record = consent_record(
            guardian=family_a, channel="sms", granted=True, source="staff", wording=PAPER_FORM, actor=manager
        )
        client.force_login(manager_b)
        listing = client.get(reverse("admin:campaigns_consentrecord_changelist"))
        assert listing.status_code == 200
        assert "王妈妈" not in listing.content.decode()
        assert client.get(reverse("admin:campaigns_consentrecord_change", args=[record.pk])).status_code in (302, 404)
        response = client.post(
            reverse("admin:campaigns_consentrecord_add"),
            {"guardian": family_a.pk, "channel": "sms", "granted": "", "wording": "x"},
        )
        assert response.status_code == 200  # the guardian is not a choice: a form error
        assert ConsentRecord.objects.count() == 1

    def test_the_proof_exports_with_formulae_escaped(self, client: Client, family_a: Guardian, manager: User) -> None:
        consent_record(
            guardian=family_a, channel="sms", granted=False, source="staff", wording="=HYPERLINK(1)", actor=manager
        )
        client.force_login(manager)
        fields = {f"consentrecordresource_{name}": "on" for name in ConsentRecordResource._meta.fields}
        response = client.post(
            reverse("admin:campaigns_consentrecord_export"), {"resource": "0", "format": "0", **fields}
        )
        body = response.content.decode("utf-8-sig")
        assert response.status_code == 200, body[:500]
        assert "'=HYPERLINK(1)" in body
        assert "138 0013 8000" in body
