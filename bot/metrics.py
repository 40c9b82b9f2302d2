"""Prometheus metrics: counters the code increments, gauges read from the database at scrape time, GET /metrics.

The only module that imports prometheus_client (tests/test_architecture.py). Other packages call the
small recorders below (`webhook_request`, `line_call`, ...); they never raise and take labels from
fixed sets only (no user ids, no texts: an unknown value becomes "other").

Several processes, one sum: gunicorn runs several workers, and the notice dispatcher is a process of
its own. With PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py and `flask broadcast run-scheduler` set
it to `instance/metrics` when it is not), every process writes its counters to its own files there
and a scrape of any worker adds up the files of all of them: the web workers and the dispatcher of
this host. prometheus_client picks that mode when it is first imported, so it is imported lazily,
after `enable_multiprocess()` had its chance. Without the directory (tests, the dev server: one
process) the counters stay in memory. Gauges that describe the shared database (the inbox backlog)
are computed at scrape time by functions other packages register (`register_gauges`), so any
worker of any host gives the same answer.

Who may read /metrics: `METRICS_TOKEN` (Authorization: Bearer) and/or `METRICS_ALLOWED_NETWORKS`
(client address; behind a proxy set TRUSTED_PROXIES). With neither, /metrics answers 404 in
production and only loopback clients elsewhere.
"""

from __future__ import annotations

import glob
import hmac
import ipaddress
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)

ENV_DIR = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_DIR = Path(__file__).resolve().parent.parent / "instance" / "metrics"
PREFIX = "linebot_"

# The label values each metric may carry; anything else is counted as "other".
WEBHOOK_OUTCOMES = ("stored", "bad_signature", "bad_body", "too_large", "unavailable")
WEBHOOK_EVENT_RESULTS = ("new", "duplicate", "skipped")
LINE_ENDPOINTS = (
    "reply", "push", "multicast", "get_profile", "show_loading", "validate_rich_menu", "create_rich_menu",
    "set_rich_menu_image", "set_default_rich_menu", "get_default_rich_menu", "cancel_default_rich_menu", "list_rich_menus",
    "delete_rich_menu", "bot_info",
    "webhook_endpoint", "test_webhook", "message_quota", "message_quota_consumption",
)
LINE_STATUSES = ("timeout", "connection_error")  # besides 3-digit HTTP statuses
NOTICE_CHUNK_OUTCOMES = ("sent", "repeat", "retry", "failed")
FAQ_DECISIONS = ("answer", "clarify", "unknown", "smalltalk")
FAQ_CHANNELS = ("line", "web")
# Received -> done of a webhook event: a reply within a second or two, pushes after retries up to minutes.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


def _label(value: Any, allowed: Iterable[str]) -> str:
    text = str(value)
    return text if text in allowed else "other"


# ---- multiprocess mode ---------------------------------------------------------------------------


def enable_multiprocess(path: str | os.PathLike[str] | None = None) -> Path | None:
    """Use per-process files under PROMETHEUS_MULTIPROC_DIR (set to `path` or instance/metrics when unset).

    For gunicorn's master and the dispatcher command, before any metric exists in the process;
    later (prometheus_client already loaded, e.g. a command run inside the tests) it changes
    nothing and returns None. Returns the directory.
    """
    if _METRICS is not None or "prometheus_client" in sys.modules:
        return None
    directory = Path(os.environ.get(ENV_DIR) or path or DEFAULT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_DIR] = str(directory)
    return directory


def multiprocess_dir() -> Path | None:
    """The directory of per-process metric files, or None when metrics stay in this process."""
    value = os.environ.get(ENV_DIR)
    return Path(value) if value else None


def _pid_of(file: Path) -> int | None:
    match = re.search(r"_(\d+)\.db$", file.name)
    return int(match.group(1)) if match else None


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_files_of_dead_processes(directory: Path | None = None) -> int:
    """At a start: forget the counters of processes that no longer run (a restart starts counting anew).

    The files of running processes stay: the dispatcher of this host writes into the same directory.
    """
    directory = directory or multiprocess_dir()
    if directory is None or not directory.is_dir():
        return 0
    removed = 0
    for name in glob.glob(str(directory / "*.db")):
        file = Path(name)
        pid = _pid_of(file)
        if pid is None or not _running(pid):
            file.unlink(missing_ok=True)
            removed += 1
    return removed


