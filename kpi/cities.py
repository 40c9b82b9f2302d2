"""Each city's KPI settings: its plan's figures with their sources, and the usage-rate denominator.

Read from kpi/cities.yaml, overridden by the city's own file named by KPI_CONFIG_FILE. Figures
without a source are refused: a manager must be able to check every number on the dashboard.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from kpi.definitions import KPI_BY_ID

CITIES_FILE = Path(__file__).with_name("cities.yaml")


class KpiConfigError(ValueError):
    """The KPI settings file is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class PlanFigure:
    """A figure quoted from a plan: the number, its wording in the plan and the period it is for."""

    value: float
    text: str
    period: str


@dataclass(frozen=True)
class KpiPlan:
    """What a city's plan says about one KPI."""

    plan_label: str = ""
    baseline: PlanFigure | None = None
    target: PlanFigure | None = None
    source: str = ""
    note: str = ""


@dataclass(frozen=True)
class Denominator:
    """What the LINE usage rate is divided by, and where that figure comes from."""

    value: int
    basis: str
    as_of: str
    source: str


@dataclass(frozen=True)
class CityKpiConfig:
    """One city's KPI settings."""

    municipality: str
    name: str
    plan: str
    plan_source: str = ""
    denominator: Denominator | None = None
    kpis: Mapping[str, KpiPlan] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def plan_for(self, kpi_id: str) -> KpiPlan:
        """The plan's figures for a KPI (empty when the plan says nothing about it)."""
        return self.kpis.get(kpi_id) or KpiPlan()


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise KpiConfigError(f"KPI settings {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise KpiConfigError(f"KPI settings {path}: expected a mapping of cities")
    return data


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """The override file over the repo's: per city, each setting it names replaces the repo's.

    Under `kpis`, a KPI the override names replaces the repo's entry for it as a whole, so a
    target set by the city is never shown with the source of a figure from the plan.
    """
    merged = dict(base)
    for city, settings in override.items():
        if not isinstance(settings, Mapping) or not isinstance(base.get(city), Mapping):
            merged[city] = settings
            continue
        combined = {**base[city], **settings}
        if isinstance(base[city].get("kpis"), Mapping) and isinstance(settings.get("kpis"), Mapping):
            combined["kpis"] = {**base[city]["kpis"], **settings["kpis"]}
        merged[city] = combined
    return merged


def _figure(raw: Any, where: str) -> PlanFigure | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping) or not isinstance(raw.get("value"), int | float):
        raise KpiConfigError(f"{where}: needs a numeric `value`")
    value = float(raw["value"])
    return PlanFigure(value=value, text=str(raw.get("text") or f"{value:g}"), period=str(raw.get("period") or ""))


def _kpi_plan(kpi_id: str, raw: Any, where: str) -> KpiPlan:
    if kpi_id not in KPI_BY_ID:
        raise KpiConfigError(f"{where}: unknown KPI id {kpi_id!r} (known: {', '.join(KPI_BY_ID)})")
    if not isinstance(raw, Mapping):
        raise KpiConfigError(f"{where}: expected a mapping")
    plan = KpiPlan(
        plan_label=str(raw.get("plan_label") or ""),
        baseline=_figure(raw.get("baseline"), f"{where}.baseline"),
        target=_figure(raw.get("target"), f"{where}.target"),
        source=str(raw.get("source") or ""),
        note=" ".join(str(raw.get("note") or "").split()),
    )
    if (plan.baseline or plan.target) and not plan.source:
        raise KpiConfigError(f"{where}: a baseline or target needs its `source` (file:line of the plan)")
    return plan


def _denominator(raw: Any, where: str) -> Denominator | None:
    if raw is None or (isinstance(raw, Mapping) and raw.get("value") in (None, "")):
        return None
    if not isinstance(raw, Mapping):
        raise KpiConfigError(f"{where}: expected a mapping with value, basis, as_of, source")
    value = raw.get("value")
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise KpiConfigError(f"{where}.value: a positive whole number of people or households")
    missing = [key for key in ("basis", "as_of", "source") if not raw.get(key)]
    if missing:
        raise KpiConfigError(f"{where}: the denominator needs {', '.join(missing)} (what it counts, its date, its source)")
    as_of = raw["as_of"]
    return Denominator(
        value=value,
        basis=str(raw["basis"]),
        as_of=as_of.isoformat() if isinstance(as_of, dt.date) else str(as_of),
        source=str(raw["source"]),
    )


def load_city_config(municipality: str, override_file: str | Path | None = None) -> CityKpiConfig:
    """The city's KPI settings: kpi/cities.yaml, then the override file (KPI_CONFIG_FILE) on top."""
    data = _read_yaml(CITIES_FILE)
    if override_file:
        path = Path(override_file)
        if not path.is_file():
            raise KpiConfigError(f"KPI_CONFIG_FILE={path}: no such file")
        data = _merge(data, _read_yaml(path))
    raw = data.get(municipality)
    if not isinstance(raw, Mapping):
        raise KpiConfigError(f"KPI settings: no entry for municipality {municipality!r}")
    where = f"KPI settings {municipality}"
    kpis_raw = raw.get("kpis") or {}
    if not isinstance(kpis_raw, Mapping):
        raise KpiConfigError(f"{where}.kpis: expected a mapping of KPI ids")
    return CityKpiConfig(
        municipality=municipality,
        name=str(raw.get("name") or municipality),
        plan=str(raw.get("plan") or ""),
        plan_source=str(raw.get("plan_source") or ""),
        denominator=_denominator(raw.get("denominator"), f"{where}.denominator"),
        kpis={kpi_id: _kpi_plan(kpi_id, value, f"{where}.kpis.{kpi_id}") for kpi_id, value in kpis_raw.items()},
        notes=tuple(str(note) for note in raw.get("notes") or ()),
    )
