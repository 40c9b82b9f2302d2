"""Reply builders: LINE message objects as plain dicts (camelCase, as the API expects)."""

from __future__ import annotations

import json
from typing import Any

MAX_TEXT = 5000
MAX_LABEL = 20
MAX_QUICK_REPLY_ITEMS = 13


def _label(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "…"


def text(body: str, quick_replies: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A text message, cut to LINE's 5000 UTF-16 units, with optional quick-reply buttons."""
    while len(body.encode("utf-16-le")) // 2 > MAX_TEXT:
        body = body[: len(body) - 100] + "…"
    message: dict[str, Any] = {"type": "text", "text": body}
    if quick_replies:
        message["quickReply"] = {"items": quick_replies[:MAX_QUICK_REPLY_ITEMS]}
    return message


def postback_button(label: str, data: dict[str, Any], display_text: str | None = None) -> dict[str, Any]:
    """A quick-reply item that sends a postback (data is JSON, ≤ 300 chars)."""
    encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if len(encoded) > 300:
        raise ValueError("postback data longer than 300 characters")
    action: dict[str, Any] = {"type": "postback", "label": _label(label), "data": encoded}
    if display_text:
        action["displayText"] = display_text[:300]
    return {"type": "action", "action": action}


def message_button(label: str, text_to_send: str | None = None) -> dict[str, Any]:
    """A quick-reply item that sends a text message as the resident."""
    return {"type": "action", "action": {"type": "message", "label": _label(label), "text": (text_to_send or label)[:300]}}


def parse_postback_data(data: str) -> dict[str, Any] | None:
    """Our postback data back to a dict; None when it is not ours (stale or forged)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return None
    return value if isinstance(value, dict) else None
