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
from crm.models import Student, StudentStage, TrialLesson

student = Student.objects.order_by("pk").first()
pages = {
    "wj_front1": ["/followups/", "/leads/new/", "/students/", f"/students/{student.pk}/", "/board/",
                  "/board/columns/lead/?offset=20", "/pool/", "/imports/", "/admin/", "/admin/crm/student/"],
    "wj_teacher1": ["/teacher/today/", f"/students/{student.pk}/"],
    "wj_manager": ["/followups/", "/board/", "/pool/", "/teacher/today/", "/admin/crm/student/",
                   "/admin/lifecycle/lifecyclesettings/"],
    "admin": ["/students/", "/board/", "/admin/crm/contract/", "/admin/lifecycle/stagechange/"],
}
for username, urls in pages.items():
    client = Client()
    assert client.login(username=username, password="scrm-demo"), username
    for url in urls:
        status = client.get(url).status_code
        assert status == 200, (username, url, status)
stages = set(StudentStage.objects.values_list("stage", flat=True))
assert {"lead", "consulting", "trial", "active"} <= stages, stages
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
