"""/metrics: what it counts (webhook outcomes, event latency, LINE calls, notices, FAQ decisions, the
inbox backlog from the database), who may read it, the sum over gunicorn's workers and the dispatcher,
the alert rules naming only metrics that exist, and JSON log lines."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from flask import Flask

from bot.config import ConfigError, load_config
from bot.db import get_db, utcnow
from broadcast.dispatcher import Dispatcher
from faq.store import load_repo_kb
from handlers.inbox import IncomingEvent, store_events
from tests.conftest import CHANNEL_SECRET, ROOT, Chat, child_pids, free_port, is_healthy, signed_post, wait_until
from tests.test_broadcast import add_residents, schedule_notice

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$")


def parse(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples of a text exposition: (name, labels) -> value."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(3) or ""))
        samples[(match.group(1), labels)] = float(match.group(4))
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """One sample's value (0 when absent: a counter not incremented yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: Any, **headers: str) -> dict[Any, float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(response.get_data(as_text=True))


# --- what is counted -------------------------------------------------------------------------------


def test_webhook_outcomes_and_events_are_counted(app: Flask, fake_line) -> None:
    client = app.test_client()
    before = scrape(client)
    body = fake_line.webhook_body([fake_line.follow_event("U" + "1" * 32), {"type": "message"}])
    assert client.post("/callback", data=body, headers={"X-Line-Signature": fake_line.sign(body)}).status_code == 200
    assert signed_post(client, fake_line, raw=body).status_code == 200  # redelivered: a duplicate
    assert client.post("/callback", data=body, headers={"X-Line-Signature": "bad"}).status_code == 400
    assert signed_post(client, fake_line, raw=b"{not json").status_code == 400
    assert signed_post(client, fake_line, payload={"destination": "x"}).status_code == 400
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("linebot_webhook_requests_total", outcome="stored") == 2
    assert delta("linebot_webhook_requests_total", outcome="bad_signature") == 1
    assert delta("linebot_webhook_requests_total", outcome="bad_body") == 2
    assert delta("linebot_webhook_events_total", result="new") == 1
    assert delta("linebot_webhook_events_total", result="duplicate") == 1
    assert delta("linebot_webhook_events_total", result="skipped") == 2


def test_answers_line_calls_latency_and_faq_decisions_are_counted(make_app, fake_line) -> None:
    app = make_app(MUNICIPALITY="joso")
    with get_db(app).session() as session:
        load_repo_kb(session, "joso")
    client = app.test_client()
    before = scrape(client)
    resident = Chat(client, fake_line, "U" + "2" * 32)
    resident.says("戸籍謄本をコンビニで取りたいのですが", expect=2)
    resident.says("プロ野球の優勝チームの予想を教えて")
    fake_line.fail("reply", 500)  # LINE fails once: the event is retried (by push or reply) later
    resident.says("こんにちは！")
    wait_until(lambda: value(scrape(client), "linebot_inbox_event_latency_seconds_count")
               - value(before, "linebot_inbox_event_latency_seconds_count") >= 3, 30, "three events done")
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("linebot_faq_decisions_total", kind="answer", channel="line") == 1
    assert delta("linebot_faq_decisions_total", kind="unknown", channel="line") == 1
    assert delta("linebot_faq_decisions_total", kind="smalltalk", channel="line") >= 1
    assert delta("linebot_line_api_calls_total", endpoint="reply", status="500") == 1
    answered = delta("linebot_line_api_calls_total", endpoint="reply", status="200") + delta(
        "linebot_line_api_calls_total", endpoint="push", status="200")
    assert answered == 3
    assert delta("linebot_inbox_event_latency_seconds_count") == 3
    # Every event was answered within a minute: all three are in the 60 s bucket.
    assert delta("linebot_inbox_event_latency_seconds_bucket", le="60.0") == 3
    assert delta("linebot_inbox_event_latency_seconds_sum") > 0
    text = client.get("/metrics").get_data(as_text=True)
    assert "U2222" not in text and "戸籍" not in text, "no user ids, no texts in labels"


