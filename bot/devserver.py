"""`make run`: start the bot (gunicorn), the fake LINE platform and print where to go.

Development only. The fake platform stands in for LINE so no channel is needed; the bot is
pointed at it through LINE_API_BASE_URL, exactly as production points at api.line.me.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def _wait_http(url: str, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return True
        except requests.RequestException:
            time.sleep(0.2)
    return False


def two_factor_note(env: dict[str, str]) -> str:
    """How the admin logs in here, as far as two-factor login goes (ADMIN_REQUIRE_2FA)."""
    from bot.config import load_config

    if load_config(env)["ADMIN_REQUIRE_2FA"]:
        return "管理者は必須。初回ログイン後の設定画面で認証アプリにQRコードを読み取らせてください"
    return "任意（本番では管理者に必須。ここで試すには ADMIN_REQUIRE_2FA=1 make run）"


def main() -> int:
    """Run until Ctrl-C; returns the exit code."""
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
    procs = [
        subprocess.Popen(
            [python, "-m", "bot.sandbox.fake_line", "--host", "127.0.0.1", "--port", str(fake_port),
             "--channel-secret", env["LINE_CHANNEL_SECRET"], "--webhook-url", f"{bot_url}/callback"],
            cwd=ROOT, env=env,
        ),
        subprocess.Popen(
            [python, "-m", "gunicorn", "-c", "gunicorn.conf.py", "--bind", f"{host}:{port}", "wsgi:app"],
            cwd=ROOT, env=env,
        ),
    ]
    scheduler = ROOT / "broadcast" / "cli.py"
    if scheduler.exists():
        procs.append(subprocess.Popen([python, "-m", "flask", "--app", "wsgi", "broadcast", "run-scheduler"], cwd=ROOT, env=env))

    def stop(*_args: object) -> None:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        if not (_wait_http(f"{bot_url}/healthz") and _wait_http(f"{fake_url}/_fake/stats")):
            print("起動に失敗しました。上のログを確認してください。", file=sys.stderr)
            stop()
            return 1
        print(
            "\n================================================================\n"
            f" LINE シミュレーター : {bot_url}/simulator\n"
            f" 職員用管理画面     : {bot_url}/admin   （初期管理者 admin / パスワードは上に一度だけ表示）\n"
            f" 二段階認証         : {two_factor_note(env)}\n"
            f" Webhook            : {bot_url}/callback\n"
            f" 疑似 LINE プラットフォーム: {fake_url}\n"
            " 停止: Ctrl-C\n"
            "================================================================\n",
            flush=True,
        )
        while all(proc.poll() is None for proc in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stop()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    raise SystemExit(main())
