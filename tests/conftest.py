"""The shared actors: every permission test is one fixture away.

campus_a / campus_b, and per campus a front-desk consultant, a teacher and a manager;
an admin who sees everything. Parents arrive with the parent API.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.utils import translation

from config.celery import app as celery_app
from crm.models import Campus, User
from tests import factories

pytest_plugins = [
    "tests.browser",  # the browser and page fixtures
    "tests.campaigns.gateway",  # the SMS gateway
    "tests.campaigns.smtp",  # the SMTP server
    "tests.campaigns.wechat",  # WeChat's token and subscription-message endpoints
]


@pytest.fixture(autouse=True)
def eager_tasks() -> Iterator[None]:
    """Tasks run in-process, as in the embedded default: `make test` sets REDIS_URL, which
    would otherwise queue them for a worker no test starts. Worker tests switch it off."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = before


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """Staff passwords are hashed in every actor fixture; the default hasher is slow by design."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _english(settings) -> Iterator[None]:
    """Tests read English words: the product defaults to Simplified Chinese (LANGUAGE_CODE
    zh-hans) whatever a request's Accept-Language, so every page, and code run outside a
    request, would otherwise see the translations. tests/test_i18n.py checks the Chinese
    default itself."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


# Playwright's sync API runs an event loop in the test thread; Django's async-safety
# check would refuse the live server's database access from it otherwise.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def campus_a(db: None) -> Campus:
    return factories.CampusFactory(name="望京校区", code="wangjing")


@pytest.fixture
def campus_b(db: None) -> Campus:
    return factories.CampusFactory(name="中关村校区", code="zhongguancun")


@pytest.fixture
def front_desk(campus_a: Campus) -> User:
    return factories.UserFactory(username="alice", display_name="前台小李", campus=campus_a, role="front_desk")


@pytest.fixture
def front_desk_b(campus_b: Campus) -> User:
    return factories.UserFactory(username="bella", display_name="前台小白", campus=campus_b, role="front_desk")


@pytest.fixture
def teacher(campus_a: Campus) -> User:
    return factories.UserFactory(username="tom", display_name="王老师", campus=campus_a, role="teacher")


@pytest.fixture
def teacher_b(campus_b: Campus) -> User:
    return factories.UserFactory(username="tina", display_name="赵老师", campus=campus_b, role="teacher")


@pytest.fixture
def manager(campus_a: Campus) -> User:
    return factories.UserFactory(username="mary", display_name="张校长", campus=campus_a, role="manager")


@pytest.fixture
def manager_b(campus_b: Campus) -> User:
    return factories.UserFactory(username="mike", display_name="刘校长", campus=campus_b, role="manager")


@pytest.fixture
def admin_user(campus_a: Campus) -> User:
    return factories.UserFactory(
        username="root", display_name="管理员", campus=None, role="admin", is_superuser=True, is_staff=True
    )


@pytest.fixture
def course_a(campus_a: Campus) -> factories.models.Course:
    return factories.CourseFactory(campus=campus_a, name="少儿编程 L1", subject="编程")


@pytest.fixture
def course_b(campus_b: Campus) -> factories.models.Course:
    return factories.CourseFactory(campus=campus_b, name="美术启蒙", subject="美术")


@pytest.fixture
def own_throttle_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Throttles count in the shared cache (Redis under `make test`, which the other xdist worker
    uses too): this test counts under keys of its own, never clearing anyone else's."""
    import uuid

    from parents.api.throttles import AuthIpThrottle, AuthPhoneThrottle, InviteIpThrottle

    prefix = uuid.uuid4().hex
    for throttle in (AuthIpThrottle, AuthPhoneThrottle, InviteIpThrottle):
        monkeypatch.setattr(throttle, "cache_format", f"throttle_{prefix}_%(scope)s_%(ident)s")


# The parents: two families at campus A, and one phone with a child in each campus.
@pytest.fixture
def parent_a(campus_a: Campus) -> factories.models.Guardian:
    guardian = factories.GuardianFactory(name="王妈妈", phone="+8613800138001", relation="妈妈")
    factories.StudentFactory(name="王小明", campus=campus_a, guardians=[guardian])
    return guardian


@pytest.fixture
def parent_b(campus_a: Campus) -> factories.models.Guardian:
    guardian = factories.GuardianFactory(name="李爸爸", phone="+8613800138002", relation="爸爸")
    factories.StudentFactory(name="李小红", campus=campus_a, guardians=[guardian])
    return guardian


@pytest.fixture
def parent_two_campuses(campus_a: Campus, campus_b: Campus) -> factories.models.Guardian:
    guardian = factories.GuardianFactory(name="张妈妈", phone="+8613800138003", relation="妈妈")
    factories.StudentFactory(name="张一", campus=campus_a, guardians=[guardian])
    factories.StudentFactory(name="张二", campus=campus_b, guardians=[guardian])
    return guardian


def bearer(guardian: factories.models.Guardian) -> dict[str, str]:
    """Request headers acting as this parent, logged in now (Django test client keywords)."""
    from parents.services.sessions import session_open

    return {"HTTP_AUTHORIZATION": f"Bearer {session_open(guardian=guardian, via='sms').access}"}


@pytest.fixture
def real_broker(settings) -> Iterator[None]:
    """Tasks go through Redis to a worker the test starts (`celery.contrib.testing.worker`), with
    every queue the product's workers consume emptied of what an earlier run left."""
    from crm.tasks import IMPORTS_QUEUE
    from lifecycle.tasks.recompute import LIFECYCLE_QUEUE
    from personas.tasks import PERSONAS_QUEUE

    if not settings.REDIS_URL:
        pytest.skip("needs Redis: set REDIS_URL")
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    with celery_app.connection_for_write() as connection:
        for queue in sorted({IMPORTS_QUEUE, LIFECYCLE_QUEUE, PERSONAS_QUEUE}):
            connection.default_channel.queue_purge(queue)
    yield
    celery_app.conf.task_always_eager = before
