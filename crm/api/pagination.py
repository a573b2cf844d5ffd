"""Every list is paged. Small lists (a family's children, segments) by page number; lists
that grow without bound (students, consultations, attendance) by cursor, which costs the same
on the ten-thousandth page as on the first and never counts the whole table."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.request import Request

from config.api_errors import FieldProblem


class PageNumberPage(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class CursorPage(CursorPagination):
    """Newest first by id (ids only grow), so the cursor needs no extra index."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-id"

    def decode_cursor(self, request: Request) -> Any:
        """A cursor that does not decode is a bad parameter (400, as the schema says), not a missing page."""
        try:
            cursor = super().decode_cursor(request)
        except NotFound as exc:
            raise self.bad_cursor() from exc
        position = str(cursor.position) if cursor is not None and cursor.position is not None else ""
        if position and not self.position_ok(position):
            raise self.bad_cursor()
        return cursor

    def position_ok(self, position: str) -> bool:
        # The position is an id (the ordering): anything else, or an id no table holds, was not made here.
        return position.isdigit() and int(position) < 2**63

    def bad_cursor(self) -> FieldProblem:
        return FieldProblem(self.cursor_query_param, _("This page link is not valid; start from the first page."))
