"""POST /callback: verify the signature, parse, store in the inbox, acknowledge."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from typing import Any

from flask import Blueprint, current_app, request
from sqlalchemy.exc import SQLAlchemyError

from bot import metrics
from handlers.inbox import IncomingEvent, dedupe_key
from handlers.validate import normalise_event

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)


def compute_signature(channel_secret: str, body: bytes) -> str:
    """LINE's X-Line-Signature: base64(HMAC-SHA256(channel secret, raw body))."""
    digest = hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_signature(channel_secret: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of the signature header against the raw body."""
    if not signature:
        return False
    return hmac.compare_digest(compute_signature(channel_secret, body).encode(), signature.strip().encode())


def parse_events(payload: Any) -> tuple[list[IncomingEvent], int]:
    """The storable events of a webhook body, and how many were skipped as malformed."""
    events = payload.get("events")
    accepted: list[IncomingEvent] = []
    skipped = 0
    for index, raw in enumerate(events):
        event, problem = normalise_event(raw)
        if event is None:
            skipped += 1
            # The index and the reason only: never a resident's text or ids.
            log.warning("webhook event %d skipped: %s", index, problem)
            continue
        accepted.append(IncomingEvent(dedupe_key(event), event["type"], event["timestamp"], event))
    return accepted, skipped


def _answer(status: int, message: str) -> tuple[dict[str, str], int]:
    return {"message": message}, status


@bp.post("/callback")
def callback() -> tuple[dict[str, Any], int]:
    """LINE's webhook endpoint."""
    config = current_app.config
    limit = int(config["WEBHOOK_MAX_BODY_BYTES"])
    if (request.content_length or 0) > limit:
        log.warning("webhook body too large: %s bytes", request.content_length)
        metrics.webhook_request("too_large")
        return _answer(413, "request body too large")
    body = request.get_data(cache=False)
    if len(body) > limit:
        log.warning("webhook body too large: %d bytes", len(body))
        metrics.webhook_request("too_large")
        return _answer(413, "request body too large")
    if not verify_signature(config["LINE_CHANNEL_SECRET"], body, request.headers.get("X-Line-Signature")):
        log.warning("webhook signature missing or invalid")
        metrics.webhook_request("bad_signature")
        return _answer(400, "invalid signature")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError; deep nesting is not
        log.warning("webhook body is not JSON")
        metrics.webhook_request("bad_body")
        return _answer(400, "malformed JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        log.warning("webhook body has no events list")
        metrics.webhook_request("bad_body")
        return _answer(400, "events must be a list")

    accepted, skipped = parse_events(payload)
    inbox = current_app.extensions["inbox"]
    try:
        new = inbox.writer.store(accepted)
    except (SQLAlchemyError, TimeoutError):
        # Not stored: a non-2xx makes LINE redeliver, so nothing is lost.
        log.exception("webhook events could not be stored")
        metrics.webhook_request("unavailable")
        return _answer(503, "temporarily unavailable")
    if new:
        inbox.notify()
        inbox.wait_for_room()  # stored already: waiting only slows the sender while we catch up
    metrics.webhook_request("stored", new=new, duplicates=len(accepted) - new, skipped=skipped)
    if len(accepted) - new:
        log.info("webhook: %d redelivered event(s) acknowledged without processing", len(accepted) - new)
    return {"stored": new, "duplicates": len(accepted) - new, "skipped": skipped}, 200
