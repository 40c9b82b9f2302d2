"""`make run`: start the bot (gunicorn), the fake LINE platform and print where to go.

Development only. The fake platform stands in for LINE so no channel is needed; the bot is
pointed at it through LINE_API_BASE_URL, exactly as production points at api.line.me.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
# The operator's way back in when the first admin's password (shown once) is lost.
RESET_PASSWORD = "bin/flask users set-password admin"
MSG_STOPPED = "すべてのプロセスを停止しました。"
# `flask users ensure-admin` says this when it has just created the first admin (bot/admin.py).
_FIRST_ADMIN = re.compile(r"初期管理者を作成しました.*パスワード: (\S+?)（")


def _wait_http(url: str, give_up: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not give_up():
        try:
            requests.get(url, timeout=1)
            return True
        except requests.RequestException:
            time.sleep(0.2)
    return False


class Stop:
    """Ctrl-C (SIGINT) and SIGTERM ask for a clean stop; a second one stops the processes at once."""

    def __init__(self) -> None:
        self.requested = False
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, _signum: int, _frame: object) -> None:
        if self.requested:
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.kill()
        self.requested = True

    def __bool__(self) -> bool:
        return self.requested


def first_admin_password(ensure_admin_output: str) -> str | None:
    """The password `flask users ensure-admin` printed, when it has just created the first admin."""
    match = _FIRST_ADMIN.search(ensure_admin_output)
    return match.group(1) if match else None


def admin_note(password: str | None) -> str:
    """How to log in to the admin, for the banner: the password on the first run, else how to reset it."""
    if password:
        return f"初期管理者 admin / パスワード {password}（表示はこの一度だけです）"
    return f"初期管理者 admin / パスワードを忘れたら: {RESET_PASSWORD}"


def ensure_admin(python: str, env: dict[str, str]) -> tuple[bool, str | None]:
    """Create the first admin if there is none (its output is shown); (succeeded, new password or None)."""
    result = subprocess.run([python, "-m", "flask", "--app", "wsgi", "users", "ensure-admin"],
                            cwd=ROOT, env=env, capture_output=True, text=True)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.stdout.flush()
    return result.returncode == 0, first_admin_password(result.stdout)


def supervise(procs: dict[str, subprocess.Popen[bytes]], stop: Stop, ready_urls: tuple[str, ...], banner: str) -> int:
    """Wait until the URLs answer, print the banner, run until a stop is asked (0) or a process
    ends on its own (1); every process is stopped before returning."""
    stop.procs = procs

    def ended() -> tuple[str, int] | None:
        for name, proc in procs.items():
            if proc.poll() is not None:
                return name, proc.returncode
        return None

    try:
        if not all(_wait_http(url, lambda: bool(stop) or ended() is not None) for url in ready_urls):
            if stop:
                return 0
            print("起動に失敗しました。上のログを確認してください。", file=sys.stderr, flush=True)
            return 1
        print(banner, flush=True)
        while not stop:
            gone = ended()
            if gone is not None:
                time.sleep(0.5)  # a stop may be on its way here (the signal reached us as the process ended)
                if stop:
                    break
                print(f"{gone[0]}が終了しました（終了コード {gone[1]}）。ほかのプロセスも停止します。", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if stop:
            print(MSG_STOPPED, flush=True)


def two_factor_note(env: dict[str, str]) -> str:
    """How the admin logs in here, as far as two-factor login goes (ADMIN_REQUIRE_2FA)."""
    from bot.config import load_config

    if load_config(env)["ADMIN_REQUIRE_2FA"]:
        return "管理者は必須。初回ログイン後の設定画面で認証アプリにQRコードを読み取らせてください"
    return "任意（本番では管理者に必須。ここで試すには ADMIN_REQUIRE_2FA=1 make run）"


def main() -> int:
    """Run until Ctrl-C or SIGTERM (exit code 0); 1 when something fails or a process ends on its own."""
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "8080"))
    fake_port = int(os.environ.get("FAKE_LINE_PORT", "8081"))
    bot_url = f"http://{host}:{port}"
    fake_url = f"http://127.0.0.1:{fake_port}"
    env = dict(os.environ)
    env.setdefault("APP_ENV", "development")
    env.setdefault("LINE_CHANNEL_SECRET", "dev-channel-secret")
    env.setdefault("LINE_CHANNEL_ACCESS_TOKEN", "dev-access-token")
    # One key for all workers so staff sessions survive a request landing on another worker.
    env.setdefault("SECRET_KEY", secrets.token_hex(32))
    env["LINE_API_BASE_URL"] = fake_url
    env["FAKE_LINE_URL"] = fake_url
    python = sys.executable
    stop = Stop()
    created, password = ensure_admin(python, env)
    if stop:
        print(MSG_STOPPED, flush=True)
        return 0
    if not created:
        print("初期管理者を確認できませんでした。上のメッセージを確認してください。", file=sys.stderr, flush=True)
        return 1
    # Each in its own session: a terminal's Ctrl-C reaches only this supervisor, which then stops
    # them with SIGTERM (a Ctrl-C landing in a child still importing printed a traceback).
    procs = {
        "疑似LINEプラットフォーム": subprocess.Popen(
            [python, "-m", "bot.sandbox.fake_line", "--host", "127.0.0.1", "--port", str(fake_port),
             "--channel-secret", env["LINE_CHANNEL_SECRET"], "--webhook-url", f"{bot_url}/callback"],
            cwd=ROOT, env=env, start_new_session=True,
        ),
        "ボット（gunicorn）": subprocess.Popen(
            [python, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"{host}:{port}", "wsgi:app"],
            cwd=ROOT, env=env, start_new_session=True,
        ),
    }
    scheduler = ROOT / "broadcast" / "cli.py"
    if scheduler.exists():
        procs["配信プロセス"] = subprocess.Popen(
            [python, "-m", "flask", "--app", "wsgi", "broadcast", "run-scheduler"], cwd=ROOT, env=env,
            start_new_session=True)
    banner = (
        "\n================================================================\n"
        f" トップページ       : {bot_url}/\n"
        f" LINE シミュレーター : {bot_url}/simulator\n"
        f" 職員用管理画面     : {bot_url}/admin/\n"
        f"   {admin_note(password)}\n"
        f" 二段階認証         : {two_factor_note(env)}\n"
        f" Webhook            : {bot_url}/callback\n"
        f" 疑似 LINE プラットフォーム: {fake_url}\n"
        " 停止: Ctrl-C\n"
        "================================================================\n"
    )
    return supervise(procs, stop, (f"{bot_url}/healthz", f"{fake_url}/_fake/stats"), banner)


if __name__ == "__main__":
    raise SystemExit(main())
