"""Sensible dates: one window per kind of date a person types, checked by every door.

Each function says why a value is out of its window, or returns None. The services call
them before they write (so the pages and the admin show the message on the field), and
the import calls them for each cell (so the report names the row and the column). A
typo such as 1800, 2099 or 9999 is refused wherever it is typed.

- a birth date: not in the future, and at most BIRTH_YEARS_BACK years ago (children and
  adult learners alike);
- a next follow-up: after its consultation, and at most FOLLOW_UP_HORIZON after it (for a
  consultation logged now: between now and a year from now);
- a fact that has happened (a consultation, a signing): not in the future, and at most
  HISTORY_YEARS_BACK years ago (the oldest history a school imports);
- a trial: booked at most BOOKING_HORIZON ahead;
- an attendance: for a lesson at most LESSON_AHEAD ahead (recorded as it starts), and at
  most HISTORY_YEARS_BACK years ago;
- a contract's "valid until": from its signing day to VALIDITY_YEARS_AHEAD years later.
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from django.utils.translation import gettext as _

BIRTH_YEARS_BACK = 100
FOLLOW_UP_HORIZON = dt.timedelta(days=366)
HISTORY_YEARS_BACK = 20
BOOKING_HORIZON = dt.timedelta(days=366)
LESSON_AHEAD = dt.timedelta(days=1)
VALIDITY_YEARS_AHEAD = 10
# Clocks of the front desk's tablet and the server differ a little.
CLOCK_SLACK = dt.timedelta(minutes=5)


def years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def years_after(day: dt.date, years: int) -> dt.date:
    return years_before(day, -years)


def birth_date_problem(value: dt.date, *, today: dt.date | None = None) -> str | None:
    today = today or timezone.localdate()
    if value > today:
        return _("A birth date cannot be in the future.")
    earliest = years_before(today, BIRTH_YEARS_BACK)
    if value < earliest:
        return _("A birth date must be after %(date)s.") % {"date": earliest.isoformat()}
    return None


def follow_up_problem(value: dt.datetime, *, consulted_at: dt.datetime) -> str | None:
    if value < consulted_at:
        return _("The next follow-up must come after the consultation.")
    if value > consulted_at + FOLLOW_UP_HORIZON:
        return _("The next follow-up must be within a year of the consultation.")
    return None


def _history_start(now: dt.datetime) -> dt.date:
    return years_before(timezone.localdate(now), HISTORY_YEARS_BACK)


def consulted_at_problem(value: dt.datetime, *, now: dt.datetime | None = None) -> str | None:
    now = now or timezone.now()
    if value > now + CLOCK_SLACK:
        return _("A consultation cannot be in the future.")
    if timezone.localdate(value) < _history_start(now):
        return _("A consultation must be after %(date)s.") % {"date": _history_start(now).isoformat()}
    return None


def signed_at_problem(value: dt.datetime, *, now: dt.datetime | None = None) -> str | None:
    now = now or timezone.now()
    if value > now + CLOCK_SLACK:
        return _("A contract cannot be signed in the future.")
    if timezone.localdate(value) < _history_start(now):
        return _("A contract must be signed after %(date)s.") % {"date": _history_start(now).isoformat()}
    return None


def valid_until_problem(value: dt.date, *, signed_at: dt.datetime) -> str | None:
    signed_on = timezone.localdate(signed_at)
    if value < signed_on:
        return _("The contract must be valid at least until the day it is signed.")
    latest = years_after(signed_on, VALIDITY_YEARS_AHEAD)
    if value > latest:
        return _("A contract is valid for at most %(years)s years (until %(date)s).") % {
            "years": VALIDITY_YEARS_AHEAD,
            "date": latest.isoformat(),
        }
    return None


def trial_time_problem(value: dt.datetime, *, now: dt.datetime | None = None) -> str | None:
    now = now or timezone.now()
    if value < now - CLOCK_SLACK:
        return _("A trial cannot be booked in the past.")
    if value > now + BOOKING_HORIZON:
        return _("A trial can be booked at most a year ahead.")
    return None


def lesson_at_problem(value: dt.datetime, *, now: dt.datetime | None = None) -> str | None:
    now = now or timezone.now()
    if value > now + LESSON_AHEAD:
        return _("Attendance cannot be recorded for a lesson more than a day ahead.")
    if timezone.localdate(value) < _history_start(now):
        return _("A lesson must be after %(date)s.") % {"date": _history_start(now).isoformat()}
    return None
