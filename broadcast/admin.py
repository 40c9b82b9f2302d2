"""Admin pages of `broadcast` (placeholder until its issue lands)."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template

from bot.auth import register_nav, require_role

bp = Blueprint("broadcast_admin", __name__, url_prefix="/admin/notices")


@bp.get("")
@require_role('pr')
def index() -> str:
    """Placeholder page."""
    return render_template("admin/placeholder.html", title="お知らせ配信")


def init_app(app: Flask) -> None:
    """Register the pages and the navigation entry."""
    app.register_blueprint(bp)
    register_nav("お知らせ配信", "broadcast_admin.index", ['pr'], order=10)
