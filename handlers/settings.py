"""Residents' notice settings in the chat (the segments issue fills this in).

TEXT_COMMANDS maps a resident's exact (normalised) text, such as 「設定」, to a handler that runs
before FAQ matching; POSTBACK_ACTIONS maps a postback action name to its handler.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handlers.context import EventContext

TextCommand = Callable[[EventContext, int | None], None]
PostbackAction = Callable[[EventContext, dict[str, Any], int | None], None]

TEXT_COMMANDS: dict[str, TextCommand] = {}
POSTBACK_ACTIONS: dict[str, PostbackAction] = {}
