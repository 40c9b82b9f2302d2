"""Figures `kpi` cannot compute from usage events, supplied by other packages through the app.

`kpi` may import only `bot` (ARCHITECTURE.md), yet the top questions want entry titles and
categories, and the unanswered clusters want the (masked) question log: both live in `faq`.
So `bot.app` wires plain functions of `faq` in here; they take and return plain values only,
which keeps `faq` free of any import of `kpi`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from sqlalchemy.orm import Session

# (session, municipality) -> {topic id: (entry title, category label)}
TopicCatalog = Callable[[Session, str], Mapping[str, tuple[str, str]]]
# (session, municipality, start UTC, end UTC, limit) -> rows whose values follow `columns`
SectionProvider = Callable[[Session, str, dt.datetime, dt.datetime, int], Sequence[Sequence[Any]]]


@dataclass(frozen=True)
class Section:
    """An extra table of the monthly report (e.g. the top unanswered clusters from `faq`)."""

    key: str
    title: str
    columns: tuple[str, ...]
    provider: SectionProvider
    # Column index of the count drawn as a bar chart (None: no chart).
    chart_column: int | None = None
    note: str = ""
    # Ranked tables (top questions) get a 順位 column first; a fixed list (per channel) does not.
    ranked: bool = True


@dataclass
class KpiHooks:
    """What other packages plugged into this app's KPI reports."""

    topic_catalog: TopicCatalog | None = None
    sections: dict[str, Section] = field(default_factory=dict)


def hooks(app: Flask) -> KpiHooks:
    """This app's hooks (created empty on first use)."""
    found: KpiHooks | None = app.extensions.get("kpi_hooks")
    if found is None:
        found = app.extensions["kpi_hooks"] = KpiHooks()
    return found


def register_topic_catalog(app: Flask, catalog: TopicCatalog) -> None:
    """Give the reports entry titles and category labels for topic ids."""
    hooks(app).topic_catalog = catalog


def register_section(
    app: Flask,
    key: str,
    title: str,
    columns: Sequence[str],
    provider: SectionProvider,
    *,
    chart_column: int | None = None,
    note: str = "",
    ranked: bool = True,
) -> None:
    """Add a table to the dashboard, the CSV downloads and the monthly report."""
    if not key.replace("_", "").isalnum():
        raise ValueError(f"section key {key!r}: letters, digits and _ only (it names a CSV file)")
    hooks(app).sections[key] = Section(key, title, tuple(columns), provider, chart_column, note, ranked)
