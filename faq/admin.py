"""Admin pages of `faq` (placeholder until its issue lands)."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template

from bot.auth import register_nav, require_role

bp = Blueprint("faq_admin", __name__, url_prefix="/admin/faq")


@bp.get("")
@require_role('faq')
def index() -> str:
    """Placeholder page."""
    return render_template("admin/placeholder.html", title="FAQ管理")


def init_app(app: Flask) -> None:
    """Register the pages and the navigation entry."""
    app.register_blueprint(bp)
    register_nav("FAQ管理", "faq_admin.index", ['faq'], order=20)
