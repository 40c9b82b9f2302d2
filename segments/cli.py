"""`flask segments ...` commands (placeholder until its issue lands)."""

from __future__ import annotations

from flask.cli import AppGroup

segments_cli = AppGroup("segments", help="segments commands.")
