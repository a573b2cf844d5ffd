"""The API's one error shape, for every endpoint and for the pages' JSON answers:

    {"code": "invalid", "message": "...", "fields": {"name": [{"message": "...", "path": ""}]}}

`code` is DRF's (invalid, not_found, permission_denied, not_authenticated...), `message` a
sentence a person can read, `fields` each field's problems; a condition's problem names the
node of its tree in `path` ("1.0": the second node's first).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


def error_body(code: str, message: str, fields: dict[str, list[dict[str, str]]] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "fields": fields or {}}


class FieldProblem(exceptions.APIException):
    """A 400 about one field, with the path of the part at fault (a condition tree's node)."""

    status_code = 400
    default_code = "invalid"

    def __init__(self, field: str, message: str, path: str = "") -> None:
        super().__init__(message, "invalid")
        self.fields = {field: [{"message": message, "path": path}]}


def django_error_fields(error: DjangoValidationError) -> dict[str, list[dict[str, str]]]:
    """A service's ValidationError, field by field, with each message's tree path if it has one."""
    fields: dict[str, list[dict[str, str]]] = {}
    items = error.error_dict.items() if hasattr(error, "error_dict") else [("non_field_errors", error.error_list)]
    for key, errors in items:
        for item in errors:
            params = item.params or {}
            message = item.message % params if params and "%(" in str(item.message) else str(item.message)
            fields.setdefault(key, []).append({"message": str(message), "path": str(params.get("path", ""))})
    return fields


def _drf_fields(detail: Any, prefix: str = "") -> dict[str, list[dict[str, str]]]:
    fields: dict[str, list[dict[str, str]]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            for name, problems in _drf_fields(value, f"{prefix}.{key}" if prefix else str(key)).items():
                fields.setdefault(name, []).extend(problems)
    elif isinstance(detail, list):
        for value in detail:
            for name, problems in _drf_fields(value, prefix).items():
                fields.setdefault(name, []).extend(problems)
    else:
        fields.setdefault(prefix or "non_field_errors", []).append({"message": str(detail), "path": ""})
    return fields


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, answering in the one shape; a service's ValidationError is a 400 too."""
    if isinstance(exc, DjangoValidationError):
        fields = django_error_fields(exc)
        first = next((p["message"] for problems in fields.values() for p in problems), "")
        return Response(error_body("invalid", first or _("The data could not be saved."), fields), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, FieldProblem):
        response.data = error_body("invalid", str(exc.detail), exc.fields)
    elif isinstance(exc, exceptions.ValidationError):
        fields = _drf_fields(exc.detail)
        first = next((p["message"] for problems in fields.values() for p in problems), "")
        response.data = error_body("invalid", first, fields)
    else:
        codes = exc.get_codes()
        response.data = error_body(codes if isinstance(codes, str) else "error", str(exc.detail))
    return response


class ProblemFieldSerializer(serializers.Serializer):
    message = serializers.CharField()
    path = serializers.CharField(help_text="The part of a nested value at fault (a condition's node: 1.0), or blank.")


class ProblemSerializer(serializers.Serializer):
    """The one error shape, for the schema's error responses."""

    code = serializers.CharField(help_text="invalid, not_found, permission_denied, not_authenticated...")
    message = serializers.CharField()

    def get_fields(self) -> dict[str, serializers.Field]:
        # Declared here: a class attribute named `fields` would hide the serializer's own.
        fields = super().get_fields()
        fields["fields"] = serializers.DictField(
            child=ProblemFieldSerializer(many=True), help_text="Each field's problems, by name."
        )
        return fields


def problem_responses(*statuses: int) -> dict[int, type[ProblemSerializer]]:
    """`extend_schema(responses={200: ..., **problem_responses(400, 404)})`: the error answers an
    endpoint gives, in the one shape (401 and 403 come with every staff endpoint)."""
    return {status: ProblemSerializer for status in sorted({401, 403, *statuses})}
