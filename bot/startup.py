"""Stop at start-up with one line naming the wrong settings, not a traceback (they are the
operator's to fix). Used by wsgi.py (gunicorn workers, the flask CLI) and gunicorn.conf.py."""

from __future__ import annotations

import sys
from typing import NoReturn

from bot.config import ConfigError, load_config

# A gunicorn worker that exits with this code makes gunicorn stop ("App failed to load.")
# instead of starting the next worker that would fail the same way.
APP_LOAD_ERROR = 4


def stop_for_config_error(exc: ConfigError) -> NoReturn:
    """Print the one line and exit."""
    print(f"設定エラーのため起動できません: {exc}（環境変数または .env で設定してください。各設定の説明: .env.example）",
          file=sys.stderr, flush=True)
    raise SystemExit(APP_LOAD_ERROR)


def check_config() -> None:
    """Read the settings as the app will; stop with the one line if they are wrong."""
    try:
        load_config()
    except ConfigError as exc:
        stop_for_config_error(exc)
