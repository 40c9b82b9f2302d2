"""The monthly KPI report: cards, tables and charts shared by the dashboard, CSV and `flask kpi report`."""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from bot import csvsafe, plans
from bot.dates import japanese_date, jst_datetime
from kpi import charts
from kpi.charts import Reference, Series
from kpi.cities import CityKpiConfig, KpiPlan
from kpi.definitions import DECISION_LABELS, KPIS, USAGE_KIND_LABELS, KpiDefinition, format_value
from kpi.hooks import KpiHooks, Section
from kpi.metrics import JST, Month, MonthDetail, MonthFigures, ratio, trend

log = logging.getLogger(__name__)

TREND_MONTHS = 12
TOP_LIMIT = 10
NOT_SET = "未設定"
UNIT_NAMES = {"people": "人", "count": "件", "percent": "%"}
UNANSWERED_SECTION = "unanswered_clusters"


@dataclass(frozen=True)
class Table:
    """One table of the report; every table can be downloaded as CSV."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    note: str = ""

    def csv_text(self) -> str:
        """The table as CSV text (header row first; numbers unformatted, rates to 2 decimals)."""
        out = io.StringIO()
        writer = csvsafe.writer(out, lineterminator="\r\n")
        writer.writerow(self.columns)
        writer.writerows([csv_cell(value) for value in row] for row in self.rows)
        return out.getvalue()


@dataclass(frozen=True)
class Chart:
    """An SVG chart and what it shows."""

    key: str
    title: str
    svg: Markup
    note: str = ""


@dataclass(frozen=True)
class KpiCard:
    """One KPI of the month beside its plan: value, previous month, target, source."""

    definition: KpiDefinition
    value: float | int | None
    previous: float | int | None
    plan: KpiPlan
    note: str = ""

    @property
    def display(self) -> str:
        """The value as shown, 「未設定」 when it cannot be computed for want of settings."""
        if self.value is None and self.definition.id == "line_usage_rate":
            return NOT_SET
        return format_value(self.value, self.definition.unit, self.definition.decimals)

    @property
    def previous_display(self) -> str:
        """Last month's value as shown."""
        return format_value(self.previous, self.definition.unit, self.definition.decimals)

    @property
    def target_display(self) -> str:
        """The plan's target with its period, or 「未設定」."""
        target = self.plan.target
        return f"{target.text}（{target.period}）" if target else NOT_SET

    @property
    def baseline_display(self) -> str:
        """The plan's current figure with its period, or empty."""
        baseline = self.plan.baseline
        return f"{baseline.text}（{baseline.period}）" if baseline else ""


@dataclass
class MonthlyReport:
    """Everything shown for one month of one city."""

    city: CityKpiConfig
    month: Month
    generated_at: dt.datetime
    history: list[MonthDetail]
    cards: list[KpiCard] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: dict[str, Chart] = field(default_factory=dict)
    has_unanswered_section: bool = False

    @property
    def current(self) -> MonthDetail:
        """The month reported on."""
        return self.history[-1]

    @property
    def figures(self) -> MonthFigures:
        """The month's KPI figures."""
        return self.current.figures

    def table(self, key: str) -> Table:
        """A table by key; KeyError when there is none."""
        for table in self.tables:
            if table.key == key:
                return table
        raise KeyError(key)

    def csv_text(self) -> str:
        """Every table in one CSV: a 「■ title」 row before each, a blank row after."""
        out = io.StringIO()
        writer = csvsafe.writer(out, lineterminator="\r\n")
        writer.writerow([f"{self.city.name} LINE利用状況 月次報告", self.month.label])
        writer.writerow([])
        for table in self.tables:
            writer.writerow([f"■ {table.title}"])
            writer.writerow(table.columns)
            writer.writerows([csv_cell(value) for value in row] for row in table.rows)
            writer.writerow([])
        return out.getvalue()


def csv_cell(value: Any) -> str:
    """A value as a CSV cell: rates with two decimals, nothing for None (the writer, bot.csvsafe, keeps
    text that a spreadsheet would read as a formula from becoming one)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, Month):
        return value.key  # 2026-10: sorts in a spreadsheet (the page shows 2026年10月)
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dt.datetime):
        return value.astimezone(JST).strftime("%Y-%m-%d %H:%M")
    return str(value)


def jst_text(moment: dt.datetime) -> str:
    """A timestamp as Japan time, in Japanese (「2026年10月15日 10:00」)."""
    return jst_datetime(moment)


def _call(what: str, function: Any, *args: Any) -> Any:
    """Call another package's provider; its failure costs its table, never the whole report."""
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - a plug-in from another package; logged, the rest still shows
        log.exception("KPI provider failed: %s", what)
        return None


# --- building ------------------------------------------------------------------------------------------


