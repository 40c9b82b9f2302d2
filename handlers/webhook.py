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

from handlers.inbox import IncomingEvent, dedupe_key

log = logging.getLogger(__name__)
bp = Blueprint("webhook", __name__)

SOURCE_TYPES = {"user", "group", "room"}


def compute_signature(channel_secret: str, body: bytes) -> str:
    """LINE's X-Line-Signature: base64(HMAC-SHA256(channel secret, raw body))."""
    digest = hmac.new(channel_secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_signature(channel_secret: str, body: bytes, signature: str | None) -> bool:
    """Constant-time check of the signature header against the raw body."""
    if not signature:
        return False
    return hmac.compare_digest(compute_signature(channel_secret, body).encode(), signature.strip().encode())


def _problem(event: Any) -> str | None:
    """Why an event cannot be stored (structure only; unknown types are fine), or None."""
    if not isinstance(event, dict):
        return "event is not an object"
    if not isinstance(event.get("type"), str) or not event["type"]:
        return "event has no type"
    if not isinstance(event.get("timestamp"), int) or isinstance(event.get("timestamp"), bool):
        return "timestamp is not an integer"
    source = event.get("source")
    if source is not None and (not isinstance(source, dict) or source.get("type") not in SOURCE_TYPES):
        return "source is malformed"
    for key in ("replyToken", "webhookEventId", "mode"):
        if key in event and not isinstance(event[key], str):
            return f"{key} is not a string"
    if event["type"] == "message":
        message = event.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return "message is malformed"
        if message["type"] == "text" and not isinstance(message.get("text"), str):
            return "text message has no text"
    if event["type"] == "postback":
        postback = event.get("postback")
        if not isinstance(postback, dict) or not isinstance(postback.get("data"), str):
            return "postback is malformed"
    return None


def _without_nul(value: Any) -> Any:
    """The value with NUL characters removed from every string (PostgreSQL cannot store them)."""
    if isinstance(value, str):
        return value.replace("\x00", "")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def parse_events(payload: Any) -> tuple[list[IncomingEvent], int]:
    """The storable events of a webhook body, and how many were skipped as malformed."""
    events = payload.get("events")
    accepted: list[IncomingEvent] = []
    skipped = 0
    for index, event in enumerate(events):
        problem = _problem(event)
        if problem:
            skipped += 1
            log.warning("webhook event %d skipped: %s", index, problem)
            continue
        event = _without_nul(event)
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
        return _answer(413, "request body too large")
    body = request.get_data(cache=False)
    if len(body) > limit:
        log.warning("webhook body too large: %d bytes", len(body))
        return _answer(413, "request body too large")
    if not verify_signature(config["LINE_CHANNEL_SECRET"], body, request.headers.get("X-Line-Signature")):
        log.warning("webhook signature missing or invalid")
        return _answer(400, "invalid signature")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        log.warning("webhook body is not JSON")
        return _answer(400, "malformed JSON")
    if not isinstance(payload, dict) or not isinstance(payload.get("events"), list):
        log.warning("webhook body has no events list")
        return _answer(400, "events must be a list")

    accepted, skipped = parse_events(payload)
    inbox = current_app.extensions["inbox"]
    try:
        new = inbox.writer.store(accepted)
    except (SQLAlchemyError, TimeoutError):
        # Not stored: a non-2xx makes LINE redeliver, so nothing is lost.
        log.exception("webhook events could not be stored")
        return _answer(503, "temporarily unavailable")
    if new:
        inbox.notify()
        inbox.wait_for_room()  # stored already: waiting only slows the sender while we catch up
    if len(accepted) - new:
        log.info("webhook: %d redelivered event(s) acknowledged without processing", len(accepted) - new)
    return {"stored": new, "duplicates": len(accepted) - new, "skipped": skipped}, 200
