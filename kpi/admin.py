"""KPI dashboard (/admin/kpi): month picker, KPI cards with their plans, charts, CSV, printable report."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request

from bot.auth import AUDIT_ACTION_LABELS, audit, register_nav, require_role
from bot.db import get_session, utcnow
from kpi.cities import CityKpiConfig, load_city_config
from kpi.definitions import KPIS
from kpi.hooks import hooks
from kpi.metrics import Month
from kpi.report import MonthlyReport, build_report, csv_cell

bp = Blueprint("kpi_admin", __name__, url_prefix="/admin/kpi")

# viewer and up: every staff role may read the KPI (admin may open everything anyway).
KPI_ROLES = ("viewer", "pr", "faq")
CSV_ALL = "all"


def city_config(app: Flask | None = None) -> CityKpiConfig:
    """The KPI settings of this app's city (loaded once, at startup)."""
    return (app or current_app).extensions["kpi_city"]  # type: ignore[no-any-return]


def requested_month() -> Month:
    """The month in ?month=YYYY-MM, or the current month in Japan time; 400 when malformed."""
    raw = request.args.get("month", "").strip()
    if not raw:
        return Month.of(utcnow())
    try:
        return Month.parse(raw)
    except ValueError:
        abort(400)


def month_cache(app: Flask | None = None) -> dict[Month, Any]:
    """Settled months' figures, kept for the life of the process (see kpi.metrics.trend)."""
    return (app or current_app).extensions.setdefault("kpi_month_cache", {})  # type: ignore[no-any-return]


def monthly_report(month: Month) -> MonthlyReport:
    """The report of the month for this app's city."""
    return build_report(get_session(), city_config(), month, hooks(current_app), cache=month_cache())


@bp.get("")
@require_role(*KPI_ROLES)
def index() -> str:
    """The dashboard of one month."""
    month = requested_month()
    report = monthly_report(month)
    return render_template(
        "kpi/dashboard.html",
        report=report,
        month=month,
        this_month=Month.of(utcnow()),
        definitions=KPIS,
    )


@bp.get("/report")
@require_role(*KPI_ROLES)
def printable() -> str:
    """The monthly report for the city's PDCA review, laid out for printing."""
    month = requested_month()
    return render_template("kpi/report.html", report=monthly_report(month), definitions=KPIS, web=True)


@bp.get("/csv")
@require_role(*KPI_ROLES)
def download() -> Response:
    """One table (?table=KEY) or every table (?table=all) of the month as CSV (UTF-8 with BOM, for Excel)."""
    month = requested_month()
    key = request.args.get("table", CSV_ALL)
    report = monthly_report(month)
    if key == CSV_ALL:
        body = report.csv_text()
    else:
        try:
            body = report.table(key).csv_text()
        except KeyError:
            abort(404)
    session = get_session()
    audit(session, "kpi_export", f"{month.key}/{key}")
    session.commit()
    filename = f"kpi_{report.city.municipality}_{month.key}_{key}.csv"
    return Response(
        "\ufeff" + body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def format_cell(value: Any) -> str:
    """A table cell as shown: thousands separators, rates with two decimals, 「—」 for nothing."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, dt.datetime):
        return csv_cell(value)
    return str(value)


def init_app(app: Flask) -> None:
    """Load the city's KPI settings (a bad file stops the start), register pages and navigation."""
    app.extensions["kpi_city"] = load_city_config(app.config["MUNICIPALITY"], app.config.get("KPI_CONFIG_FILE"))
    hooks(app)
    app.register_blueprint(bp)
    app.add_template_filter(format_cell, "kpi_cell")
    AUDIT_ACTION_LABELS.setdefault("kpi_export", "KPIのCSVダウンロード")
    AUDIT_ACTION_LABELS.setdefault("kpi_record_friends", "友だち数（LINE集計値）の記録")
    register_nav("利用状況（KPI）", "kpi_admin.index", list(KPI_ROLES), order=30)