def test_notice_chunks_sent_and_failed_are_counted(make_app, fake_line, tmp_path: Path) -> None:
    app = make_app(BROADCAST_LOCK_FILE=str(tmp_path / "lock"), BROADCAST_RETRY_BASE_SECONDS=0.01, BROADCAST_RETRY_MAX_SECONDS=0.02,
                   BROADCAST_MAX_ATTEMPTS=2)
    client = app.test_client()
    before = scrape(client)
    add_residents(app, 501)
    schedule_notice(app, "【お知らせ】ごみ収集日が変わります")
    fake_line.fail("multicast", 500)  # the first chunk is retried once with its key, then sent
    Dispatcher(app).send_due_broadcasts(max_wait=float("inf"))
    schedule_notice(app, "【お知らせ】2回目")
    fake_line.fail("multicast", 400, times=2)  # refused: both chunks fail at once
    Dispatcher(app).send_due_broadcasts(max_wait=float("inf"))
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("linebot_notice_chunks_total", outcome="sent") == 2
    assert delta("linebot_notice_chunks_total", outcome="retry") == 1
    assert delta("linebot_notice_chunks_total", outcome="failed") == 2
    assert delta("linebot_notice_recipients_total", outcome="sent") == 501
    assert delta("linebot_notice_recipients_total", outcome="failed") == 501
    assert delta("linebot_line_api_calls_total", endpoint="multicast", status="200") == 2
    assert delta("linebot_line_api_calls_total", endpoint="multicast", status="400") == 2


def test_the_inbox_backlog_and_its_oldest_age_come_from_the_database(app: Flask) -> None:
    client = app.test_client()
    empty = scrape(client)
    assert value(empty, "linebot_inbox_backlog_events", status="pending") == 0
    assert value(empty, "linebot_inbox_oldest_pending_age_seconds") == 0
    assert value(empty, "linebot_database_up") == 1
    events = [IncomingEvent(f"backlog-{i}", "follow", 0, {"type": "follow"}) for i in range(3)]
    store_events(get_db(app), events)  # stored, nobody processing them (this app's threads never started)
    with get_db(app).write_connection() as conn:
        from sqlalchemy import update

        from handlers.models import InboxEvent
        conn.execute(update(InboxEvent).where(InboxEvent.webhook_event_id == "backlog-0")
                     .values(received_at=utcnow() - dt.timedelta(seconds=90)))
    samples = scrape(client)
    assert value(samples, "linebot_inbox_backlog_events", status="pending") == 3
    assert value(samples, "linebot_inbox_backlog_events", status="processing") == 0
    assert 90 <= value(samples, "linebot_inbox_oldest_pending_age_seconds") < 120


def test_a_database_that_does_not_answer_shows_as_database_up_0(make_app) -> None:
    app = make_app()
    app.extensions["metrics_gauges"] = [lambda _app: 1 / 0]
    samples = scrape(app.test_client())
    assert value(samples, "linebot_database_up") == 0


# --- who may read it -------------------------------------------------------------------------------


def test_without_token_or_networks_metrics_is_off_in_production_and_loopback_only_elsewhere(make_app) -> None:
    production = make_app(APP_ENV="production")
    assert production.test_client().get("/metrics").status_code == 404
    development = make_app(APP_ENV="development").test_client()
    assert development.get("/metrics").status_code == 200
    assert development.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    assert development.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.8"}).status_code == 404


def test_a_token_is_required_when_set(make_app) -> None:
    client = make_app(APP_ENV="production", METRICS_TOKEN="s3cret-scrape-token").test_client()
    remote = {"REMOTE_ADDR": "203.0.113.9"}
    refused = client.get("/metrics", environ_base=remote)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", environ_base=remote, headers={"Authorization": "Basic s3cret-scrape-token"}).status_code == 401
    ok = client.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert ok.status_code == 200 and b"linebot_database_up" in ok.data


