"""The campaigns' call tasks in the follow-up list (crm's page, through `crm.pages`)."""

from __future__ import annotations

from campaigns.selectors import call_task_rows, call_tasks_for
from crm.models import User
from crm.pages import Section

# The follow-up list shows this many calls; the rest wait their turn.
CALLS_SHOWN = 50


def call_tasks_section(viewer: User) -> Section | None:
    tasks = list(call_tasks_for(viewer)[:CALLS_SHOWN])
    return Section("campaigns/_followup_calls.html", {"rows": call_task_rows(tasks), "limit": CALLS_SHOWN})
