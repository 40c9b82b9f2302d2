"""Gunicorn entry point: `gunicorn wsgi:app` (the flask CLI loads it too: `flask --app wsgi ...`)."""

from flask.cli import load_dotenv

from bot.app import create_app
from bot.config import ConfigError
from bot.startup import stop_for_config_error

# The same settings as the flask CLI (bin/flask): a .env in this directory or above, never overriding
# what the environment (systemd's EnvironmentFile) already sets.
load_dotenv()

try:
    app = create_app()
except ConfigError as exc:
    stop_for_config_error(exc)
