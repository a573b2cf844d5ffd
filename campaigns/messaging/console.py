"""The development provider: the message is kept in the database (its Message row) and written to
the log, so `make run` needs no gateway and a login code can be read off the console."""

from __future__ import annotations

import logging

from campaigns.messaging.base import Outgoing

logger = logging.getLogger("campaigns.console")


class ConsoleProvider:
    name = "console"
    deduplicates = True

    def send(self, message: Outgoing) -> str:
        subject = f" [{message.subject}]" if message.subject else ""
        logger.warning("%s to %s%s: %s", message.channel, message.recipient, subject, message.text)
        return f"console-{message.key}"
