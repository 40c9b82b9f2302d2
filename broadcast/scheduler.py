"""`flask broadcast run-scheduler`: the one process that runs APScheduler.

APScheduler is only a clock here (STYLE.md habit 7): an interval job calls
`send_due_broadcasts` every BROADCAST_POLL_SECONDS, and an hourly job records the blocks of
notices whose 24-hour window has closed and applies the retention limit. Its jobs live in memory
and are rebuilt at every start; the notices, their runs and chunks in the database are the truth.
Imported only by that command, never by the web app, so gunicorn workers cannot start a scheduler.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import signal
import threading
from collections.abc import Callable
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from bot.db import get_db
from broadcast.dispatcher import Dispatcher, TickReport
from broadcast.lock import DispatcherLock
from broadcast.schedule import JST
from broadcast.service import PurgeReport, purge_delivery_records

log = logging.getLogger(__name__)

MAINTENANCE_MINUTE = 17  # hourly: block windows close 24 h after each notice; a quiet minute


def make_lock(app: Flask) -> DispatcherLock:
    """The dispatcher lock for the app's database."""
    return DispatcherLock(get_db(app), app.config.get("BROADCAST_LOCK_FILE") or None)


def run_maintenance(app: Flask) -> PurgeReport:
    """Record the blocks of notices whose 24 h window closed; purge delivery records past retention."""
    with get_db(app).session() as session:
        report = purge_delivery_records(session, int(app.config["BROADCAST_RETENTION_DAYS"]))
    if report.closed_runs or report.deleted_deliveries:
        log.info("broadcast maintenance: %d run(s) block counts recorded, %d delivery record(s) deleted", report.closed_runs, report.deleted_deliveries)
    return report


def run_once(app: Flask, lock: DispatcherLock | None = None, now: dt.datetime | None = None,
             on_wait: Callable[[], None] | None = None, stop: threading.Event | None = None) -> TickReport | None:
    """`--once`: wait for the lock, send everything due (retries included) and return; None if stopped while waiting."""
    lock = lock or make_lock(app)
    if not lock.acquire(stop=stop, on_wait=on_wait):
        return None
    try:
        return Dispatcher(app, stop_event=stop).send_due_broadcasts(now, max_wait=math.inf)
    finally:
        lock.release()


class SchedulerProcess:
    """The long-running dispatcher: lock, APScheduler clock, graceful stop on SIGTERM/SIGINT."""

    def __init__(self, app: Flask, lock: DispatcherLock | None = None) -> None:
        self.app = app
        self.lock = lock or make_lock(app)
        self.stop = threading.Event()
        self.poll = max(0.2, float(app.config["BROADCAST_POLL_SECONDS"]))
        self.dispatcher = Dispatcher(app, stop_event=self.stop)
        self._tick_lock = threading.Lock()

    def install_signal_handlers(self) -> None:
        """SIGTERM (make run, systemd) and Ctrl-C end the process after the chunks in flight."""
        def _handler(signum: int, _frame: Any) -> None:
            log.info("signal %s: stopping after the chunks in flight", signum)
            self.stop.set()

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    def tick(self) -> None:
        """The interval job: send what is due; errors are logged and the next tick tries again."""
        if self.stop.is_set() or not self._tick_lock.acquire(blocking=False):
            return
        try:
            if not self.lock.still_held():
                log.warning("dispatcher lock lost; waiting to get it back before sending")
                if not self.lock.acquire(stop=self.stop):
                    return
            report = self.dispatcher.send_due_broadcasts(max_wait=self.poll)
            if report.started_runs or report.finished_runs:
                log.info("dispatcher: %s", report.summary())
        except Exception:  # noqa: BLE001 - e.g. the database restarting; the next tick resumes
            log.exception("dispatcher tick failed")
        finally:
            self._tick_lock.release()

    def clock_jobs(self) -> None:
        """The every-minute job: other packages' jobs that must run on time (the garbage reminders),
        wired by bot.app into app.extensions["clock_jobs"]; each is idempotent."""
        if self.stop.is_set():
            return
        for job in self.app.extensions.get("clock_jobs", []):
            try:
                job(self.app)
            except Exception:  # noqa: BLE001 - one job failing must not stop the others
                log.exception("clock job %s failed", getattr(job, "__name__", job))

    def maintenance(self) -> None:
        """The hourly job."""
        try:
            run_maintenance(self.app)
            # Other packages' periodic jobs (e.g. the question-log retention), wired by bot.app:
            # this process is the only clock, and broadcast may not import them itself.
            for job in self.app.extensions.get("maintenance_jobs", []):
                try:
                    job(self.app)
                except Exception:  # noqa: BLE001 - one job failing must not stop the others
                    log.exception("maintenance job %s failed", getattr(job, "__name__", job))
        except Exception:  # noqa: BLE001
            log.exception("broadcast maintenance job failed")

    def run(self, on_wait: Callable[[], None] | None = None, on_start: Callable[[], None] | None = None) -> int:
        """Wait for the lock, then tick until stopped; returns the exit code."""
        if not self.lock.acquire(stop=self.stop, on_wait=on_wait):
            return 0
        # APScheduler logs every tick at INFO; our own log says what was sent.
        logging.getLogger("apscheduler").setLevel(max(logging.WARNING, logging.getLogger().level))
        scheduler = BackgroundScheduler(timezone=JST)
        try:
            # In-memory jobs only: the schedule of every notice is in the database.
            scheduler.add_job(
                self.tick, IntervalTrigger(seconds=self.poll), id="send_due_broadcasts",
                max_instances=1, coalesce=True, next_run_time=dt.datetime.now(JST),
            )
            scheduler.add_job(
                self.clock_jobs, CronTrigger(second=30, timezone=JST), id="clock_jobs", max_instances=1, coalesce=True,
            )
            scheduler.add_job(
                self.maintenance, CronTrigger(minute=MAINTENANCE_MINUTE, timezone=JST),
                id="broadcast_maintenance", max_instances=1, coalesce=True,
            )
            scheduler.start()
            if on_start is not None:
                on_start()
            while not self.stop.wait(1.0):
                pass
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=True)
            self.lock.release()
        return 0
