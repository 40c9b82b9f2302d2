"""Configuration from the environment: defaults, types, production refusals, .env.example."""

from __future__ import annotations

import pytest

from bot.config import ROOT, SETTINGS, ConfigError, load_config

STRONG_KEY = "3f9c1a7e5b2d8f04c6e1a9b7d3f5c8e2"  # 32 characters, as secrets.token_hex(16) prints


def test_development_defaults_need_no_line_channel() -> None:
    cfg = load_config({})
    assert cfg["APP_ENV"] == "development"
    assert cfg["DATABASE_URL"].startswith("sqlite:///") and cfg["DATABASE_URL"].endswith("instance/linebot.sqlite3")
    assert cfg["SIMULATOR_ENABLED"] is True and cfg["SESSION_COOKIE_SECURE"] is False


def test_production_refuses_to_start_naming_missing_settings() -> None:
    with pytest.raises(ConfigError) as err:
        load_config({"APP_ENV": "production", "SECRET_KEY": STRONG_KEY})
    assert "LINE_CHANNEL_SECRET" in str(err.value) and "LINE_CHANNEL_ACCESS_TOKEN" in str(err.value)
    assert "SECRET_KEY" not in str(err.value)


PRODUCTION = {"APP_ENV": "production", "LINE_CHANNEL_SECRET": "s", "LINE_CHANNEL_ACCESS_TOKEN": "t"}


@pytest.mark.parametrize("key", ["x", "change-me", "a" * 64, "0123456789abcdef0123456789abcde", "abababababababababababababababababab"])
def test_production_refuses_a_weak_secret_key_in_japanese_and_english(key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config({**PRODUCTION, "SECRET_KEY": key})
    message = str(err.value)
    assert "SECRET_KEY" in message and "32文字以上" in message and "at least 32" in message
    assert len(key) < 4 or key not in message  # the key itself never reaches a log


def test_production_accepts_a_generated_secret_key_and_other_modes_accept_any() -> None:
    assert load_config({**PRODUCTION, "SECRET_KEY": STRONG_KEY})["SECRET_KEY"] == STRONG_KEY
    # Tests and `make run` keep working with short or generated keys.
    assert load_config({"APP_ENV": "testing", "SECRET_KEY": "test"})["SECRET_KEY"] == "test"
    assert len(load_config({})["SECRET_KEY"]) >= 32


def test_hsts_is_on_by_default_in_production_only() -> None:
    assert load_config({**PRODUCTION, "SECRET_KEY": STRONG_KEY})["HSTS_MAX_AGE_SECONDS"] == 365 * 24 * 3600
    assert load_config({})["HSTS_MAX_AGE_SECONDS"] == 0
    assert load_config({"HSTS_MAX_AGE_SECONDS": "600"})["HSTS_MAX_AGE_SECONDS"] == 600
    off = load_config({**PRODUCTION, "SECRET_KEY": STRONG_KEY, "HSTS_MAX_AGE_SECONDS": "0"})
    assert off["HSTS_MAX_AGE_SECONDS"] == 0


def test_production_never_serves_the_simulator_and_secures_cookies() -> None:
    cfg = load_config({"APP_ENV": "production", "SECRET_KEY": STRONG_KEY, "LINE_CHANNEL_SECRET": "s",
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
