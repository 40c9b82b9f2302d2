"""Postback events (buttons the bot offered)."""

from __future__ import annotations

import logging

from handlers.context import EventContext
from handlers.replies import parse_postback_data
from kpi.service import record_usage

log = logging.getLogger(__name__)


def handle_postback(ctx: EventContext) -> None:
    """Count the tap; actions arrive with the FAQ and settings issues."""
    data = parse_postback_data(str((ctx.event.get("postback") or {}).get("data", "")))
    resident = ctx.resident()
    record_usage(ctx.session, "postback", resident.id if resident else None, action=(data or {}).get("a"))
    if data is None:
        log.info("postback with data that is not ours ignored: event=%s", ctx.webhook_event_id)