def build_report(
    session: Session,
    city: CityKpiConfig,
    month: Month,
    kpi_hooks: KpiHooks | None = None,
    *,
    now: dt.datetime | None = None,
    cache: MutableMapping[Month, MonthDetail] | None = None,
) -> MonthlyReport:
    """Compute the month's report and the trend of the 12 months up to it (settled months from `cache`)."""
    kpi_hooks = kpi_hooks or KpiHooks()
    now = now or dt.datetime.now(dt.UTC)
    catalog: Mapping[str, tuple[str, str]] = {}
    if kpi_hooks.topic_catalog is not None:
        catalog = _call("topic catalog", kpi_hooks.topic_catalog, session, city.municipality) or {}
    history = trend(session, month, city, catalog, months=TREND_MONTHS, cache=cache, now=now)
    report = MonthlyReport(city, month, now, history)
    report.cards = _cards(report)
    report.tables = [
        _summary_table(report),
        _trend_table(report),
        _questions_table(report),
        _votes_table(report),
        _top_questions_table(report, catalog),
    ]
    section_tables = []
    for section in kpi_hooks.sections.values():
        rows = _call(f"section {section.key}", section.provider, session, city.municipality, month.start, month.end, TOP_LIMIT)
        table = _section_table(section, rows)
        section_tables.append(table)
        if section.chart_column is not None and rows:
            first = 1 if section.ranked else 0  # row[0] of a ranked table is the rank
            labels = [str(row[first]) for row in table.rows]
            values = [row[section.chart_column + first] or 0 for row in table.rows]
            report.charts[section.key] = Chart(section.key, section.title, charts.hbar_chart(
                f"chart-{section.key}", section.title, labels, values, unit="件"))
    report.has_unanswered_section = UNANSWERED_SECTION in kpi_hooks.sections
    report.tables += section_tables
    report.tables += [
        _categories_table(report),
        _hours_table(report),
        _notices_table(report),
        _usage_kinds_table(report),
    ]
    report.charts.update(_charts(report, catalog))
    return report


def _cards(report: MonthlyReport) -> list[KpiCard]:
    current, previous = report.figures, report.history[-2].figures if len(report.history) > 1 else None
    cards = []
    for kpi in KPIS:
        note = ""
        if kpi.id == "line_usage_rate":
            note = _rate_note(report)
        elif kpi.id == "friends" and current.friends_reported is not None:
            note = f"LINE公式アカウントの集計値: {current.friends_reported:,}人（{japanese_date(current.friends_reported_on)}）"
        elif kpi.id == "precision":
            note = f"評価 {current.direct_votes:,}件（はい {current.direct_helpful:,}件）"
        elif kpi.id == "notice_block_rate":
            note = f"24時間以内のブロック {current.notice_blocks:,}人"
        cards.append(KpiCard(kpi, current.value(kpi.id), previous.value(kpi.id) if previous else None,
                             report.city.plan_for(kpi.id), note))
    return cards


def _rate_note(report: MonthlyReport) -> str:
    denominator = report.city.denominator
    if denominator is None:
        return ("分母（人口または世帯数）が未設定のため算出できません"
                "（管理者が「利用状況（KPI）」画面の「LINE利用率の分母」で出典・時点とともに設定します）。")
    basis = "LINE公式アカウントの集計値" if report.figures.friends_reported is not None else "記録から算出した友だち数"
    return (f"{basis} {report.figures.friends_for_rate:,}人 ÷ {denominator.basis} {denominator.value:,}"
            f"（{japanese_date(denominator.as_of)}時点、出典: {denominator.source}）")


def _summary_table(report: MonthlyReport) -> Table:
    rows = []
    for card in report.cards:
        plan = card.plan
        rows.append((
            card.definition.id,
            card.definition.name,
            _rounded(card.value),
            _rounded(card.previous),
            UNIT_NAMES[card.definition.unit],
            plan.target.text if plan.target else NOT_SET,
            plan.target.period if plan.target else "",
            plan.baseline.text if plan.baseline else "",
            plan.baseline.period if plan.baseline else "",
            plan.plan_label,
            _source(report.city, plan),
            card.note,
        ))
    return Table("summary", "KPI一覧", ("指標ID", "指標", "当月", "前月", "単位", "目標", "目標の時期",
                                      "計画の現状値", "現状値の時期", "計画での名称", "出典", "備考"), rows)


def _rounded(value: float | int | None) -> float | int | None:
    return round(value, 2) if isinstance(value, float) else value


def _source(city: CityKpiConfig, plan: KpiPlan) -> str:
    """Where the plan's figure is, in words: 「那須烏山市 DX推進計画 657〜658行」 (a source that cites no
    plan line, such as a city's own document, as it is written)."""
    return plans.source_text(plan.source) if plan.source else ""


