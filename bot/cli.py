"""`flask db ...`: create or migrate the schema with Alembic."""

from __future__ import annotations

from pathlib import Path

import click
from alembic import command
from alembic.config import Config
from flask import Flask, current_app

from bot.config import ROOT


def alembic_config(database_url: str) -> Config:
    """Alembic configuration pointing at migrations/ and the given database."""
    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return cfg


def upgrade_database(database_url: str, revision: str = "heads") -> None:
    """Apply migrations up to `revision` (creates the SQLite directory if needed)."""
    if database_url.startswith("sqlite:///"):
        Path(database_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(database_url), revision)


@click.group("db")
def db_cli() -> None:
    """Database schema (Alembic migrations)."""


@db_cli.command("upgrade")
@click.argument("revision", default="heads")
def upgrade(revision: str) -> None:
    """Create or migrate the schema to REVISION (default: every head; features migrate on their own branches)."""
    upgrade_database(current_app.config["DATABASE_URL"], revision)
    click.echo("データベースを最新の状態にしました。")


@db_cli.command("downgrade")
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Migrate the schema back to REVISION."""
    command.downgrade(alembic_config(current_app.config["DATABASE_URL"]), revision)


@db_cli.command("current")
def current() -> None:
    """Show the schema revision."""
    command.current(alembic_config(current_app.config["DATABASE_URL"]))


def init_app(app: Flask) -> None:
    """Register the CLI groups."""
    from bot.backup import backup_cli
    from bot.line_check import line_check_command
    from disaster.cli import disaster_command, shelters_cli
    from broadcast.cli import broadcast_cli
    from faq.cli import faq_cli
    from handlers.richmenu import line_cli
    from kpi.cli import kpi_cli
    from segments.cli import segments_cli

    line_cli.add_command(line_check_command)  # asks LINE about the channel; lives in bot beside the gateway
    line_cli.add_command(disaster_command)  # switches the default rich menu; lives in disaster
    app.cli.add_command(db_cli)
    app.cli.add_command(backup_cli)
    for group in (faq_cli, segments_cli, broadcast_cli, kpi_cli, line_cli, shelters_cli):
        app.cli.add_command(group)
