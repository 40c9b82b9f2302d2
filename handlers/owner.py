"""Who holds a claim on an inbox event: this host, its boot, this process, this app instance.

A claim records its owner so that a process that starts can tell at once which claims were
left by processes that died on the same host (killed, crashed, or from before a reboot) and
take them back without waiting for their lease to run out. Claims of other hosts are never
judged from here: on PostgreSQL they are taken back when their lease expires.

Owner string: ``host/boot/pid/start/instance`` where `host` is INSTANCE_HOST_ID or the hostname (two
gunicorn groups on one machine with their own ids act as two hosts: neither takes back the other's
claims as dead processes of its own, they wait for the lease), `start` is the process's start time in
clock ticks since boot (so a reused pid is not mistaken for the dead process) and `instance`
tells apart several apps in one process (tests run a "dead" and a "restarted" app side by side).
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from pathlib import Path

_LIVE_INSTANCES: set[str] = set()
_LOCK = threading.Lock()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _start_ticks(pid: int) -> str | None:
    """The process's start time since boot (field 22 of /proc/PID/stat), or None if it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else fields[19]


_HOST = socket.gethostname()[:80].replace("/", "_")
_BOOT = _boot_id()


def host_id(configured: str | None = None) -> str:
    """The host part of owners: INSTANCE_HOST_ID when set (two process groups on one machine act as two hosts), else the hostname."""
    return configured[:80].replace("/", "_") if configured else _HOST


class Owner:
    """The identity one app instance (one InboxWorkers) writes on its claims."""

    def __init__(self, host: str | None = None) -> None:
        self.host = host_id(host)
        self.instance = uuid.uuid4().hex[:12]
        self._pid: int | None = None
        self._text = ""

    def __str__(self) -> str:
        pid = os.getpid()
        if pid != self._pid:  # first use, or after a fork (gunicorn workers)
            self._pid = pid
            self._text = f"{self.host}/{_BOOT}/{pid}/{_start_ticks(pid) or '0'}/{self.instance}"
        return self._text

    def alive(self, is_alive: bool) -> None:
        """Register (or forget) this instance as running in this process."""
        with _LOCK:
            (_LIVE_INSTANCES.add if is_alive else _LIVE_INSTANCES.discard)(self.instance)

    def host_prefix(self) -> str:
        """The prefix every owner on this host starts with."""
        return f"{self.host}/"


def is_dead(owner: str | None, host: str | None = None) -> bool:
    """True if the owner certainly no longer runs: on this host (`host`: INSTANCE_HOST_ID), and its boot, process or instance is gone.

    Unknown owners (another host, an unreadable string, no /proc) count as alive: their claims
    wait for the lease to expire.
    """
    if not owner:
        return False
    parts = owner.split("/")
    if len(parts) != 5 or parts[0] != host_id(host):
        return False
    _host, boot, pid_text, start, instance = parts
    if boot != _BOOT:
        return _BOOT != "unknown"  # the host rebooted since the claim
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid == os.getpid():
        with _LOCK:
            return instance not in _LIVE_INSTANCES
    current = _start_ticks(pid)
    return current is None or current != start
