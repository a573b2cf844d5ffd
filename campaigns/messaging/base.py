"""The provider interface and the choice of provider per channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string


@dataclass(frozen=True)
class Outgoing:
    """One message as a provider sees it."""

    key: str  # the idempotency key: the same message sent twice is one message where the provider deduplicates
    channel: str
    recipient: str
    text: str
    subject: str = ""
    html: str = ""
    template_code: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


class SendError(Exception):
    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class TransientError(SendError):
    """Worth retrying later: the provider was slow, busy or down."""


class PermanentError(SendError):
    """Never worth retrying: the provider refused this message."""


class Provider(Protocol):
    name: str
    # True when the provider honours the idempotency key: a message left mid-send by a dead worker
    # may then be sent again with the same key; otherwise it is checked or left to a person.
    deduplicates: bool

    def send(self, message: Outgoing) -> str: ...


# The providers built so far, so that a reset can close the connections they hold.
_built: list[Provider] = []


@cache
def _provider(path: str) -> Provider:
    try:
        factory = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(f"messaging provider {path!r}: {error}") from None
    provider: Provider = factory()
    _built.append(provider)
    return provider


def provider_for(channel: str) -> Provider:
    """The configured provider of a channel (settings.MESSAGING_PROVIDERS: channel -> dotted path)."""
    path = settings.MESSAGING_PROVIDERS.get(channel)
    if not path:
        raise ImproperlyConfigured(f"no messaging provider for the channel {channel!r}")
    return _provider(path)


def providers_reset() -> None:
    """Forget the providers built so far (after a change of settings, in tests), closing the
    connections of those that keep some open (`close()`)."""
    _provider.cache_clear()
    while _built:
        close = getattr(_built.pop(), "close", None)
        if close is not None:
            close()
