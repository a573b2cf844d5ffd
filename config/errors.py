"""403 and 404 as product pages: Chinese, with the menu, so a consultant who follows a stale
link or opens another campus's student can carry on from the page instead of a bare error.

Django answers a view's Http404 with its technical page when DEBUG is on (as `make run`
sets it) and uses `handler404` only with DEBUG off; the middleware below makes the product
page the answer in both, so what a new user sees on the embedded default is what
production shows.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve
from rest_framework import exceptions

from config.api_errors import error_body


def _is_api(request: HttpRequest) -> bool:
    # An API client reads JSON in the one error shape (config/api_errors.py), even for a URL
    # that names no endpoint (/api/v1/students/abc/), which never reaches DRF.
    return request.path_info.startswith("/api/")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(error_body("not_found", str(exceptions.NotFound.default_detail)), status=404)
    return render(request, "404.html", status=404)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return JsonResponse(
            error_body("permission_denied", str(exceptions.PermissionDenied.default_detail)), status=403
        )
    return render(request, "403.html", status=403)


class ProductErrorPagesMiddleware:
    """Last in MIDDLEWARE: the user is known (the menu shows) and CommonMiddleware still sees
    the 404 of a URL missing its slash and redirects it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            resolve(request.path_info)
        except Resolver404:
            return page_not_found(request)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, Http404):
            return page_not_found(request, exception)
        return None
