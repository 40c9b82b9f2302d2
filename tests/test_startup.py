"""Wrong settings stop the app at start-up with one line naming them, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import SETTINGS
from bot.startup import APP_LOAD_ERROR

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(command: list[str], **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env.update(settings)
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "設定エラー" in line]


@pytest.mark.parametrize("command", [
    [str(BIN / "flask"), "--app", "wsgi", "db", "current"],
    [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--bind", "127.0.0.1:0", "wsgi:app"],
], ids=["flask-cli", "gunicorn"])
def test_production_without_its_required_settings_names_them_in_one_line(command: list[str]) -> None:
    result = run(command, APP_ENV="production", LINE_CHANNEL_SECRET="set")
    assert result.returncode == APP_LOAD_ERROR, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    (line,) = error_lines(result.stderr)
    assert line.startswith("設定エラーのため起動できません: ")
    assert "SECRET_KEY" in line and "LINE_CHANNEL_ACCESS_TOKEN" in line and "LINE_CHANNEL_SECRET" not in line
    assert "Booting worker" not in result.stderr  # gunicorn stopped before starting workers


def test_a_setting_of_the_wrong_type_is_named_too() -> None:
    result = run([str(BIN / "flask"), "--app", "wsgi", "db", "current"], APP_ENV="development", INBOX_BATCH_SIZE="many")
    assert result.returncode == APP_LOAD_ERROR
    assert "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert "INBOX_BATCH_SIZE='many'" in line


def test_gunicorns_entry_point_reads_dot_env_like_the_flask_cli(tmp_path) -> None:
    """`.env` gives the web the same settings as bin/flask (a city set there is the city served)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    (tmp_path / ".env").write_text("MUNICIPALITY=joso\n", encoding="utf-8")
    code = "import sys; sys.path.insert(0, %r); import wsgi; print(wsgi.app.config['MUNICIPALITY'])" % str(root)
    env = {k: v for k, v in os.environ.items() if k != "MUNICIPALITY"}
    env.update(DATABASE_URL=f"sqlite:///{tmp_path / 'x.sqlite3'}", APP_ENV="development")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "joso"
