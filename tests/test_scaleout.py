"""Two hosts on one PostgreSQL database, with real processes.

Two gunicorn process groups with their own INSTANCE_HOST_ID stand for two hosts: webhooks spread
over both are each answered exactly once; when one host's whole process group is killed (-9)
while it holds events, the other leaves those claims alone until their lease runs out (they are
another host's, not dead processes of its own), then answers every one, once. Two dispatchers
(`flask broadcast run-scheduler`): the PostgreSQL advisory lock keeps one active; the active one
is killed (-9) in the middle of a notice of several 500-resident chunks, the other takes over
within 30 s and every chunk is sent exactly once (the fake answers 409 to a repeated retry key).

PostgreSQL only: SQLite is one machine's file, there is no second host to share it with.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select
from werkzeug.serving import make_server

from bot.db import get_db
from bot.sandbox.fake_line import FakeLinePlatform
from broadcast.models import BroadcastChunk
from handlers.models import DONE, PROCESSING, InboxEvent
from tests.conftest import CHANNEL_SECRET, ROOT, free_port, is_healthy, wait_until
from tests.test_broadcast import add_residents, deliveries_per_user, schedule_notice

LEASE_SECONDS = 6.0
TAKEOVER_LIMIT_SECONDS = 30.0


class Gate:
    """The fake LINE platform behind a gate that can hold calls: `hold("reply")` makes replies wait
    (and then fail with 500 without reaching the platform, like a call that never arrived), `slow`
    delays each multicast before it reaches the platform. Records when each multicast arrived."""

    def __init__(self, fake: FakeLinePlatform) -> None:
        self.fake = fake
        self.held: set[str] = set()
        self.release = threading.Event()
        self.multicast_delay = 0.0
        self.multicast_arrivals: list[float] = []
        self.server = make_server("127.0.0.1", 0, self, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        kind = path.rsplit("/", 1)[-1]
        if kind in self.held:
            self.release.wait(120)
            start_response("500 Internal Server Error", [("Content-Type", "application/json")])
            return [b'{"message":"held by the test gate"}']
        if kind == "multicast":
            self.multicast_arrivals.append(time.monotonic())
            time.sleep(self.multicast_delay)
        return self.fake(environ, start_response)  # type: ignore[no-any-return]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()


def base_env(database_url: str, line_url: str, **extra: str) -> dict[str, str]:
    """The environment of a production-like process on this test database and LINE at `line_url`."""
    env = dict(os.environ)
    env.update(
        APP_ENV="testing", DATABASE_URL=database_url, SECRET_KEY="test-secret-key-of-at-least-32-characters",
        LINE_CHANNEL_SECRET=CHANNEL_SECRET, LINE_CHANNEL_ACCESS_TOKEN="test-access-token", LINE_API_BASE_URL=line_url,
        LOG_LEVEL="WARNING", SIMULATOR_ENABLED="0",
    )
    env.update(extra)
    return env


class Group:
    """A process group of its own (gunicorn and its workers, or a dispatcher): killed as a whole."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
                                     start_new_session=True)

    @property
    def pids(self) -> list[int]:
        """Every process of the group (the leader and its children)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.proc.pid:
                        pids.append(int(entry.name))
                except OSError:
                    pass
        return pids

    def cpu_seconds(self) -> float:
        """User + system CPU time of the group's processes (alive ones; /proc/PID/stat)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
            except OSError:
                pass
        return total / tick

    def kill(self) -> None:
        """kill -9 the whole group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def start_host(host_id: str, database_url: str, line_url: str, tmp: Path, workers: int = 1, **extra: str) -> tuple[Group, str]:
    """A gunicorn process group acting as host `host_id`; returns it and its URL once it answers."""
    port = free_port()
    (tmp / f"metrics-{host_id}").mkdir(exist_ok=True)
    settings = {"INSTANCE_HOST_ID": host_id, "GUNICORN_WORKERS": str(workers), "INBOX_LEASE_SECONDS": str(LEASE_SECONDS),
                "INBOX_POLL_SECONDS": "0.5", "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"metrics-{host_id}")}
    env = base_env(database_url, line_url, **{**settings, **extra})
    group = Group([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"127.0.0.1:{port}",
                   "--access-logfile", "/dev/null", "--no-control-socket", "wsgi:app"], env, tmp / f"{host_id}.log")
    url = f"http://127.0.0.1:{port}"

    try:
        wait_until(lambda: is_healthy(url), 120, f"host {host_id} up")
    except AssertionError:
        raise AssertionError(f"host {host_id} did not start: {group.output()}") from None
    return group, url


def post_events(fake: FakeLinePlatform, url: str, users: list[str], text: str = "こんにちは") -> None:
    """One signed webhook per resident's message, as LINE sends them for 1:1 chats."""
    session = requests.Session()
    for user in users:
        body = fake.webhook_body([fake.text_event(user, text)])
        answer = session.post(f"{url}/callback", data=body, timeout=30,
                              headers={"Content-Type": "application/json", "X-Line-Signature": fake.sign(body)})
        assert answer.status_code == 200, answer.text


