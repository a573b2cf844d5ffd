"""Providers behind one interface: what the messaging layer hands a message to, per channel.

`provider_for(channel)` returns the configured provider (settings `MESSAGING_PROVIDERS`): the
console provider in development (the embedded default needs nothing), an HTTP SMS gateway, SMTP
email, WeChat subscription messages. A provider's `send` returns the provider's message id or
raises `TransientError` (worth retrying: a timeout, a 429, a 5xx) or `PermanentError` (never:
an invalid number, a template refused).
"""

from __future__ import annotations

from campaigns.messaging.base import Outgoing, PermanentError, Provider, TransientError, provider_for

__all__ = ["Outgoing", "PermanentError", "Provider", "TransientError", "provider_for"]
