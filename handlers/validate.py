"""One webhook event checked and made storable before it enters the inbox.

What LINE sends is trusted only after the signature check, and even then a single odd event
must not cost the other residents in the same request (or in the same group commit) their
answer. So every event is checked here, on its own:

* its structure: an object with a short `type`, an integer `timestamp` in a sane range, ids
  that are short strings of safe characters, a `source` of a known kind with its id, and the
  message/postback fields the handlers read (postback data no longer than LINE allows);
* every string, keys included, is made storable: NUL removed (PostgreSQL refuses it), lone
  surrogates replaced by U+FFFD (no driver can encode them to UTF-8); numbers must be finite
  and fit in 64 bits; nesting is bounded.

Ids are refused, never truncated or repaired: two different events must never share a key.
Unknown event types, message types and extra fields are accepted, as LINE adds new ones.
Nothing here recurses, and nothing raises for any JSON value.
"""

from __future__ import annotations

import math
import re
from typing import Any

MAX_DEPTH = 32  # containers inside the event (the event itself is level 0)
MAX_TIMESTAMP_MS = 2**53  # beyond any real date, and exact in every JSON reader
MAX_INT = 2**63  # numbers elsewhere must fit a signed 64-bit integer
SOURCE_ID_FIELDS = {"user": "userId", "group": "groupId", "room": "roomId"}
# LINE's user, group and room ids are 33 characters; our resident column holds 64.
SOURCE_ID_MAX = 64
# webhookEventId is the inbox's dedupe key (a 128-character column); LINE sends a 26-character ULID.
EVENT_ID_FIELDS = {"webhookEventId": 128, "replyToken": 256}
# LINE's limit on a postback action's data (messaging-api.yml); ours is JSON the handler parses,
# so a longer one is not ours, and one nested thousands deep would break the parser.
POSTBACK_DATA_MAX = 300
# Ids LINE issues are ASCII letters and digits; the punctuation below covers test and redelivery ids.
_ID_RE = re.compile(r"[0-9A-Za-z._:~+/=-]+")
_TYPE_RE = re.compile(r"[A-Za-z][0-9A-Za-z_.-]{0,63}")
_MODE_RE = re.compile(r"[A-Za-z]{1,32}")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def _id_problem(name: str, value: Any, limit: int) -> str | None:
    """Why value is not a usable id (refused, never repaired), or None."""
    if not isinstance(value, str):
        return f"{name} is not a string"
    if not value:
        return f"{name} is empty"
    if len(value) > limit:
        return f"{name} is too long"
    if not _ID_RE.fullmatch(value):
        return f"{name} has unsafe characters"
    return None


def _structure_problem(event: Any) -> str | None:
    """Why the event cannot be stored, judging only the fields we rely on; None when fine."""
    if not isinstance(event, dict):
        return "event is not an object"
    kind = event.get("type")
    if not isinstance(kind, str) or not _TYPE_RE.fullmatch(kind):
        return "event type is missing or malformed"
    timestamp = event.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool):
        return "timestamp is not an integer"
    if not 0 <= timestamp < MAX_TIMESTAMP_MS:
        return "timestamp is out of range"
    for name, limit in EVENT_ID_FIELDS.items():
        if name in event:
            problem = _id_problem(name, event[name], limit)
            if problem:
                return problem
    if "mode" in event and not (isinstance(event["mode"], str) and _MODE_RE.fullmatch(event["mode"])):
        return "mode is malformed"
    source = event.get("source")
    if source is not None:
        if not isinstance(source, dict):
            return "source is not an object"
        source_type = source.get("type")
        if not isinstance(source_type, str) or source_type not in SOURCE_ID_FIELDS:
            return "source type is unknown"
        if SOURCE_ID_FIELDS[source_type] not in source:
            return f"source has no {SOURCE_ID_FIELDS[source_type]}"
        for name in SOURCE_ID_FIELDS.values():
            if name in source:
                problem = _id_problem(f"source.{name}", source[name], SOURCE_ID_MAX)
                if problem:
                    return problem
    if kind == "message":
        message = event.get("message")
        if not isinstance(message, dict):
            return "message is not an object"
        if not isinstance(message.get("type"), str) or not _TYPE_RE.fullmatch(message["type"]):
            return "message type is missing or malformed"
        if message["type"] == "text" and not isinstance(message.get("text"), str):
            return "text message has no text"
    if kind == "postback":
        postback = event.get("postback")
        if not isinstance(postback, dict) or not isinstance(postback.get("data"), str):
            return "postback has no data"
        if len(postback["data"]) > POSTBACK_DATA_MAX:
            return "postback data is too long"
    return None


def _text(value: str) -> str:
    """The string without NUL and with lone surrogates replaced by U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if not value.isascii():
        value = _SURROGATE_RE.sub("\ufffd", value)
    return value


def _storable(event: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """A storable copy of the event (see the module docstring), or None and why not. Iterative."""
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(event, holder, 0, 0)]
    while stack:
        value, parent, slot, depth = stack.pop()
        if isinstance(value, str):
            parent[slot] = _text(value)
        elif value is None or isinstance(value, bool):
            parent[slot] = value
        elif isinstance(value, int):
            if not -MAX_INT <= value < MAX_INT:
                return None, "a number is out of range"
            parent[slot] = value
        elif isinstance(value, float):
            if not math.isfinite(value):
                return None, "a number is not finite"
            parent[slot] = value
        elif isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                return None, "nested too deeply"
            if isinstance(value, list):
                items: list[Any] = [None] * len(value)
                parent[slot] = items
                stack.extend((item, items, index, depth + 1) for index, item in enumerate(value))
                continue
            fields: dict[str, Any] = {}
            parent[slot] = fields
            for key, item in value.items():
                if not isinstance(key, str):
                    return None, "a key is not a string"
                clean = _text(key)
                if clean in fields:
                    # Two keys that differ only by NUL or surrogates: which one is meant?
                    return None, "a key is ambiguous"
                fields[clean] = None
                stack.append((item, fields, clean, depth + 1))
        else:
            return None, "a value is not JSON"
    return holder[0], None


def normalise_event(event: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The event made storable, or None and a short reason (no resident data in it)."""
    try:
        problem = _structure_problem(event)
        if problem:
            return None, problem
        return _storable(event)
    except Exception:  # noqa: BLE001 - a bug here must cost one event, never the request
        return None, "event could not be checked"
