"""The embedded default (`make run`): SQLite, tasks in-process, demo data. The rest of the
suite runs on PostgreSQL, so this runs the product in a child process on a fresh SQLite
database and opens every staff page as each demo role."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PAGES_SCRIPT = """
import django
django.setup()
from django.test import Client
from crm.models import Student, StudentStage, TrialLesson, User

student = Student.objects.order_by("pk").first()
pages = {
    "wj_front1": ["/followups/", "/leads/new/", "/students/", f"/students/{student.pk}/", "/board/",
                  "/board/columns/lead/?offset=20", "/pool/", "/imports/", "/admin/", "/admin/crm/student/",
                  "/personas/"],
    "wj_teacher1": ["/teacher/today/", f"/students/{student.pk}/"],
    "wj_manager": ["/followups/", "/board/", "/pool/", "/teacher/today/", "/admin/crm/student/",
                   "/admin/lifecycle/lifecyclesettings/", "/personas/", "/segments/", "/segments/new/",
                   "/board/?value_tier=high&rfm_segment=champions"],
    "admin": ["/students/", "/board/", "/admin/crm/contract/", "/admin/lifecycle/stagechange/", "/personas/"],
}
for username, urls in pages.items():
    client = Client()
    assert client.login(username=username, password="scrm-demo"), username
    for url in urls:
        status = client.get(url).status_code
        assert status == 200, (username, url, status)
# Segments on SQLite: the list's one counting query, the builder's count, the board filter, the export.
import json
from crm.models import User as Staff
from personas.services.segments import segment_create

manager = Staff.objects.get(username="wj_manager")
recent = {"field": "last_touch", "op": "within_days", "value": 30}
tree = {"any": [{"field": "stage", "op": "not_in", "value": ["lead"]},
                {"all": [{"field": "at_risk", "op": "is", "value": True}, recent]}]}
segment = segment_create(actor=manager, name="演示分群", conditions=tree)
client = Client()
client.force_login(manager)
urls = ["/segments/", f"/segments/{segment.pk}/", f"/board/?segment={segment.pk}"]
urls.append(f"/segments/{segment.pk}/export.xlsx")
for url in urls:
    assert client.get(url).status_code == 200, url
answer = client.post("/segments/count/", json.dumps({"conditions": tree}), content_type="application/json")
assert answer.status_code == 200 and answer.json()["count"] > 0, answer.content

stages = set(StudentStage.objects.values_list("stage", flat=True))
assert {"lead", "consulting", "trial", "active"} <= stages, stages

# The demo's overview is a snapshot of every campus, its groups with representatives; a campus
# without one is computed live (in Python on SQLite) with the same figures.
from personas.models import CampusOverview, OverviewGroup
from personas.selectors import overview_for

assert CampusOverview.objects.count() == 2
assert OverviewGroup.objects.filter(dimension="segment").exclude(key="").exists()
for username in ("wj_manager", "admin"):
    viewer = User.objects.get(username=username)
    kept = overview_for(viewer=viewer)
    assert kept.as_of is not None and kept.students > 0
    CampusOverview.objects.filter(campus=kept.campus).delete()
    live = overview_for(viewer=viewer)
    assert live.as_of is None and live.tables == kept.tables, username

# An administrator's column spans both campuses and is merged in Python: on SQLite too, with
# stage rows of no date among them, "load more" shows every card once.
import lifecycle.selectors as board_selectors
from lifecycle.filters import StudentFilter

board_selectors.PAGE_SIZE = 2
viewer = User.objects.get(username="admin")
board_filter = StudentFilter({}, viewer=viewer)
stage = max(stages, key=lambda s: StudentStage.objects.filter(stage=s).count())
column = list(StudentStage.objects.filter(stage=stage).order_by("pk").values_list("pk", "campus_id"))
assert len({campus for _, campus in column}) == 2 and len(column) > 4, column
StudentStage.objects.filter(pk__in=[pk for pk, _ in column[::2]]).update(changed_at=None)
campus_ids = board_filter.campus_ids()
shown = [c.student.pk for c in board_selectors.board_first_pages(board_filter.qs, [stage], campus_ids)[stage][:2]]
offset = 2
while offset < len(column) + 4:
    page = board_selectors.board_column_page(board_filter.qs, stage, offset, campus_ids)
    shown += [c.student.pk for c in page[:2]]
    offset += 2
assert sorted(shown) == sorted(pk for pk, _ in column), (shown, column)
print("embedded ok", sorted(stages))
"""


def test_make_run_database_serves_every_page(tmp_path: Path) -> None:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_TASK_ALWAYS_EAGER"}
    }
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DJANGO_SETTINGS_MODULE="config.settings",
        MEDIA_ROOT=str(tmp_path / "media"),
        ALLOWED_HOSTS="testserver",
    )

    def run(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240, check=False
        )
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
        return result.stdout

    run("manage.py", "migrate", "--noinput", "-v", "0")
    run("manage.py", "seed_demo", "--students", "60", "--if-empty")
    assert "embedded ok" in run("-c", PAGES_SCRIPT)
