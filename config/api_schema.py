"""The OpenAPI contract at /api/schema/ beyond what drf-spectacular reads from the views: the
three ways to authenticate, and the one error shape (config/api_errors.py) as the answer of every
error an operation can give.

The authentication extensions register themselves when this module is imported (config/urls.py
imports it, so the schema view and `manage.py spectacular` always see them). The hook is in
`SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]`. tests/test_api_contract.py fuzzes the result.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework.authentication import BaseAuthentication
from rest_framework.metadata import SimpleMetadata

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error of the API: a code, a sentence a person can read, and each field's problems.",
    "properties": {
        "code": {
            "type": "string",
            "description": "invalid, not_found, permission_denied, not_authenticated, throttled...",
        },
        "message": {"type": "string"},
        "fields": {
            "type": "object",
            "description": "Per field (dotted for nested input): its problems; `path` names a condition tree's node.",
            "additionalProperties": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"message": {"type": "string"}, "path": {"type": "string"}},
                    "required": ["message", "path"],
                },
            },
        },
    },
    "required": ["code", "message", "fields"],
}

ERROR_DESCRIPTIONS = {
    "400": "The input is not valid (the fields say why), or the service refused it.",
    "401": "No credentials, or credentials that are not valid (expired, ended, unknown).",
    "403": "The caller may not do this (their role, a missing CSRF token, an unsigned webhook).",
    "404": "Not here, or not the caller's to see (another campus's, another family's), or no such page.",
    "409": "The first request with this Idempotency-Key is still running: try again.",
    "415": "The body is not in a media type the operation reads.",
    "422": "This Idempotency-Key was used for another request.",
    "429": "Too many requests: wait (Retry-After) and try again.",
}
BODY_METHODS = {"post", "put", "patch"}


class StaffTokenScheme(OpenApiAuthenticationExtension):
    target_class = "crm.api.auth.StaffTokenAuthentication"
    name = "Token"
    priority = 1  # before drf-spectacular's own "tokenAuth" for TokenAuthentication's subclasses

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        scheme = build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Token")
        scheme["description"] = "Staff integrations: `Authorization: Token <key>` (keys are made in the admin)."
        return scheme


class ParentTokenScheme(OpenApiAuthenticationExtension):
    target_class = "parents.auth.ParentTokenAuthentication"
    name = "Bearer"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "The parents' mini-program: `Authorization: Bearer <access token>` from a parent login.",
        }


class SessionScheme(OpenApiAuthenticationExtension):
    target_class = "rest_framework.authentication.SessionAuthentication"
    name = "Session"
    priority = 1  # replaces drf-spectacular's "cookieAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "The staff pages' session (unsafe methods also need the CSRF token).",
        }


class SchemaFirstMetadata(SimpleMetadata):
    """OPTIONS names the view and the media types it reads and writes; its fields are in the
    schema. DRF's default also describes the fields of the serializer a POST or PUT would take,
    which fails (a 500) for a view that builds its serializers per request instead of naming a
    `serializer_class`."""

    def determine_actions(self, request: Any, view: Any) -> dict[str, Any]:
        return {}


def _error_codes(operation: dict[str, Any], method: str, view: Any) -> set[str]:
    """The error statuses this operation can answer, judged from its view and its parameters."""
    parameters = operation.get("parameters", [])
    locations = {p.get("in") for p in parameters}
    names = {p.get("name") for p in parameters}
    codes = {"403"}  # a role refused, a missing CSRF token, an unsigned webhook
    if method in BODY_METHODS or method == "delete" or "query" in locations or "header" in locations:
        codes.add("400")
    if "requestBody" in operation:
        codes |= {"400", "415"}
    if "path" in locations or names & {"page", "cursor"}:
        codes.add("404")  # another campus's object, or a page past the end
    if "Idempotency-Key" in names:
        codes |= {"409", "422"}
    if view is None:
        return codes | {"400", "401", "404", "429"}
    authenticators: list[BaseAuthentication] = view.get_authenticators()
    if authenticators:
        codes.add("401")  # a bad or expired credential is refused even where anyone may call
    if view.get_throttles():
        codes.add("429")
    return codes


def _shape(path: str) -> str:
    # drf-spectacular renames a path's `{pk}` to `{id}` in the schema; match on the shape.
    return re.sub(r"\{[^}]*\}", "{}", path)


def document_errors(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS: the `Error` component, and it as every error answer of every
    operation (a response a view documented itself is kept)."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    views = {
        (_shape(path), method.lower()): callback.cls(**getattr(callback, "initkwargs", {}))
        for path, _regex, method, callback in getattr(generator, "endpoints", [])
        if hasattr(callback, "cls")
    }
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code in sorted(_error_codes(operation, method, views.get((_shape(path), method)))):
                responses.setdefault(
                    code,
                    {
                        "description": ERROR_DESCRIPTIONS[code],
                        "content": {
                            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}
                        },
                    },
                )
            operation["responses"] = dict(sorted(responses.items()))
    return result