def mark_process_dead(pid: int) -> None:
    """A worker exited (gunicorn's child_exit): drop its live gauges; its counters keep counting in the sum."""
    directory = multiprocess_dir()
    if directory is None:
        return
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(directory))


# ---- the metrics ---------------------------------------------------------------------------------


class _Metrics:
    """The metric objects, built on first use (after the multiprocess decision)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        # The mode prometheus_client chose at its import: per-process files, or this process's memory.
        self.directory = multiprocess_dir()
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhook_requests = Counter(
            PREFIX + "webhook_requests", "POST /callback requests by outcome (stored 200, bad_signature 400, "
            "bad_body 400, too_large 413, unavailable 503)", ["outcome"], registry=r)
        self.webhook_events = Counter(
            PREFIX + "webhook_events", "Events in accepted webhook requests: new, duplicate (redelivered), skipped (malformed)",
            ["result"], registry=r)
        self.event_latency = Histogram(
            PREFIX + "inbox_event_latency_seconds", "From storing a webhook event to its answer sent and marked done",
            buckets=LATENCY_BUCKETS, registry=r)
        self.line_calls = Counter(
            PREFIX + "line_api_calls", "LINE Messaging API calls by endpoint and HTTP status (timeout, connection_error)",
            ["endpoint", "status"], registry=r)
        self.notice_chunks = Counter(
            PREFIX + "notice_chunks", "Multicast chunks of notices: sent, repeat (LINE had accepted the retry key), "
            "retry (429/5xx/timeout, tried again), failed (given up)", ["outcome"], registry=r)
        self.notice_recipients = Counter(
            PREFIX + "notice_recipients", "Residents in notice chunks sent or failed", ["outcome"], registry=r)
        self.faq_decisions = Counter(
            PREFIX + "faq_decisions", "Residents' questions by the FAQ decision and channel", ["kind", "channel"], registry=r)


_METRICS: _Metrics | None = None
_BUILD = threading.Lock()


def _metrics() -> _Metrics:
    global _METRICS
    if _METRICS is None:
        with _BUILD:
            if _METRICS is None:
                _METRICS = _Metrics()
    return _METRICS


def _safely(record: Callable[[_Metrics], None]) -> None:
    """Metrics never break the work they count."""
    try:
        record(_metrics())
    except Exception:  # noqa: BLE001
        log.warning("recording a metric failed", exc_info=True)


def webhook_request(outcome: str, new: int = 0, duplicates: int = 0, skipped: int = 0) -> None:
    """Count one POST /callback by outcome, and the events of a stored one."""
    def record(m: _Metrics) -> None:
        m.webhook_requests.labels(_label(outcome, WEBHOOK_OUTCOMES)).inc()
        for result, count in (("new", new), ("duplicate", duplicates), ("skipped", skipped)):
            if count:
                m.webhook_events.labels(result).inc(count)
    _safely(record)


def events_done(latencies: Iterable[float]) -> None:
    """Webhook events answered and marked done, each with its seconds from being stored."""
    values = list(latencies)

    def record(m: _Metrics) -> None:
        for value in values:
            m.event_latency.observe(max(0.0, value))
    if values:
        _safely(record)


def line_call(endpoint: str, status: int | str | None) -> None:
    """One LINE API call: its endpoint and HTTP status ("timeout" or "connection_error" without one)."""
    text = str(status)
    if not (len(text) == 3 and text.isdigit()):
        text = _label(text, LINE_STATUSES)
    _safely(lambda m: m.line_calls.labels(_label(endpoint, LINE_ENDPOINTS), text).inc())


def notice_chunk(outcome: str, recipients: int) -> None:
    """A multicast chunk of a notice: sent / repeat / retry / failed, with its number of residents."""
    def record(m: _Metrics) -> None:
        label = _label(outcome, NOTICE_CHUNK_OUTCOMES)
        m.notice_chunks.labels(label).inc()
        if label in ("sent", "repeat"):
            m.notice_recipients.labels("sent").inc(recipients)
        elif label == "failed":
            m.notice_recipients.labels("failed").inc(recipients)
    _safely(record)


def faq_decision(kind: str, channel: str = "line") -> None:
    """A resident's question decided: answer, clarify (もしかして), unknown or smalltalk."""
    _safely(lambda m: m.faq_decisions.labels(_label(kind, FAQ_DECISIONS), _label(channel, FAQ_CHANNELS)).inc())


