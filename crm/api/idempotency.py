"""`Idempotency-Key` on creating POSTs: mobile networks retry, and a retried request must not
create a second trial request, lead or answer.

The first request with a key claims it (one row per caller and key, by a unique constraint),
runs, and stores its answer when it succeeded; the same key again replays that answer with
`Idempotent-Replayed: true` and creates nothing. The same key with another body is refused
(422), and while the first is still running a second waits for nothing: 409, try again (a claim
left unanswered for 5 minutes was abandoned by a killed worker and is taken over). A failed
request (4xx, 5xx) gives its key back, so a corrected retry can use it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from config.api_errors import error_body
from crm.models import IdempotencyRecord

HEADER = "Idempotency-Key"
KEEP_FOR = timedelta(hours=24)
ABANDONED_AFTER = timedelta(minutes=5)
MAX_KEY = 255

# For `extend_schema(parameters=[IDEMPOTENCY_PARAMETER])` on every view that honours it.
IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description="Any unique string up to 255 characters; a retry with the same key replays the first answer.",
)


def caller_of(request: Request) -> str:
    """Whose keys these are: a staff member or a guardian (keys never collide across callers)."""
    guardian = getattr(request.user, "guardian", None)
    if guardian is not None:
        return f"guardian:{guardian.pk}"
    return f"user:{request.user.pk}"


def _fingerprint(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str) if request.data else ""
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _claim(caller: str, key: str, fingerprint: str) -> IdempotencyRecord | None:
    """Claim the key (None: claimed now) or return the row of whoever claimed it first.

    A claim older than KEEP_FOR is forgotten, and so is one still unanswered after
    ABANDONED_AFTER (its worker was killed mid-request: no request runs that long)."""
    now = timezone.now()
    rows = IdempotencyRecord.objects.filter(caller=caller, key=key)
    rows.filter(Q(created_at__lt=now - KEEP_FOR) | Q(status_code=None, created_at__lt=now - ABANDONED_AFTER)).delete()
    for _attempt in range(3):
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(caller=caller, key=key, fingerprint=fingerprint)
            return None
        except IntegrityError:
            first = rows.first()
            if first is not None:
                return first
            # The first request failed and gave its key back in between: claim again.
    raise IntegrityError(f"idempotency key {key!r} could not be claimed")


def idempotency_sweep() -> int:
    """Forget the answers older than KEEP_FOR (the nightly beat): a retry comes within minutes."""
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - KEEP_FOR).delete()
    return deleted


Handler = Callable[..., Response]


def idempotent(handler: Handler) -> Handler:
    """Decorate a view's `post` (or `create`): honour the caller's Idempotency-Key, if sent."""

    @wraps(handler)
    def wrapped(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER, "").strip()
        if not key or not request.user.is_authenticated:
            return handler(view, request, *args, **kwargs)
        if len(key) > MAX_KEY:
            return Response(
                error_body("invalid", _("The Idempotency-Key is longer than 255 characters.")),
                status=status.HTTP_400_BAD_REQUEST,
            )
        caller, fingerprint = caller_of(request), _fingerprint(request)
        first = _claim(caller, key, fingerprint)
        if first is not None:
            if first.fingerprint != fingerprint:
                return Response(
                    error_body("idempotency_key_reused", _("This Idempotency-Key was used for another request.")),
                    status=status.HTTP_422_UNPROCESSABLE_ENTITY,
                )
            if first.status_code is None:
                return Response(
                    error_body("request_in_progress", _("The first request with this key is still running.")),
                    status=status.HTTP_409_CONFLICT,
                )
            replay = Response(first.body, status=first.status_code)
            replay["Idempotent-Replayed"] = "true"
            return replay
        try:
            response = handler(view, request, *args, **kwargs)
        except BaseException:
            IdempotencyRecord.objects.filter(caller=caller, key=key, status_code=None).delete()
            raise
        if 200 <= response.status_code < 300:
            # Stored as the client saw it (DRF's dates and decimals), so a replay is byte for byte the same.
            body = json.loads(JSONRenderer().render(response.data)) if response.data is not None else None
            IdempotencyRecord.objects.filter(caller=caller, key=key).update(status_code=response.status_code, body=body)
        else:
            IdempotencyRecord.objects.filter(caller=caller, key=key, status_code=None).delete()
        return response

    return wrapped
