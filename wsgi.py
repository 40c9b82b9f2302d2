"""Gunicorn entry point: `gunicorn wsgi:app` (the flask CLI loads it too: `flask --app wsgi ...`)."""

from bot.app import create_app
from bot.config import ConfigError
from bot.startup import stop_for_config_error

try:
    app = create_app()
except ConfigError as exc:
    stop_for_config_error(exc)
