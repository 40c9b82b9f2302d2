"""`make run` (bot/devserver.py): the banner's admin line, and stopping cleanly with Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bot import devserver
from bot.cli import upgrade_database
from bot.config import SETTINGS
from tests.conftest import free_port
from tests.test_admin import login

ROOT = Path(__file__).resolve().parent.parent


# --- the admin line of the banner ---------------------------------------------------------------


def test_first_run_shows_the_password_later_runs_how_to_reset_it(app: Flask, client: FlaskClient, runner: Any) -> None:
    first = runner.invoke(args=["users", "ensure-admin"]).output  # what the devserver reads
    password = devserver.first_admin_password(first)
    assert password and password in devserver.admin_note(password)
    assert login(client, "admin", password).status_code == 302

    again = runner.invoke(args=["users", "ensure-admin"]).output
    assert devserver.first_admin_password(again) is None
    note = devserver.admin_note(None)
    assert "上に" not in note and devserver.RESET_PASSWORD in note

    # The command in the banner is the real one: bin/flask is the venv's `flask --app wsgi`; run the rest.
    args = shlex.split(devserver.RESET_PASSWORD)
    assert args[0] == "bin/flask" and os.access(ROOT / args[0], os.X_OK)
    result = runner.invoke(args=[*args[1:], "--password-stdin"], input="another-long-password\n")
    assert result.exit_code == 0, result.output
    assert login(app.test_client(), "admin", "another-long-password").status_code == 302


# --- stopping -------------------------------------------------------------------------------------

# A devserver whose processes are sleepers; "exit" makes the first one end on its own after 1 s.
SUPERVISED = """
import subprocess, sys
from bot import devserver
stop = devserver.Stop()
sleep = "import time; time.sleep(%s)"
# In sessions of their own, as the devserver starts the bot, the fake and the dispatcher: a terminal's
# Ctrl-C reaches only the supervisor (a child still starting up would print a fatal error).
procs = {"一つ目": subprocess.Popen([sys.executable, "-c", sleep % (1 if sys.argv[1] == "exit" else 60)], start_new_session=True),
         "二つ目": subprocess.Popen([sys.executable, "-c", sleep % 60], start_new_session=True)}
print("children", *(p.pid for p in procs.values()), flush=True)
sys.exit(devserver.supervise(procs, stop, (), "READY"))
"""


def _start(mode: str) -> tuple[subprocess.Popen[str], list[int]]:
    """The supervisor in its own process group, as `make run` is in the terminal's; its children's pids."""
    proc = subprocess.Popen([sys.executable, "-c", SUPERVISED, mode], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    assert proc.stdout is not None
    children = [int(pid) for pid in proc.stdout.readline().split()[1:]]
    assert proc.stdout.readline().strip() == "READY"
    return proc, children


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_everything_with_exit_code_0(how: str) -> None:
    proc, children = _start("run")
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # the terminal signals the whole foreground group
    else:
        os.kill(proc.pid, signal.SIGTERM)  # a process manager signals the devserver alone
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert out.strip().splitlines()[-1] == devserver.MSG_STOPPED
    assert "Traceback" not in err
    assert not any(_alive(pid) for pid in children)


def test_a_process_that_ends_on_its_own_stops_the_rest_with_exit_code_1() -> None:
    proc, children = _start("exit")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "一つ目が終了しました（終了コード 0）" in err
    assert devserver.MSG_STOPPED not in out
    assert not any(_alive(pid) for pid in children)


# --- the real thing, twice ------------------------------------------------------------------------


def _run_devserver(env: dict[str, str], sig: int) -> tuple[int, str]:
    """Start `python -m bot.devserver`, wait for its banner, send `sig` to its group; (exit code, output)."""
    proc = subprocess.Popen([sys.executable, "-m", "bot.devserver"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith(" 停止: Ctrl-C") or time.monotonic() > deadline:
                break
        assert any(line.startswith(" 停止: Ctrl-C") for line in lines), "".join(lines)
        os.killpg(proc.pid, sig)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return proc.returncode, "".join(lines) + rest


def test_make_run_banner_and_exit_codes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dev.sqlite3'}"
    upgrade_database(url)
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(DATABASE_URL=url, PORT=str(free_port()), FAKE_LINE_PORT=str(free_port()), GUNICORN_WORKERS="1")

    code, output = _run_devserver(env, signal.SIGINT)
    assert code == 0, output
    (admin_line,) = [line for line in output.splitlines() if line.startswith("   初期管理者 admin")]
    assert "パスワード " in admin_line and "表示はこの一度だけです" in admin_line
    assert output.rstrip().endswith(devserver.MSG_STOPPED)
    assert "Traceback" not in output

    code, output = _run_devserver(env, signal.SIGTERM)
    assert code == 0, output
    (admin_line,) = [line for line in output.splitlines() if line.startswith("   初期管理者 admin")]
    assert admin_line.endswith(devserver.RESET_PASSWORD)
    assert output.rstrip().endswith(devserver.MSG_STOPPED)
