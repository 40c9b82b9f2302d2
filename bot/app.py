"""The application factory: builds the Flask app and wires every package into it."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from bot import db as database
from bot.config import load_config
from bot.line import LineGateway


def configure_logging(level: str, log_format: str = "text") -> None:
    """Plain structured-ish logs to stderr, or JSON lines (never residents' messages: see STYLE.md)."""
    from bot.logformat import TEXT_FORMAT, formatter_for

    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format=TEXT_FORMAT)
        root.handlers[0].name = "linebot"
    for handler in root.handlers:
        if handler.name == "linebot":
            handler.setFormatter(formatter_for(log_format))
    root.setLevel(level.upper())
    # Alembic and the SDK's HTTP pool are chatty at INFO; their warnings still show.
    for noisy in ("alembic", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _log_unknown_garbage_item(session: Any, municipality: str, question: str, resident_id: int | None) -> None:
    """An item the garbage dictionary lacks joins the FAQ's unanswered questions (the review queue)."""
    from faq.matcher import Decision
    from faq.service import log_question

    log_question(session, municipality, question, Decision("unknown", None, 0.0, ()), resident_id)


def _main_contact(session: Any, municipality: str) -> str:
    """The city's main contact line for the note over Japanese-only text (bot.japanese_note)."""
    from faq.directory import current_directory

    return current_directory(session, municipality).main_text()


def create_app(**overrides: Any) -> Flask:
    """Build the app from the environment; keyword overrides win (tests)."""
    config = load_config(**overrides)
    app = Flask(__name__, instance_relative_config=False)
    app.config.update(config)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="linebot_staff",
        PERMANENT_SESSION_LIFETIME=8 * 3600,
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    configure_logging(config["LOG_LEVEL"], config["LOG_FORMAT"])
    if config["TRUSTED_PROXIES"]:
        # Behind nginx the client address is in X-Forwarded-For; without this every staff
        # member would share the proxy's address for login rate limiting.
        hops = int(config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]

    database.init_app(app)
    app.extensions["line"] = LineGateway(
        config["LINE_CHANNEL_ACCESS_TOKEN"],
        config["LINE_API_BASE_URL"],
        config["LINE_API_DATA_BASE_URL"],
        timeout=float(config["LINE_TIMEOUT_SECONDS"]),
    )

    # Imported here, not at module top, so `bot` depends on nothing of ours at import time.
    from bot import admin, cli, metrics
    from handlers import webhook
    from handlers.dispatch import handler_for, prepare_batch, preparer_for
    from handlers.inbox import EventProcessor, InboxWorkers, backlog_gauges

    processor = EventProcessor(app, app.extensions["line"], handler_for, preparer_for, prepare_batch)
    app.extensions["inbox"] = InboxWorkers(app, processor)
    app.register_blueprint(webhook.bp)
    metrics.init_app(app)
    metrics.register_gauges(app, backlog_gauges)
    admin.init_app(app)
    cli.init_app(app)
    # Each feature package brings its admin pages (blueprint + navigation entry).
    from broadcast import admin as broadcast_admin
    from faq import admin as faq_admin
    from faq import directory_admin
    from kpi import admin as kpi_admin
    from segments import admin as segments_admin

    for package_admin in (broadcast_admin, faq_admin, directory_admin, kpi_admin, segments_admin):
        package_admin.init_app(app)

    # Periodic jobs run by the dispatcher's clock (`flask broadcast run-scheduler`, hourly).
    from faq.retention import run_question_log_retention
    from handlers.inbox import purge_processed_events

    app.extensions["maintenance_jobs"] = [run_question_log_retention, purge_processed_events]

    # LINE's per-notice statistics and friend counts, fetched daily; shown in the KPI reports.
    from broadcast import insights
    from kpi import hooks as kpi_hooks

    app.extensions["maintenance_jobs"].append(insights.collect_statistics)

    # Surveys in the chat: their admin pages, the retention job, free text masked as the question log is.
    from faq.masking import mask_personal_data
    from surveys import admin as surveys_admin
    from surveys import service as surveys_service

    surveys_admin.init_app(app)
    surveys_service.set_text_masker(mask_personal_data)
    app.extensions["maintenance_jobs"].append(surveys_service.run_retention)
    kpi_hooks.register_section(
        app, insights.NOTICE_SECTION, insights.NOTICE_TITLE, insights.NOTICE_COLUMNS, insights.notice_rows,
        note=insights.NOTICE_NOTE, chart_column=1,
    )
    kpi_hooks.register_section(
        app, insights.FOLLOWER_SECTION, insights.FOLLOWER_TITLE, insights.FOLLOWER_COLUMNS, insights.follower_rows,
        note=insights.FOLLOWER_NOTE, ranked=False,
    )

    # Disaster mode: its admin pages, a switch LINE did not take finished on the clock, the
    # emergency notice sent by broadcast, the FAQ's preference for disaster entries.
    from broadcast.service import create_emergency_notice
    from disaster import admin as disaster_admin
    from disaster import mode as disaster_mode
    from faq.service import set_category_preference

    disaster_admin.init_app(app)
    app.extensions["maintenance_jobs"].append(disaster_mode.reconcile_menus)
    disaster_mode.register_emergency_sender(app, create_emergency_notice)
    set_category_preference(disaster_mode.preferred_faq_category)

    # The KPI reports get entry titles and the unanswered clusters from faq (kpi may not import faq).
    from faq import kpi_feed
    from kpi import hooks as kpi_hooks

    kpi_hooks.register_topic_catalog(app, kpi_feed.topic_catalog)
    kpi_hooks.register_section(
        app, "unanswered_clusters", "回答できなかった質問のまとまり（上位）", ("代表的な質問", "件数", "最後に聞かれた日"),
        kpi_feed.unanswered_clusters, chart_column=1,
    )
    # Residents and questions by language (issue 17): plain rows from segments and faq.
    from segments.service import residents_by_language

    kpi_hooks.register_section(
        app, "residents_by_language", "言語別の友だち（現時点）", ("言語", "人数"), residents_by_language,
        note="いま友だちの人が選んでいる言語です（選んでいない人は日本語）。月を選んでも現時点の人数です。",
    )
    kpi_hooks.register_section(
        app, "questions_by_language", "言語別の質問", ("言語", "質問数", "回答", "もしかして", "回答できなかった"),
        kpi_feed.questions_by_language, chart_column=1,
        note="質問の言語は自動判定です（判定しなかった質問は日本語に数えます）。",
    )

    # The homepage channel: the chat widget, its API and the public FAQ pages; its per-channel
    # figures in the KPI reports.
    from webchat import kpi_feed as webchat_kpi
    from webchat import views as webchat

    webchat.init_app(app)
    kpi_hooks.register_section(
        app, webchat_kpi.SECTION_KEY, webchat_kpi.SECTION_TITLE, webchat_kpi.COLUMNS, webchat_kpi.channel_figures,
        note=webchat_kpi.NOTE, ranked=False,
    )

    # Residents' reports (「通報」): the staff inbox, the status pushes left to send and the
    # retention purge on the clock, the figures by category and status in the KPI reports.
    from reports import admin as reports_admin
    from reports import service as reports_service

    reports_admin.init_app(app)
    app.extensions["maintenance_jobs"] += [reports_service.send_pending_notices, reports_service.purge_reports]
    kpi_hooks.register_section(
        app, "reports_by_category", "住民からの通報（分類・状況別）",
        ("分類", "受付件数", "うち受付", "うち対応中", "うち完了", "うち対象外", "状況のお知らせ"),
        reports_service.kpi_by_category, chart_column=1,
        note="その月に受け付けた通報の件数と、いまの状況です。「状況のお知らせ」はその月に住民へ送った状況の変更の数です。",
    )

    # Garbage: the dictionary's admin pages and CLI, the lookup with the FAQ's normaliser, unknown
    # items to the FAQ's review queue, the reminders on the dispatcher's clock (every minute).
    from bot import japanese_note
    from faq import normalize as faq_normalize
    from garbage import admin as garbage_admin
    from garbage import reminders as garbage_reminders
    from garbage import service as garbage_service
    from garbage import text as garbage_text
    from garbage.cli import garbage_cli

    garbage_admin.init_app(app)
    app.cli.add_command(garbage_cli)
    garbage_text.set_text_functions(faq_normalize.normalize, faq_normalize.reading)
    garbage_service.set_unknown_item_hook(_log_unknown_garbage_item)
    japanese_note.set_contact_source(_main_contact)
    app.extensions.setdefault("clock_jobs", []).append(garbage_reminders.send_reminders)
    app.extensions["maintenance_jobs"].append(garbage_reminders.purge)

    if app.config["SIMULATOR_ENABLED"]:
        from bot.sandbox import simulator
        from disaster.shelters import centre as shelters_centre

        app.register_blueprint(simulator.bp)

        def _shelters_centre(app_: Flask) -> tuple[float, float] | None:
            with database.get_db(app_).read_session() as session:
                return shelters_centre(session, app_.config["MUNICIPALITY"])

        # The location panel's preset points are made around the shelters the city imported.
        simulator.set_centre_hook(app, _shelters_centre)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """Liveness probe."""
        return {"status": "ok"}

    # Last: the landing page, and error pages that chain with the handlers registered above.
    from bot import site
    from faq.service import city_name

    site.init_app(app, city_name=city_name)
    return app
