"""Configuration from the environment: defaults, types, production refusals, .env.example."""

from __future__ import annotations

import pytest

from bot.config import ROOT, SETTINGS, ConfigError, load_config


def test_development_defaults_need_no_line_channel() -> None:
    cfg = load_config({})
    assert cfg["APP_ENV"] == "development"
    assert cfg["DATABASE_URL"].startswith("sqlite:///") and cfg["DATABASE_URL"].endswith("instance/linebot.sqlite3")
    assert cfg["SIMULATOR_ENABLED"] is True and cfg["SESSION_COOKIE_SECURE"] is False


def test_production_refuses_to_start_naming_missing_settings() -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"APP_ENV": "production", "SECRET_KEY": "x"})
    assert "LINE_CHANNEL_SECRET" in str(err.value) and "LINE_CHANNEL_ACCESS_TOKEN" in str(err.value)
    assert "SECRET_KEY" not in str(err.value)


def test_production_never_serves_the_simulator_and_secures_cookies() -> None:
    cfg = load_config({"APP_ENV": "production", "SECRET_KEY": "k", "LINE_CHANNEL_SECRET": "s",
                       "LINE_CHANNEL_ACCESS_TOKEN": "t", "SIMULATOR_ENABLED": "1"})
    assert cfg["SIMULATOR_ENABLED"] is False and cfg["SESSION_COOKIE_SECURE"] is True
    assert cfg["LINE_API_BASE_URL"] == "https://api.line.me"
    assert cfg["LINE_API_DATA_BASE_URL"] == "https://api-data.line.me"


def test_types_are_cast_and_bad_values_named() -> None:
    assert load_config({"INBOX_WORKER_THREADS": "7"})["INBOX_WORKER_THREADS"] == 7
    with pytest.raises(ConfigError, match="INBOX_WORKER_THREADS"):
        load_config({"INBOX_WORKER_THREADS": "many"})
    with pytest.raises(ConfigError, match="MUNICIPALITY"):
        load_config({"MUNICIPALITY": "tokyo"})


def test_env_example_lists_every_setting() -> None:
    listed = {line.split("=")[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line and not line.startswith("#")}
    assert listed == set(SETTINGS)