def _trend_table(report: MonthlyReport) -> Table:
    columns = ("月", "友だち数（月末）", "友だち数（LINE集計値）", "新規友だち", "ブロック", "アクティブ利用者",
               "LINE利用率（%）", "質問数", "直接回答", "「もしかして」提示", "回答できず", "直接回答率（%）",
               "正答率（%）", "評価数", "お知らせ送信数", "お知らせ配信数", "お知らせ後のブロック率（%）")
    rows = []
    for detail in report.history:
        f = detail.figures
        rows.append((f.month, f.friends, f.friends_reported, f.new_friends, f.blocked, f.active_residents,
                     f.line_usage_rate, f.questions, f.answered, f.clarified, f.unknown, f.answer_rate,
                     f.precision, f.direct_votes, f.notices_sent, f.notices_delivered, f.notice_block_rate))
    return Table("trend", f"月別推移（直近{len(rows)}か月）", columns, rows)


def _questions_table(report: MonthlyReport) -> Table:
    f = report.figures
    rows: list[tuple[Any, ...]] = [
        (DECISION_LABELS[key], count, ratio(count, f.questions))
        for key, count in (("answer", f.answered), ("clarify", f.clarified), ("unknown", f.unknown))
    ]
    rows.append(("質問数（合計）", f.questions, 100.0 if f.questions else None))
    rows.append(("（参考）あいさつ・メニュー等", f.smalltalk, None))
    return Table("questions", "質問への応答", ("区分", "件数", "割合（%）"), rows,
                 note="あいさつ・メニュー等は質問数に含めません。")


def _votes_table(report: MonthlyReport) -> Table:
    f = report.figures
    rows = [
        ("直接回答", f.direct_votes, f.direct_helpful, f.direct_votes - f.direct_helpful, f.precision),
        ("「もしかして」から選んだ回答", f.clarified_votes, f.clarified_helpful,
         f.clarified_votes - f.clarified_helpful, ratio(f.clarified_helpful, f.clarified_votes)),
    ]
    return Table("votes", "「役に立ちましたか？」の評価", ("回答の種類", "評価数", "はい", "いいえ", "「はい」の割合（%）"), rows,
                 note="同じ回答への評価は最後のものだけを数えます。")


def _top_questions_table(report: MonthlyReport, catalog: Mapping[str, tuple[str, str]]) -> Table:
    rows = []
    for rank, (topic, total, direct, chosen) in enumerate(report.current.top_topics[:TOP_LIMIT], start=1):
        title, category = catalog.get(topic, ("", ""))
        rows.append((rank, topic, title, category, total, direct, chosen))
    note = "" if catalog else "FAQの項目名・分類が接続されていないため、項目IDで表示しています。"
    return Table("top_questions", f"よくある質問（上位{TOP_LIMIT}件）",
                 ("順位", "FAQ項目ID", "項目名", "分類", "件数", "うち直接回答", "うち「もしかして」から選択"), rows, note)


def _section_table(section: Section, rows: Sequence[Sequence[Any]] | None) -> Table:
    columns = ("順位", *section.columns) if section.ranked else section.columns
    if rows is None:
        return Table(section.key, section.title, columns, [], note="集計を取得できませんでした。")
    if not section.ranked:
        return Table(section.key, section.title, columns, [tuple(row) for row in rows], note=section.note)
    body = [(rank, *row) for rank, row in enumerate(list(rows)[:TOP_LIMIT], start=1)]
    return Table(section.key, section.title, columns, body, note=section.note)


def _categories_table(report: MonthlyReport) -> Table:
    total = report.figures.questions
    rows = [(label, count, ratio(count, total)) for label, count in report.current.by_category]
    return Table("categories", "分類別の質問数", ("分類", "件数", "割合（%）"), rows,
                 note="「もしかして」から選ばれた回答はその項目の分類で数えます。")


def _hours_table(report: MonthlyReport) -> Table:
    rows = [(f"{hour}時台", count) for hour, count in enumerate(report.current.by_hour)]
    return Table("hours", "時間帯別の質問数（日本時間）", ("時間帯", "件数"), rows)


def _notices_table(report: MonthlyReport) -> Table:
    rows = [
        (n.sent_at, n.broadcast_id, n.title, n.recipients, n.delivered, n.blocks, n.block_rate)
        for n in report.current.notices
    ]
    return Table("notices", "お知らせごとの配信とブロック",
                 ("送信日時", "お知らせID", "件名", "対象者数", "配信数", "24時間以内のブロック", "ブロック率（%）"), rows,
                 note="ブロック率 = 送信から24時間以内にブロックした人数 ÷ 配信数。")