def test_allowed_networks_and_token_together(make_app) -> None:
    client = make_app(APP_ENV="production", METRICS_ALLOWED_NETWORKS="10.0.0.0/24, 192.0.2.7",
                      METRICS_TOKEN="s3cret-scrape-token").test_client()
    bearer = {"Authorization": "Bearer s3cret-scrape-token"}
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.77"}, headers=bearer).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "192.0.2.7"}, headers=bearer).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.1.1"}, headers=bearer).status_code == 403
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.77"}).status_code == 401
    networks_only = make_app(APP_ENV="production", METRICS_ALLOWED_NETWORKS="10.0.0.0/24").test_client()
    assert networks_only.get("/metrics", environ_base={"REMOTE_ADDR": "10.0.0.77"}).status_code == 200
    assert networks_only.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 403


@pytest.mark.parametrize(("name", "bad"), [("METRICS_ALLOWED_NETWORKS", "10.0.0.0/33"), ("INSTANCE_HOST_ID", "web/1"),
                                           ("INSTANCE_HOST_ID", "x" * 81), ("LOG_FORMAT", "xml")])
def test_bad_metrics_log_and_host_settings_stop_the_start(name: str, bad: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_config({name: bad})


# --- the alert rules -------------------------------------------------------------------------------


def exposed_names(text: str) -> set[str]:
    """Every series name /metrics shows or declares (counters as _total, histograms as _bucket/_sum/_count)."""
    names = {m.group(1) for line in text.splitlines() if (m := SAMPLE.match(line))}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.M):
        names |= {"counter": {name + "_total"}, "histogram": {name + "_bucket", name + "_sum", name + "_count"}}.get(kind, {name})
    return names


def test_every_alert_rule_names_metrics_that_metrics_exposes(app: Flask) -> None:
    rules = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text(encoding="utf-8"))
    exprs = {r["alert"]: r["expr"] for group in rules["groups"] for r in group["rules"]}
    assert {"LinebotInboxBacklogOld", "LinebotLineApiErrors", "LinebotNoticeChunksFailed", "LinebotTargetDown"} <= set(exprs)
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
    exposed = exposed_names(app.test_client().get("/metrics").get_data(as_text=True)) | {"up"}
    for alert, expr in exprs.items():
        named = set(re.findall(r"\blinebot_[a-z0-9_]+", expr)) | ({"up"} if re.search(r"\bup\s*\{", expr) else set())
        assert named, f"{alert}: no metric in {expr!r}"
        assert named <= exposed, f"{alert} names {sorted(named - exposed)}, which /metrics does not expose"
    backlog = exprs["LinebotInboxBacklogOld"]
    assert "linebot_inbox_oldest_pending_age_seconds" in backlog and "> 60" in backlog


# --- several processes: gunicorn's workers and the dispatcher ----------------------------------------


