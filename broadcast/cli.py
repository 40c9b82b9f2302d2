"""`flask broadcast ...` commands (placeholder until its issue lands)."""

from __future__ import annotations

from flask.cli import AppGroup

broadcast_cli = AppGroup("broadcast", help="broadcast commands.")