# ---- gauges computed at scrape time --------------------------------------------------------------


@dataclass(frozen=True)
class Gauge:
    """One gauge sample computed at scrape time (labels from fixed sets only)."""

    name: str
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


GaugeSource = Callable[[Flask], Iterable[Gauge]]


def register_gauges(app: Flask, source: GaugeSource) -> None:
    """Add a function that computes gauges at each scrape (wired by bot.app: e.g. the inbox backlog)."""
    app.extensions.setdefault("metrics_gauges", []).append(source)


class _ScrapeGauges:
    """A prometheus collector that runs the registered gauge sources of an app."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        families: dict[str, Any] = {}
        up = 1.0
        for source in self.app.extensions.get("metrics_gauges", []):
            try:
                gauges = list(source(self.app))
            except Exception:  # noqa: BLE001 - the database may be down: say so instead of failing the scrape
                log.warning("metrics: gauge source %s failed", getattr(source, "__name__", source), exc_info=True)
                up = 0.0
                continue
            for gauge in gauges:
                family = families.get(gauge.name)
                if family is None:
                    family = families[gauge.name] = GaugeMetricFamily(
                        PREFIX + gauge.name, gauge.help, labels=[k for k, _ in gauge.labels])
                family.add_metric([v for _, v in gauge.labels], gauge.value)
        yield from families.values()
        yield GaugeMetricFamily(PREFIX + "database_up", "1 if the gauges read from the database at this scrape could be computed", value=up)


def exposition(app: Flask) -> tuple[bytes, str]:
    """The text exposition of every metric: the sum over this host's processes, plus the scrape gauges."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    directory = _metrics().directory
    if directory is not None:
        MultiProcessCollector(registry, str(directory))
    else:
        registry.register(_InProcess())
    registry.register(_ScrapeGauges(app))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _InProcess:
    """This process's counters (no multiprocess directory)."""

    def collect(self) -> Iterator[Any]:
        yield from _metrics().registry.collect()


# ---- GET /metrics --------------------------------------------------------------------------------


def parse_networks(value: str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """METRICS_ALLOWED_NETWORKS: comma-separated addresses or CIDR networks; ValueError names a bad one."""
    networks = []
    for part in (value or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or network (e.g. 10.0.0.0/24)") from None
    return networks


def _client_in(networks: Iterable[Any]) -> bool:
    try:
        address = ipaddress.ip_address(request.remote_addr or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def refusal() -> Response | None:
    """Why this request may not read /metrics (a response), or None if it may."""
    config = current_app.config
    token = config.get("METRICS_TOKEN") or ""
    networks = parse_networks(config.get("METRICS_ALLOWED_NETWORKS"))
    if not token and not networks:
        if config.get("APP_ENV") == "production" or not _client_in(LOOPBACK):
            return Response("Not Found\n", 404, mimetype="text/plain")
        return None
    if networks and not _client_in(networks):
        return Response("Forbidden\n", 403, mimetype="text/plain")
    if token:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            return Response("Unauthorized\n", 401, {"WWW-Authenticate": 'Bearer realm="metrics"'}, mimetype="text/plain")
    return None


@bp.get("/metrics")
def metrics_view() -> Response:
    """Prometheus scrape endpoint."""
    refused = refusal()
    if refused is not None:
        return refused
    body, content_type = exposition(current_app._get_current_object())  # type: ignore[attr-defined]
    return Response(body, 200, {"Content-Type": content_type, "Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """Serve GET /metrics."""
    app.register_blueprint(bp)