def answered_once(fake: FakeLinePlatform, users: list[str]) -> Counter[str]:
    """How many answers (reply or push calls) each of these residents got."""
    wanted = set(users)
    return Counter(user for d in fake.deliveries if d.kind in ("reply", "push") for user in d.to if user in wanted)


@pytest.fixture
def postgres(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("two hosts share one PostgreSQL database; SQLite is one machine's file (set TEST_DATABASE_URL to a PostgreSQL database)")
    return database_url


@pytest.fixture
def gate(fake_line: FakeLinePlatform) -> Iterator[Gate]:
    gate = Gate(fake_line)
    yield gate
    gate.stop()


def _inbox(app: Any) -> dict[str, Any]:
    with get_db(app).read_session() as session:
        rows = session.execute(select(InboxEvent.status, InboxEvent.claim_owner, func.count())
                               .group_by(InboxEvent.status, InboxEvent.claim_owner)).all()
    return {f"{status}:{(owner or '-').split('/')[0]}": count for status, owner, count in rows}


def test_two_hosts_answer_each_event_once_and_take_over_a_killed_hosts_events_after_the_lease(
        make_app: Callable[..., Any], fake_line: FakeLinePlatform, fake_line_server: Any, gate: Gate, postgres: str,
        tmp_path: Path) -> None:
    app = make_app()  # empties the tables
    host_a, url_a = start_host("host-a", postgres, gate.url, tmp_path)  # its replies can be held at the gate
    host_b, url_b = start_host("host-b", postgres, fake_line_server[1].url, tmp_path)
    try:
        # 1. Webhooks spread over both hosts, two senders at a time: each event answered once.
        users = [f"U{i:032x}" for i in range(60)]
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda part: post_events(fake_line, *part), [(url_a, users[0::2]), (url_b, users[1::2])]))
        wait_until(lambda: len(answered_once(fake_line, users)) == len(users), 60, "every event answered")
        time.sleep(1.0)  # a second answer would show up now
        assert set(answered_once(fake_line, users).values()) == {1}, "each event answered exactly once"
        with get_db(app).read_session() as session:
            owners = {o.split("/")[0] for o in session.scalars(select(InboxEvent.claim_owner).distinct()) if o}
        assert owners == {"host-a", "host-b"}, "both hosts answered (claims carry INSTANCE_HOST_ID)"

        # 2. Host A holds events (its replies hang at the gate) and is killed with its whole process
        #    group while host B goes on answering new events.
        gate.held.add("reply")
        held_users = [f"U{1000 + i:032x}" for i in range(8)]
        post_events(fake_line, url_a, held_users)
        wait_until(lambda: _inbox(app).get("processing:host-a", 0) == len(held_users), 20,
                   f"host A holding {len(held_users)} events")
        host_a.kill()
        killed = time.monotonic()
        more_users = [f"U{2000 + i:032x}" for i in range(30)]
        loader = threading.Thread(target=post_events, args=(fake_line, url_b, more_users))
        loader.start()
        # Before the lease runs out host B leaves host A's claims alone: they are another host's.
        time.sleep(LEASE_SECONDS * 0.5)
        assert answered_once(fake_line, held_users) == Counter(), "taken back before the lease ran out"
        assert _inbox(app).get("processing:host-a", 0) == len(held_users), _inbox(app)
        loader.join(60)
        wait_until(lambda: len(answered_once(fake_line, held_users + more_users)) == len(held_users + more_users), 60,
                   f"host B answering host A's events after the lease: {_inbox(app)}")
        took = time.monotonic() - killed
        time.sleep(1.0)
        assert set(answered_once(fake_line, held_users + more_users).values()) == {1}, "none answered twice"
        assert LEASE_SECONDS * 0.9 <= took <= LEASE_SECONDS + 15, f"taken over {took:.1f} s after the kill"
        with get_db(app).read_session() as session:
            statuses = Counter(dict(session.execute(select(InboxEvent.status, func.count()).group_by(InboxEvent.status)).all()))
            held_by = {o.split("/")[0] for o in session.scalars(
                select(InboxEvent.claim_owner).where(InboxEvent.status == DONE, InboxEvent.attempts > 1))}
        assert statuses == Counter({DONE: len(users) + len(held_users) + len(more_users)}), statuses
        assert held_by == {"host-b"}, "the killed host's events were finished by the other host"
        assert PROCESSING not in statuses
    finally:
        gate.release.set()
        host_a.stop()
        host_b.stop()


