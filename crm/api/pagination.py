"""Every list is paged. Small lists (a family's children, segments) by page number; lists
that grow without bound (students, consultations, attendance) by cursor, which costs the same
on the ten-thousandth page as on the first and never counts the whole table."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination, PageNumberPagination


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
