"""`flask kpi ...` commands (placeholder until its issue lands)."""

from __future__ import annotations

from flask.cli import AppGroup

kpi_cli = AppGroup("kpi", help="kpi commands.")
