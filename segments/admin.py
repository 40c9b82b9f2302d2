"""Admin pages of `segments` (none yet: segments are managed from the notices pages and the CLI)."""

from __future__ import annotations

from flask import Flask

from bot.auth import AUDIT_ACTION_LABELS

AUDIT_LABELS = {
    "segment_save": "セグメント保存",
    "segment_delete": "セグメント削除",
    "segment_privacy_override": "少人数セグメントへの配信を許可",
}


def init_app(app: Flask) -> None:
    """Name this package's audit actions on the audit page."""
    AUDIT_ACTION_LABELS.update(AUDIT_LABELS)
