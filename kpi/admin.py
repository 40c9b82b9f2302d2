"""Admin pages of `kpi` (placeholder until its issue lands)."""

from __future__ import annotations

from flask import Blueprint, Flask, render_template

from bot.auth import register_nav, require_role

bp = Blueprint("kpi_admin", __name__, url_prefix="/admin/kpi")


@bp.get("")
@require_role('viewer', 'pr', 'faq')
def index() -> str:
    """Placeholder page."""
    return render_template("admin/placeholder.html", title="利用状況（KPI）")


def init_app(app: Flask) -> None:
    """Register the pages and the navigation entry."""
    app.register_blueprint(bp)
    register_nav("利用状況（KPI）", "kpi_admin.index", ['viewer', 'pr', 'faq'], order=30)
