"""Input fields every API shares."""

from __future__ import annotations

import datetime as dt

from rest_framework import serializers


class DateTimeInput(serializers.DateTimeField):
    """DRF's DateTimeField, with a time at the edge of the calendar ("0001-01-01T00:00", which
    falls before year 1 once moved to UTC) refused as invalid instead of overflowing into a 500."""

    def enforce_timezone(self, value: dt.datetime) -> dt.datetime:
        try:
            return super().enforce_timezone(value)
        except (OverflowError, ValueError):
            self.fail("invalid", format="YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]")
            raise  # fail() raises; this line keeps the type checker content