def test_a_scrape_of_any_worker_sees_the_sum_of_all_workers_and_the_dispatcher(
        make_app: Callable[..., Flask], fake_line, fake_line_server, database_url: str, tmp_path: Path) -> None:
    app = make_app()
    add_residents(app, 12)
    _fake, served = fake_line_server
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    metrics_dir = tmp_path / "metrics"
    (metrics_dir).mkdir()
    (metrics_dir / "counter_999999999.db").write_bytes(b"")  # left by a process that is gone: removed at start
    env = dict(
        os.environ, APP_ENV="testing", DATABASE_URL=database_url, SECRET_KEY="test-secret-key-of-at-least-32-characters",
        LINE_CHANNEL_SECRET=CHANNEL_SECRET, LINE_CHANNEL_ACCESS_TOKEN="test-access-token", LINE_API_BASE_URL=served.url,
        GUNICORN_WORKERS="2", LOG_LEVEL="WARNING", SIMULATOR_ENABLED="0", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        METRICS_TOKEN="scrape-token", BROADCAST_POLL_SECONDS="0.3", BROADCAST_LOCK_FILE=str(tmp_path / "lock"),
    )
    gunicorn = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
         "--access-logfile", "/dev/null", "--no-control-socket", "wsgi:app"], cwd=ROOT, env=env)
    dispatcher_log = tmp_path / "dispatcher.log"
    dispatcher = subprocess.Popen([sys.executable, "-m", "flask", "--app", "wsgi", "broadcast", "run-scheduler"],
                                  cwd=ROOT, env=env, stderr=dispatcher_log.open("w"))

    def samples() -> dict[Any, float]:
        # A new connection each time: gunicorn hands it to either worker.
        answer = requests.get(f"{url}/metrics", headers={"Authorization": "Bearer scrape-token", "Connection": "close"}, timeout=5)
        assert answer.status_code == 200
        return parse(answer.text)

    try:
        wait_until(lambda: is_healthy(url), 90, "gunicorn up")
        assert not (metrics_dir / "counter_999999999.db").exists()
        workers = child_pids(gunicorn.pid)
        assert len(workers) == 2

        def post(i: int) -> int:
            body = fake_line.webhook_body([fake_line.follow_event(f"U{10_000 + i:032x}")])  # not the residents above
            return requests.post(f"{url}/callback", data=body, timeout=10, headers={
                "Content-Type": "application/json", "X-Line-Signature": fake_line.sign(body), "Connection": "close"}).status_code

        def served_by() -> set[str]:
            return {p.name.removeprefix("counter_").removesuffix(".db") for p in metrics_dir.glob("counter_*.db")}

        posted = 0
        with ThreadPoolExecutor(8) as pool:  # at the same time, so that both workers take some
            while posted < 400 and not {str(w) for w in workers} <= served_by():
                assert set(pool.map(post, range(posted, posted + 40))) == {200}
                posted += 40
        assert {str(w) for w in workers} <= served_by(), "both workers took requests and count in their own files"
        for _ in range(6):  # whichever worker answers the scrape, it reports the sum
            assert value(samples(), "linebot_webhook_requests_total", outcome="stored") == posted
        schedule_notice(app, "【お知らせ】メトリクスの確認")
        try:
            wait_until(lambda: value(samples(), "linebot_notice_chunks_total", outcome="sent") == 1, 30,
                       "the dispatcher's chunk counted in the web's /metrics")
        except AssertionError:
            multicasts = [r.status for r in fake_line.requests if r.path.endswith("/multicast")]
            raise AssertionError(f"multicasts {multicasts}; files {sorted(p.name for p in metrics_dir.iterdir())}; "
                                 f"dispatcher: {dispatcher_log.read_text()[-2000:]}") from None
        assert value(samples(), "linebot_notice_recipients_total", outcome="sent") == 12
        assert value(samples(), "linebot_line_api_calls_total", endpoint="multicast", status="200") == 1
        # A worker killed keeps its counts in the sum (its file stays); gunicorn starts another.
        os.kill(workers[0], signal.SIGKILL)
        wait_until(lambda: len(set(child_pids(gunicorn.pid)) - set(workers)) == 1 and is_healthy(url), 30, "a new worker")
        for _ in range(4):
            assert value(samples(), "linebot_webhook_requests_total", outcome="stored") == posted
    finally:
        for proc in (dispatcher, gunicorn):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


# --- logs -------------------------------------------------------------------------------------------


def test_json_log_lines_carry_the_plain_fields_and_no_message_bodies(database_url: str) -> None:
    code = (
        "import logging, sys\n"
        "from bot.app import create_app\n"
        "app = create_app()\n"
        "logging.getLogger('handlers.webhook').warning('webhook event %d skipped: %s', 3, 'no source')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    logging.getLogger('handlers.inbox').exception('inbox worker batch failed')\n"
    )
    env = dict(os.environ, APP_ENV="testing", DATABASE_URL=database_url, LOG_FORMAT="json", SIMULATOR_ENABLED="0")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert [line["message"] for line in lines] == ["webhook event 3 skipped: no source", "inbox worker batch failed"]
    first, second = lines
    assert set(first) == {"time", "level", "logger", "process", "message"}
    assert first["level"] == "WARNING" and first["logger"] == "handlers.webhook" and first["process"] > 0
    assert dt.datetime.fromisoformat(first["time"]).tzinfo is not None
    assert "ZeroDivisionError" in second["exception"]
    text = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**env, "LOG_FORMAT": "text"},
                          capture_output=True, text=True, timeout=120).stderr
    assert re.search(r"^\S+ \S+ WARNING handlers.webhook \[\d+\] webhook event 3 skipped: no source$", text, flags=re.M)