def _usage_kinds_table(report: MonthlyReport) -> Table:
    rows = [(kind, USAGE_KIND_LABELS.get(kind, kind), count) for kind, count in report.current.usage_kinds]
    return Table("usage_events", "記録された利用イベント", ("種類", "名称", "件数"), rows,
                 note="利用イベントにはメッセージの本文を記録していません。")


# --- charts --------------------------------------------------------------------------------------------


def _references(plan: KpiPlan) -> list[Reference]:
    """Dashed lines for the plan's target and current figure."""
    refs = []
    if plan.target:
        refs.append(Reference(plan.target.value, f"目標 {plan.target.text}（{plan.target.period}）"))
    if plan.baseline:
        refs.append(Reference(plan.baseline.value, f"計画の現状値 {plan.baseline.text}（{plan.baseline.period}）"))
    return refs


def _axis_label(month: Month, first: bool) -> str:
    """'10月', with the year on a second line under the first month and every January."""
    return f"{month.month}月\n{month.year}年" if first or month.month == 1 else f"{month.month}月"


def _charts(report: MonthlyReport, catalog: Mapping[str, tuple[str, str]]) -> dict[str, Chart]:
    months = [_axis_label(d.figures.month, first=i == 0) for i, d in enumerate(report.history)]
    figures = [d.figures for d in report.history]
    city = report.city
    result: dict[str, Chart] = {}

    people = [Series("友だち数（月末）", [f.friends for f in figures]),
              Series("アクティブ利用者", [f.active_residents for f in figures])]
    if any(f.friends_reported is not None for f in figures):
        people.append(Series("友だち数（LINE集計値）", [f.friends_reported for f in figures]))
    result["friends"] = Chart("friends", "友だち数とアクティブ利用者の推移", charts.line_chart(
        "chart-friends", "友だち数とアクティブ利用者の推移", months, people, unit="人",
        references=_references(city.plan_for("friends"))))

    rate_plan = city.plan_for("line_usage_rate")
    result["line_usage_rate"] = Chart("line_usage_rate", "LINE利用率の推移", charts.line_chart(
        "chart-line-usage-rate", "LINE利用率の推移", months,
        [Series("LINE利用率", [f.line_usage_rate for f in figures])], unit="%",
        references=_references(rate_plan),
        empty_note="分母（人口または世帯数）が未設定のため算出できません"),
        note="" if city.denominator else "分母が未設定のため、目標線のみ表示しています。")

    result["friends_flow"] = Chart("friends_flow", "新規友だちとブロック", charts.bar_chart(
        "chart-friends-flow", "新規友だちとブロック", months,
        [Series("新規友だち", [f.new_friends for f in figures]), Series("ブロック", [f.blocked for f in figures])],
        unit="人"))

    result["questions"] = Chart("questions", "質問への応答の推移", charts.bar_chart(
        "chart-questions", "質問への応答の推移", months,
        [Series("直接回答", [f.answered for f in figures]), Series("「もしかして」提示", [f.clarified for f in figures]),
         Series("回答できず", [f.unknown for f in figures])], unit="件", stacked=True))

    quality_refs = _references(city.plan_for("precision")) + _references(city.plan_for("answer_rate"))
    result["quality"] = Chart("quality", "直接回答率と正答率の推移", charts.line_chart(
        "chart-quality", "直接回答率と正答率の推移", months,
        [Series("直接回答率", [f.answer_rate for f in figures]), Series("正答率（評価）", [f.precision for f in figures])],
        unit="%", references=quality_refs))

    current = report.current
    result["hours"] = Chart("hours", "時間帯別の質問数", charts.bar_chart(
        "chart-hours", "時間帯別の質問数", [str(h) for h in range(24)],
        [Series("質問数", current.by_hour)], unit="件"), note="横軸は時（日本時間）。")

    result["categories"] = Chart("categories", "分類別の質問数", charts.hbar_chart(
        "chart-categories", "分類別の質問数", [label for label, _ in current.by_category],
        [count for _, count in current.by_category], unit="件"))

    top = current.top_topics[:TOP_LIMIT]
    result["top_questions"] = Chart("top_questions", "よくある質問", charts.hbar_chart(
        "chart-top-questions", "よくある質問", [catalog.get(t, (t, ""))[0] or t for t, *_ in top],
        [total for _, total, *_ in top], unit="件"))

    if current.notices:
        result["notices"] = Chart("notices", "お知らせごとのブロック率", charts.hbar_chart(
            "chart-notices", "お知らせごとのブロック率",
            [f"{jst_text(n.sent_at)} {n.title or '#' + n.broadcast_id}" for n in current.notices],
            [round(n.block_rate or 0.0, 2) for n in current.notices], unit="%", label_chars=26))
    return result

