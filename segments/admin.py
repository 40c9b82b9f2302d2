"""Admin pages of `segments` (none yet: segments are managed from the notices pages and the CLI)."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Nothing to register yet."""
