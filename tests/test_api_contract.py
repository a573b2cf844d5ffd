"""The API keeps its contract: schemathesis fuzzes every operation of /api/schema/ (whatever is in
the URL conf) against Django's WSGI app on the test database, and every answer must be no 5xx,
with a status code, content type and body the schema documents (errors: the `Error` component of
config/api_schema.py).

Callers are real: a manager's staff token for staff operations, a parent's Bearer token (from
`session_open`) under /api/v1/parent/, the SMS gateway's signature on its webhooks. Rows exist
(a campus's students, families, a segment, campaigns drafted and launched), and an `id` in a path
is mostly replaced by a real row's, so operations read and change real objects rather than
answering 404 to random numbers. A few examples per operation keep the file well under two
minutes on two CPUs; the coverage phase adds the edge cases (missing and wrong-typed values).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from campaigns.messaging import sms_gateway
from campaigns.services.campaigns import CampaignInput, TemplateInput, campaign_launch, campaign_save
from campaigns.services.consent import consent_record
from crm.models import Campus, User
from parents.services.sessions import session_open
from tests import factories

PARENT_PREFIX = "/api/v1/parent/"
WEBHOOK_PREFIX = "/api/v1/messaging/sms/"
GATEWAY_SECRET = "contract-secret"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Loaded through the app itself, at collection: the schema view reads no rows.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())


@pytest.fixture
def keep_connection() -> Iterator[None]:
    """As Django's test client does: the WSGI app would close the test's connection (and its
    transaction) after each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@dataclass
class World:
    """The rows the fuzzed requests meet, and who calls."""

    staff_token: str
    parent_token: str
    ids: dict[str, list[int]] = field(default_factory=dict)  # a path's resource -> real row ids

    def headers_for(self, path: str) -> dict[str, str]:
        if path.startswith(WEBHOOK_PREFIX):
            return {}  # signed per request instead
        if path.startswith(PARENT_PREFIX):
            return {"Authorization": f"Bearer {self.parent_token}"}
        return {"Authorization": f"Token {self.staff_token}"}

    def real_id(self, path: str, generated: Any) -> Any:
        """Usually a real row of the path's resource (any row, for a resource this file does not
        know); now and then the generated value, so that 404s are fuzzed too."""
        if not isinstance(generated, int) or isinstance(generated, bool):
            return generated
        rest = path.removeprefix(PARENT_PREFIX).removeprefix("/api/v1/")
        resource = rest.split("/", 1)[0]
        pool = self.ids.get(resource) or sorted({i for ids in self.ids.values() for i in ids})
        pick = generated % (len(pool) + 1)
        return pool[pick] if pick < len(pool) else generated


def campaign_draft(manager: User, segment: Any, **changes: Any) -> Any:
    templates = [TemplateInput(channel="sms", text="{guardian}您好，{student}想念你")]
    data = CampaignInput(name="唤醒", goal="win_back", segment=segment, channels=["sms"], templates=templates)
    for name, value in changes.items():
        setattr(data, name, value)
    assert manager.campus is not None
    return campaign_save(actor=manager, campus=manager.campus, data=data)


@pytest.fixture
def world(
    db: None,
    campus_a: Campus,
    campus_b: Campus,
    manager: User,
    front_desk: User,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
    keep_connection: None,
) -> World:
    settings.SMS_GATEWAY_SECRET = GATEWAY_SECRET
    # Throttles count in a cache of this test's own: each operation starts with its allowance
    # (a few logins pass, then 429), whatever earlier runs left in Redis.
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": f"contract-{id(settings)}"}
    }
    course = factories.CourseFactory(campus=campus_a)
    guardian = factories.GuardianFactory()
    children = [
        factories.StudentFactory(campus=campus_a, stage=stage, owner=front_desk, guardians=[guardian])
        for stage in ("dormant", "active")
    ]
    others = [
        factories.StudentFactory(
            campus=campus_a, stage="dormant", owner=front_desk, guardians=[factories.GuardianFactory()]
        )
        for _ in range(3)
    ]
    elsewhere = factories.StudentFactory(campus=campus_b, stage="dormant")
    for student in [*children, *others]:
        for family in student.guardians.all():
            consent_record(
                guardian=family, channel="sms", granted=True, source="staff", wording="同意", actor=front_desk
            )
    contract = factories.ContractFactory(student=children[1], course=course)
    factories.StudentProfileFactory(student=children[1])
    segment = factories.SegmentFactory(
        campus=campus_a, conditions={"all": [{"field": "stage", "op": "in", "value": ["dormant"]}]}
    )
    drafted = campaign_draft(manager, segment)
    with django_capture_on_commit_callbacks(execute=True):  # sent now (console), so it has results
        launched = campaign_launch(actor=manager, campaign=campaign_draft(manager, segment, holdout_pct=30))
    return World(
        staff_token=Token.objects.create(user=manager).key,
        parent_token=session_open(guardian=guardian, via="sms").access,
        ids={
            "students": [s.pk for s in [*children, *others, elsewhere]],
            "children": [s.pk for s in children],
            "segments": [segment.pk],
            "campaigns": [drafted.pk, launched.pk],
            "contracts": [contract.pk],
            "guardians": [guardian.pk],
        },
    )


def signed(case: Any) -> dict[str, Any]:
    """The SMS gateway's headers and the exact body they sign."""
    if isinstance(case.body, NotSet):
        body = b""
    elif isinstance(case.body, bytes):  # a negative example that is not JSON at all
        body = case.body
    else:
        body = json.dumps(case.body).encode()
    timestamp, nonce = str(int(time.time())), f"n{time.monotonic_ns()}"
    path = case.formatted_path
    return {
        "data": body,
        "headers": {
            "X-Timestamp": timestamp,
            "X-Nonce": nonce,
            "X-Signature": sms_gateway.sign(GATEWAY_SECRET, case.method, path, timestamp, nonce, body),
        },
    }


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_documented(case: Any, world: World) -> None:
    path = case.operation.path
    if "id" in case.path_parameters:
        case.path_parameters["id"] = world.real_id(path, case.path_parameters["id"])
    headers = world.headers_for(path)
    if path.startswith(WEBHOOK_PREFIX):
        extra = signed(case)
        case.call_and_validate(headers=extra["headers"], data=extra["data"], checks=CHECKS)
        return
    case.call_and_validate(headers=headers, checks=CHECKS)


def test_options_never_asks_a_view_for_its_serializer() -> None:
    # A view that builds its serializers per request has no `serializer_class`: DRF's default
    # metadata asked for one and answered OPTIONS with a 500 (found by the fuzzing above).
    from rest_framework import generics
    from rest_framework.permissions import AllowAny
    from rest_framework.test import APIRequestFactory

    class PerRequest(generics.CreateAPIView):
        authentication_classes: list[Any] = []
        permission_classes = [AllowAny]

    response = PerRequest.as_view()(APIRequestFactory().options("/api/v1/x/"))
    assert response.status_code == 200
    assert response.data["name"] and "actions" not in response.data
