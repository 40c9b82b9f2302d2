"""KPI dashboard (/admin/kpi): month picker, KPI cards with their plans, charts, CSV, printable report,
and the usage rate's denominator, which an administrator sets here."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, select

from bot.audit_text import register_audit_text
from bot.auth import AUDIT_ACTION_LABELS, audit, current_staff, has_role, register_nav, require_role
from bot.dates import japanese_date, jst_datetime
from bot.db import get_session, utcnow
from kpi.cities import CityKpiConfig, Denominator, load_city_config
from kpi.definitions import KPIS
from kpi.hooks import hooks
from kpi.metrics import JST, Month
from kpi.models import UsageEvent
from kpi.report import MonthlyReport, build_report
from kpi.service import (
    DENOMINATOR_BASES, DenominatorError, DenominatorForm, parse_denominator, set_denominator,
    with_stored_denominator,
)

bp = Blueprint("kpi_admin", __name__, url_prefix="/admin/kpi")

# viewer and up: every staff role may read the KPI (admin may open everything anyway).
KPI_ROLES = ("viewer", "pr", "faq")
DENOMINATOR_ROLES = ("admin",)
CSV_ALL = "all"
PICKER_MIN_MONTHS = 12  # the month picker offers at least the last year
PICKER_MAX_MONTHS = 120


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
    """The report of the month for this app's city (with the denominator set on this screen, if any)."""
    session = get_session()
    city = with_stored_denominator(session, city_config())
    return build_report(session, city, month, hooks(current_app), cache=month_cache())


def month_choices(shown: Month, this_month: Month) -> list[Month]:
    """The months the picker offers, newest first: from the first recorded use (at least the last
    year, at most ten) to this month, and the month shown."""
    first = get_session().scalar(select(func.min(UsageEvent.occurred_at)))
    oldest = this_month.shift(-(PICKER_MIN_MONTHS - 1))
    if first is not None:
        oldest = max(min(oldest, Month.of(first)), this_month.shift(-(PICKER_MAX_MONTHS - 1)))
    months = [this_month.shift(-i) for i in range((this_month.year - oldest.year) * 12 + this_month.month - oldest.month + 1)]
    if shown not in months:
        months.append(shown)
        months.sort(reverse=True)
    return months


def _dashboard(month: Month, form: DenominatorForm | None = None, errors: list[str] | None = None, status: int = 200) -> Any:
    report = monthly_report(month)
    this_month = Month.of(utcnow())
    if form is None:
        current = report.city.denominator
        form = DenominatorForm(
            value=f"{current.value:,}" if current else "", basis=current.basis if current else "",
            as_of=japanese_date(current.as_of) if current else "", source=current.source if current else "",
        )
    return render_template(
        "kpi/dashboard.html",
        report=report,
        month=month,
        this_month=this_month,
        months=month_choices(month, this_month),
        definitions=KPIS,
        can_set_denominator=has_role(current_staff(), DENOMINATOR_ROLES),
        denominator_form=form,
        denominator_errors=errors or [],
        denominator_bases=DENOMINATOR_BASES,
    ), status


@bp.get("")
@require_role(*KPI_ROLES)
def index() -> Any:
    """The dashboard of one month."""
    return _dashboard(requested_month())


def _denominator_text(denominator: Denominator | None) -> str:
    if denominator is None:
        return "未設定"
    return f"{denominator.basis} {denominator.value:,}（{japanese_date(denominator.as_of)}時点、出典: {denominator.source}）"


@bp.post("/denominator")
@require_role(*DENOMINATOR_ROLES)
def denominator() -> Any:
    """Set the usage rate's denominator (population or households, its date and source): admin only."""
    form = request.form
    typed = DenominatorForm(value=form.get("value", ""), basis=form.get("basis", ""), as_of=form.get("as_of", ""),
                            source=form.get("source", ""))
    try:
        month = Month.parse(form.get("month", "")) if form.get("month") else Month.of(utcnow())
    except ValueError:
        month = Month.of(utcnow())
    session = get_session()
    try:
        new = parse_denominator(typed, utcnow().astimezone(JST).date())
    except DenominatorError as exc:
        return _dashboard(month, typed, exc.errors, 400)
    before = with_stored_denominator(session, city_config()).denominator
    if before == new:
        flash("LINE利用率の分母は変わりませんでした。", "info")
        return redirect(url_for("kpi_admin.index", month=month.key) + "#denominator")
    set_denominator(session, city_config().municipality, new, current_staff())
    audit(session, "kpi_denominator_set", "LINE利用率の分母", value=new.value, basis=new.basis, as_of=new.as_of,
          source=new.source, before=_denominator_text(before))
    session.commit()
    flash(f"LINE利用率の分母を「{_denominator_text(new)}」にしました。利用率はこの数で計算します。", "success")
    return redirect(url_for("kpi_admin.index", month=month.key) + "#denominator")


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
        return jst_datetime(value)
    if isinstance(value, Month):
        return value.label
    return str(value)


def _audit_export(row: Any) -> str:
    month, _, table = row.target.partition("/")
    which = "全表" if table == CSV_ALL else f"表「{table}」"
    try:
        month = Month.parse(month).label
    except ValueError:
        pass
    return f"KPI の{which}を CSV でダウンロード（{month}）"


def _audit_denominator(row: Any) -> str:
    d = row.detail or {}
    new = Denominator(value=d["value"], basis=d["basis"], as_of=d["as_of"], source=d["source"])
    return f"LINE利用率の分母を「{_denominator_text(new)}」に設定（変更前: {d.get('before') or '未設定'}）"


# The KPI actions of the audit log in sentences (bot.audit_text).
AUDIT_TEXTS = {
    "kpi_export": _audit_export,
    "kpi_record_friends": lambda row: (f"{japanese_date(row.target)}の友だち数 {row.detail['followers']:,}人 を記録"
                                       f"（出典: {row.detail.get('source') or 'なし'}）"),
    "kpi_denominator_set": _audit_denominator,
}


def init_app(app: Flask) -> None:
    """Load the city's KPI settings (a bad file stops the start), register pages and navigation."""
    app.extensions["kpi_city"] = load_city_config(app.config["MUNICIPALITY"], app.config.get("KPI_CONFIG_FILE"))
    hooks(app)
    app.register_blueprint(bp)
    app.add_template_filter(format_cell, "kpi_cell")
    AUDIT_ACTION_LABELS.setdefault("kpi_export", "KPIのCSVダウンロード")
    AUDIT_ACTION_LABELS.setdefault("kpi_record_friends", "友だち数（LINE集計値）の記録")
    AUDIT_ACTION_LABELS.setdefault("kpi_denominator_set", "LINE利用率の分母の設定")
    for action, text in AUDIT_TEXTS.items():
        register_audit_text(action, text)
    register_nav("利用状況（KPI）", "kpi_admin.index", list(KPI_ROLES), order=30)
