"""Configuration read from environment variables, in one place."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LINE_API_DEFAULT = "https://api.line.me"
LINE_API_DATA_DEFAULT = "https://api-data.line.me"
MUNICIPALITIES = ("nasukarasuyama", "nasushiobara", "joso", "ohtawara")


class ConfigError(RuntimeError):
    """Raised when required settings are missing or invalid."""


def _bool(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


# name -> (type, default, help). `.env.example` is generated from / checked against this table.
SETTINGS: dict[str, tuple[type, Any, str]] = {
    "APP_ENV": (str, "development", "development | production | testing"),
    "SECRET_KEY": (str, None, "Flask session signing key (required in production: at least 32 random characters, e.g. python3 -c 'import secrets; print(secrets.token_hex(32))')"),
    "DATABASE_URL": (str, None, "SQLAlchemy URL; default sqlite:///instance/linebot.sqlite3"),
    "LINE_CHANNEL_SECRET": (str, None, "LINE channel secret (required in production)"),
    "LINE_CHANNEL_ACCESS_TOKEN": (str, None, "LINE channel access token (required in production)"),
    "LINE_API_BASE_URL": (str, LINE_API_DEFAULT, "Messaging API host; the simulator sets the fake"),
    "LINE_API_DATA_BASE_URL": (str, None, "Messaging API data host (rich-menu images); default follows LINE_API_BASE_URL when it is not LINE's"),
    "LINE_TIMEOUT_SECONDS": (float, 10.0, "timeout of every LINE API call"),
    "LINE_QUOTA_WARN_PERCENT": (float, 80.0, "flask line check reports the month's message quota as to fix when this share of it is used"),
    "MUNICIPALITY": (str, "nasukarasuyama", "city: nasukarasuyama | nasushiobara | joso | ohtawara"),
    "LANGUAGES": (str, "ja,ja-easy,en,pt,vi,zh,fil", "languages residents may choose, in the order offered (comma list of ja, ja-easy, en, pt, vi, zh, fil; ja is always included)"),
    "INBOX_WORKER_THREADS": (int, 1, "background threads per web process that process stored webhook events (one measured best on 2 cores)"),
    "INBOX_BATCH_SIZE": (int, 16, "events a worker thread claims and handles in one transaction"),
    "INBOX_LEASE_SECONDS": (float, 60.0, "a claimed event not finished within this is claimed again"),
    "INBOX_POLL_SECONDS": (float, 5.0, "how often idle workers look in the database for events nobody holds (retries, expired leases); events this process stores are handed to its workers at once"),
    "INBOX_BACKLOG_LIMIT": (int, 32, "events waiting in one process above which webhook requests wait before answering (backpressure; 0: never wait)"),
    "INBOX_ACK_MAX_WAIT_SECONDS": (float, 1.0, "longest a webhook request waits for room (LINE gives up after 2 s; the events are already stored)"),
    "INBOX_MAX_ATTEMPTS": (int, 5, "attempts before an event is marked failed"),
    "INSTANCE_HOST_ID": (str, None, "the host name written on this process group's inbox claims (default: the machine's hostname); give each gunicorn group on one machine its own, so none takes back another's claims as those of its dead processes"),
    "INBOX_RETENTION_DAYS": (int, 7, "processed webhook events (they contain residents' texts) are deleted after this; 0 keeps them"),
    "REPLY_TOKEN_TTL_SECONDS": (float, 50.0, "after this age an event is answered by push instead of reply"),
    "WEBHOOK_MAX_BODY_BYTES": (int, 1_000_000, "larger webhook bodies are refused with 413"),
    "MAX_TEXT_CHARS": (int, 2000, "resident text beyond this is truncated before matching"),
    "FAQ_ANSWER_THRESHOLD": (float, None, "all three unset: the calibrated decision (faq/decision-model.json) decides; setting any of them switches to the score rule: answer when the fused matcher score reaches this"),
    "FAQ_CLARIFY_THRESHOLD": (float, None, "with FAQ_ANSWER_THRESHOLD: score floor for 「もしかして」; below it the bot says it does not know"),
    "FAQ_MARGIN": (float, None, "with FAQ_ANSWER_THRESHOLD: lead over the second entry needed to answer directly"),
    "FAQ_CHOICE_WINDOW_MINUTES": (float, 30.0, "a number a resident sends (1〜3, 0 = どれでもない) picks from their 「もしかして」 of the last this many minutes; 0 turns it off"),
    "WEBCHAT_ALLOWED_ORIGINS": (str, None, "the city's homepage origins that may embed the chat widget and call its API, comma-separated (e.g. https://www.city.example.jp); empty: only this server's own pages"),
    "WEBCHAT_RATE_PER_ADDRESS": (int, 60, "homepage chat API calls one address may make per WEBCHAT_RATE_WINDOW_SECONDS, counted in each web process (0: no limit)"),
    "WEBCHAT_RATE_PER_SESSION": (int, 20, "homepage chat API calls one chat session may make per WEBCHAT_RATE_WINDOW_SECONDS, counted in each web process (0: no limit)"),
    "WEBCHAT_RATE_WINDOW_SECONDS": (int, 60, "the window of the homepage chat's rate limits"),
    "BROADCAST_POLL_SECONDS": (float, 5.0, "how often the notice dispatcher (flask broadcast run-scheduler) looks for due notices"),
    "BROADCAST_SEND_THREADS": (int, 4, "multicast calls the dispatcher makes at the same time"),
    "BROADCAST_MAX_ATTEMPTS": (int, 15, "attempts per multicast chunk (429, 5xx, timeouts) before it is marked failed"),
    "BROADCAST_RETRY_BASE_SECONDS": (float, 1.0, "first backoff after a 429, 5xx or timeout; doubles with each attempt"),
    "BROADCAST_RETRY_MAX_SECONDS": (float, 300.0, "longest backoff between attempts of a multicast chunk"),
    "BROADCAST_MISFIRE_GRACE_MINUTES": (int, 60, "a recurring notice's occurrence missed by more than this (dispatcher down) is skipped, not sent late"),
    "BROADCAST_RETENTION_DAYS": (int, 90, "per-resident delivery records and recipient lists of notices are kept this long; counts stay"),
    "BROADCAST_LOCK_FILE": (str, None, "SQLite only: lock file that keeps a second dispatcher waiting (default: beside the database file)"),
    "INSIGHT_MIN_RECIPIENTS": (int, 20, "a notice run to fewer residents gets no LINE statistics unit (LINE hides figures under 20)"),
    "INSIGHT_MONTHLY_UNITS": (int, 900, "at most this many LINE statistics unit names per month (LINE allows about 1,000)"),
    "INSIGHT_DAYS": (int, 14, "days after its last sending that a notice's LINE statistics are fetched, once a day"),
    "SURVEY_RETENTION_DAYS": (int, 365, "residents' survey answers are deleted this many days after they started answering"),
    "FAQ_WHATIF_RECENT": (int, 300, "how many recent logged questions the workbench's what-if replays"),
    "FAQ_EVAL_FILE": (str, None, "evaluation TSV for the what-if (default faq/kb/cities/<city>/eval.tsv, else ../shared/eval/dev-questions.tsv)"),
    "FAQ_IMPORT_MAX_ROWS": (int, 20_000, "a FAQ CSV with more data rows than this is refused with an error at the first row over (every entry is in each worker's matcher index)"),
    "FAQ_IMPORT_MAX_FIELD_CHARS": (int, 10_000, "a FAQ CSV cell longer than this is an error of its line"),
    "FAQ_IMPORT_CHUNK_ROWS": (int, 100, "rows a FAQ import writes per transaction (short transactions keep the webhook and the inbox writing in between)"),
    "SEGMENT_PRIVACY_FLOOR": (int, 10, "segments smaller than this cannot be targeted unless an admin overrides (audit-logged)"),
    "LINE_ACCOUNT_NAME": (str, None, "the LINE official account's name as residents see it, shown in the notice preview (default: the city's name from faq/kb/cities/<city>/city.yaml + 公式LINE)"),
    "LINE_ACCOUNT_ICON_URL": (str, None, "the account's profile image in the notice preview: an https:// URL (staff browsers load it from there) or a path on this server starting with / (default: a neutral placeholder, bot/static/account-icon.svg)"),
    "LOGIN_MAX_FAILURES": (int, 5, "failed staff logins in a row for one account from one address before that account must wait at that address (other addresses are not affected)"),
    "LOGIN_BACKOFF_SECONDS": (int, 30, "the first such wait; each further failure of the same account and address doubles it"),
    "LOGIN_LOCKOUT_SECONDS": (int, 900, "longest login wait; also the window of the per-address and per-account counts"),
    "LOGIN_MAX_FAILURES_PER_ADDRESS": (int, 20, "failed staff logins from one address, any accounts, within LOGIN_LOCKOUT_SECONDS before that address must wait (0: off)"),
    "LOGIN_MAX_FAILURES_PER_ACCOUNT": (int, 20, "failed logins of one account, from any addresses, within LOGIN_LOCKOUT_SECONDS before only addresses it logged in from in the last 30 days may try it (0: off)"),
    "ADMIN_REQUIRE_2FA": (bool, None, "staff with role admin must log in with a code from an authenticator app (TOTP) and set one up at their first login (default: on in production, off in development and testing); other roles may turn it on for themselves"),
    "SESSION_COOKIE_SECURE": (bool, None, "send the staff session cookie over HTTPS only (default: on in production)"),
    "HSTS_MAX_AGE_SECONDS": (int, None, "Strict-Transport-Security max-age sent with responses served over HTTPS (default: 31536000 in production, 0 = no header elsewhere); behind a proxy set TRUSTED_PROXIES so HTTPS is recognised"),
    "SIMULATOR_ENABLED": (bool, None, "serve /simulator (default: on in development only)"),
    "FAKE_LINE_URL": (str, None, "control URL of the fake LINE platform used by the simulator"),
    "LINE_OPENAPI_DIR": (str, None, "LINE OpenAPI specs for the fake platform (default ../shared/line-openapi)"),
    "TRUSTED_PROXIES": (int, 0, "reverse proxies in front of gunicorn whose X-Forwarded-For/Proto to trust (login rate limits use the client address)"),
    "LOG_LEVEL": (str, "INFO", "application log level"),
    "LOG_FORMAT": (str, "text", "text: one plain line per log record; json: one JSON object per line (same fields, for log collectors)"),
    "METRICS_TOKEN": (str, None, "bearer token a Prometheus scrape of /metrics must send (Authorization: Bearer ...); with METRICS_ALLOWED_NETWORKS both must match; with neither, /metrics is off in production (404) and loopback-only elsewhere"),
    "METRICS_ALLOWED_NETWORKS": (str, None, "comma-separated addresses or networks (e.g. 10.0.0.5,192.168.1.0/24) allowed to read /metrics; behind a proxy set TRUSTED_PROXIES so the client address is seen"),
    "KPI_CONFIG_FILE": (str, None, "YAML with the city's KPI settings (usage-rate denominator with source and date, targets); overrides kpi/cities.yaml"),
    "DISASTER_INFO_URL": (str, None, "the page with the city's latest disaster information, linked by the disaster menu and at the end of every answer while disaster mode is on (default: the city's homepage from faq/kb/cities/<city>/city.yaml)"),
    "REPORT_CATEGORIES": (str, "道路,公園,街灯,ごみの不法投棄,動物の死骸,その他", "categories residents choose from when they report a problem (「通報」), comma-separated, in order (at most 12; 道路 gets the guidance to the national road line #9910)"),
    "REPORT_DAILY_LIMIT": (int, 5, "reports one resident may send per day (Japan time); 0: no limit"),
    "REPORT_DRAFT_MINUTES": (int, 60, "a report not sent within this long after its last step is dropped (its buttons then say so)"),
    "REPORT_PHOTO_MAX_BYTES": (int, 10_000_000, "a report photo larger than this is not kept (the report goes on without it)"),
    "REPORT_PHOTO_DIR": (str, None, "where report photos are stored, outside the web root (default instance/reports/); served only to signed-in staff"),
    "REPORT_RETENTION_DAYS": (int, 365, "reports and their photos are deleted this long after they were sent (hourly job of the dispatcher); 0 keeps them"),
    "GARBAGE_REMINDER_TIME": (str, "19:00", "Japan time the evening before a collection day at which residents who asked for it get the garbage reminder (HH:MM)"),
    "GARBAGE_REMINDER_LATE_MINUTES": (int, 120, "a garbage reminder the dispatcher could not send at its time (it was down) is still sent this long after it, never later"),
    "GARBAGE_REMINDER_RETENTION_DAYS": (int, 30, "garbage reminder runs and their recipient lists (LINE user ids) are deleted after this (hourly job of the dispatcher); 0 keeps them"),
    "QUESTION_LOG_RETENTION_DAYS": (int, 365, "logged questions older than this are deleted by the retention job (flask faq purge-log); 0 keeps them"),
}

REQUIRED_IN_PRODUCTION = ("SECRET_KEY", "LINE_CHANNEL_SECRET", "LINE_CHANNEL_ACCESS_TOKEN")
SECRET_KEY_MIN_CHARS = 32
SECRET_KEY_MIN_DISTINCT = 10
HSTS_PRODUCTION_DEFAULT = 365 * 24 * 3600
MSG_WEAK_SECRET_KEY = (
    f"SECRET_KEY が短すぎるか単純すぎます。{SECRET_KEY_MIN_CHARS}文字以上のランダムな値を設定してください"
    "（例: python3 -c 'import secrets; print(secrets.token_hex(32))'）。"
    f" / SECRET_KEY is too short or too simple: set at least {SECRET_KEY_MIN_CHARS} random characters"
    " (e.g. python3 -c 'import secrets; print(secrets.token_hex(32))')"
)


def is_weak_secret_key(value: str) -> bool:
    """True for a signing key anyone could guess or brute-force: short, or a few characters repeated."""
    return len(value) < SECRET_KEY_MIN_CHARS or len(set(value)) < SECRET_KEY_MIN_DISTINCT


def load_config(environ: Mapping[str, str] | None = None, **overrides: Any) -> dict[str, Any]:
    """Build the app configuration from the environment; overrides win (tests)."""
    from urllib.parse import urlsplit

    env = dict(os.environ if environ is None else environ)
    cfg: dict[str, Any] = {}
    errors: list[str] = []
    for name, (kind, default, _help) in SETTINGS.items():
        raw = env.get(name)
        if raw is None or raw == "":
            cfg[name] = default
            continue
        try:
            cfg[name] = _bool(raw) if kind is bool else kind(raw)
        except ValueError:
            errors.append(f"{name}={raw!r} is not a valid {kind.__name__}")
    cfg.update(overrides)
    app_env = cfg["APP_ENV"]
    if app_env not in {"development", "production", "testing"}:
        errors.append(f"APP_ENV={app_env!r} must be development, production or testing")
    if cfg["LOG_FORMAT"] not in ("text", "json"):
        errors.append(f"LOG_FORMAT={cfg['LOG_FORMAT']!r} must be text or json")
    host_id = cfg.get("INSTANCE_HOST_ID")
    if host_id and (len(str(host_id)) > 80 or not re.fullmatch(r"[A-Za-z0-9._-]+", str(host_id))):
        errors.append(f"INSTANCE_HOST_ID={host_id!r} must be 1 to 80 letters, digits, '.', '_' or '-'")
    try:
        from bot.metrics import parse_networks

        parse_networks(cfg.get("METRICS_ALLOWED_NETWORKS"))
    except ValueError as exc:
        errors.append(f"METRICS_ALLOWED_NETWORKS: {exc}")
    if cfg["MUNICIPALITY"] not in MUNICIPALITIES:
        errors.append(f"MUNICIPALITY={cfg['MUNICIPALITY']!r} must be one of {', '.join(MUNICIPALITIES)}")
    try:
        from bot.i18n import parse_languages

        parse_languages(cfg["LANGUAGES"])
    except ValueError as exc:
        errors.append(f"LANGUAGES={cfg['LANGUAGES']!r}: {exc}")
    report_categories = [c.strip() for c in str(cfg.get("REPORT_CATEGORIES") or "").split(",") if c.strip()]
    if not 1 <= len(report_categories) <= 12 or any(len(c) > 20 for c in report_categories):
        errors.append("REPORT_CATEGORIES must list 1 to 12 categories of at most 20 characters, comma-separated")
    hours, _, minutes = str(cfg.get("GARBAGE_REMINDER_TIME") or "").partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and int(hours) < 24 and int(minutes) < 60):
        errors.append(f"GARBAGE_REMINDER_TIME={cfg.get('GARBAGE_REMINDER_TIME')!r} must be a time like 19:00 (Japan time)")
    icon = cfg.get("LINE_ACCOUNT_ICON_URL")
    if icon and not (str(icon).startswith("https://") or (str(icon).startswith("/") and not str(icon).startswith("//"))):
        errors.append(f"LINE_ACCOUNT_ICON_URL={icon!r} must be an https:// URL or a path starting with /")
    for origin in str(cfg.get("WEBCHAT_ALLOWED_ORIGINS") or "").split(","):
        parts = urlsplit(origin.strip())
        if origin.strip() and (parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/")
                               or parts.query or parts.fragment or "@" in parts.netloc):
            errors.append(f"WEBCHAT_ALLOWED_ORIGINS: {origin.strip()!r} is not an origin like https://www.city.example.jp")
    if app_env == "production":
        missing = [k for k in REQUIRED_IN_PRODUCTION if not cfg.get(k)]
        if missing:
            errors.append("missing required settings: " + ", ".join(missing))
        if cfg.get("SECRET_KEY") and is_weak_secret_key(str(cfg["SECRET_KEY"])):
            errors.append(MSG_WEAK_SECRET_KEY)
    if errors:
        raise ConfigError("; ".join(errors))

    # Development conveniences: never used in production (checked above).
    if not cfg["SECRET_KEY"]:
        cfg["SECRET_KEY"] = secrets.token_hex(32)
    if not cfg["LINE_CHANNEL_SECRET"]:
        cfg["LINE_CHANNEL_SECRET"] = "dev-channel-secret"
    if not cfg["LINE_CHANNEL_ACCESS_TOKEN"]:
        cfg["LINE_CHANNEL_ACCESS_TOKEN"] = "dev-access-token"
    if not cfg["DATABASE_URL"]:
        cfg["DATABASE_URL"] = f"sqlite:///{ROOT / 'instance' / 'linebot.sqlite3'}"
    if not cfg["LINE_API_DATA_BASE_URL"]:
        base = cfg["LINE_API_BASE_URL"]
        cfg["LINE_API_DATA_BASE_URL"] = LINE_API_DATA_DEFAULT if base == LINE_API_DEFAULT else base
    if cfg["SESSION_COOKIE_SECURE"] is None:
        cfg["SESSION_COOKIE_SECURE"] = app_env == "production"
    if cfg["ADMIN_REQUIRE_2FA"] is None:
        cfg["ADMIN_REQUIRE_2FA"] = app_env == "production"
    if cfg["HSTS_MAX_AGE_SECONDS"] is None:
        cfg["HSTS_MAX_AGE_SECONDS"] = HSTS_PRODUCTION_DEFAULT if app_env == "production" else 0
    if cfg["SIMULATOR_ENABLED"] is None:
        cfg["SIMULATOR_ENABLED"] = app_env == "development"
    if app_env == "production":
        cfg["SIMULATOR_ENABLED"] = False  # the fake platform never runs beside real residents
    if not cfg["LINE_OPENAPI_DIR"]:
        cfg["LINE_OPENAPI_DIR"] = str(ROOT.parent / "shared" / "line-openapi")
    cfg["TESTING"] = app_env == "testing"
    return cfg