def test_a_second_dispatcher_takes_over_a_notice_within_30_s_and_sends_each_chunk_once(
        make_app: Callable[..., Any], fake_line: FakeLinePlatform, gate: Gate, postgres: str, tmp_path: Path) -> None:
    app = make_app()
    residents = add_residents(app, 4000)  # 8 chunks of 500 (LINE's multicast limit)
    gate.multicast_delay = 0.5  # a slow LINE: the notice takes a few seconds, time to kill mid-way
    env = base_env(postgres, gate.url, BROADCAST_POLL_SECONDS="0.5", BROADCAST_SEND_THREADS="1", LOG_LEVEL="INFO")
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "broadcast", "run-scheduler"]
    first = Group(command, env, tmp_path / "dispatcher-1.log")
    second: Group | None = None
    try:
        wait_until(lambda: "配信プロセスを開始しました" in first.output(), 60, "the first dispatcher active")
        second = Group(command, env, tmp_path / "dispatcher-2.log")
        wait_until(lambda: "待機しています" in second.output(), 60, "the second dispatcher waiting for the lock")
        schedule_notice(app, "【お知らせ】断水のお知らせ")
        wait_until(lambda: sum(1 for d in fake_line.deliveries if d.kind == "multicast") >= 2, 60, "two chunks sent")
        first.kill()
        killed = time.monotonic()
        wait_until(lambda: any(at > killed for at in gate.multicast_arrivals), TAKEOVER_LIMIT_SECONDS + 5,
                   f"the second dispatcher sending: {second.output()}")
        takeover = min(at for at in gate.multicast_arrivals if at > killed) - killed
        assert takeover <= TAKEOVER_LIMIT_SECONDS, f"takeover took {takeover:.1f} s"
        wait_until(lambda: len(deliveries_per_user(fake_line)) == len(residents), 60, "every resident reached")
        time.sleep(1.0)
        got = deliveries_per_user(fake_line)
        assert set(got) == set(residents) and set(got.values()) == {1}, "each resident once: no chunk twice, none missed"
        with get_db(app).read_session() as session:
            chunks = session.execute(select(BroadcastChunk.seq, BroadcastChunk.status, BroadcastChunk.retry_key)).all()
        assert len(chunks) == 8 and {status for _, status, _ in chunks} == {"sent"}
        accepted = [d.retry_key for d in fake_line.deliveries if d.kind == "multicast"]
        assert sorted(accepted) == sorted(key for _, _, key in chunks), "each chunk accepted once, under its own key"
        assert "lock acquired after waiting" in second.output()
        print(f"dispatcher takeover {takeover:.1f} s after kill -9")
    finally:
        gate.release.set()
        first.stop()
        if second is not None:
            second.stop()
