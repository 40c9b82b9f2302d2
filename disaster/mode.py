"""Disaster mode: one switch that gives every resident the disaster rich menu (and back), optionally
with an emergency notice to every follower, and makes the FAQ prefer disaster entries.

The state is a row per city (disaster_state), written before LINE is called, so a restart keeps
it and a switch that LINE refused half-way is finished later: `is_menu_applied` stays False until
LINE has the right default menu, and the maintenance job (`reconcile_menus`, on the dispatcher's
clock) tries again. Switching on twice is one switch (one notice at most). LINE calls are retried
as the gateway's errors say: 429, 5xx and timeouts again with backoff; other refusals not.

The disaster menu is created once on LINE and reused; the default menu before the switch is given
back when it ends. The emergency notice is a broadcast: `bot.app` wires the broadcast package's
sender in (disaster may not import broadcast), so it goes out once, in chunks with retry keys.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.auth import audit
from bot.db import Database, get_db, utcnow
from bot.line import LineError, LineGateway, LineRateLimited, LineRejected, LineServerError, LineTimeout
from disaster.hazards import HAZARDS, label
from disaster.models import DisasterState

log = logging.getLogger(__name__)
T = TypeVar("T")

HERE = Path(__file__).resolve().parent
MENU_DEFINITION_PATH = HERE / "richmenu.json"
MENU_IMAGE_PATH = HERE / "richmenu.png"
FAQ_CATEGORY = "disaster"  # the knowledge base's 防災・防犯 category, preferred while the mode is on
# (sender of the emergency notice: session, text, staff user id or None -> broadcast id)
EmergencySender = Callable[[Session, str, "int | None"], int]
EXTENSION_KEY = "disaster_emergency_sender"
RETRYABLE = (LineRateLimited, LineServerError, LineTimeout)


class DisasterModeError(RuntimeError):
    """The switch could not be done (Japanese message); the state says what is left to do."""


@dataclass(frozen=True)
class SwitchResult:
    """What a switch did: whether the state changed, the notice sent, whether LINE has the menu."""

    is_on: bool
    changed: bool
    broadcast_id: int | None
    menu_applied: bool


@dataclass(frozen=True)
class Retry:
    """How LINE calls are retried: attempts and exponential backoff (seconds)."""

    attempts: int = 5
    base: float = 1.0
    ceiling: float = 30.0


def register_emergency_sender(app: Flask, sender: EmergencySender) -> None:
    """Wire the function that schedules an emergency notice to every follower (bot.app)."""
    app.extensions[EXTENSION_KEY] = sender


def emergency_sender(app: Flask) -> EmergencySender | None:
    """The wired emergency-notice sender, if any."""
    return app.extensions.get(EXTENSION_KEY)  # type: ignore[no-any-return]


def load_menu_definition() -> dict[str, Any]:
    """The disaster rich menu as LINE's rich-menu object (the drawing hints removed)."""
    definition = json.loads(MENU_DEFINITION_PATH.read_text(encoding="utf-8"))
    definition["areas"] = [{k: v for k, v in area.items() if k != "style"} for area in definition["areas"]]
    return definition  # type: ignore[no-any-return]


# --- state ------------------------------------------------------------------------------------------


def get_state(session: Session, municipality: str) -> DisasterState | None:
    """The city's disaster-mode row (None: never switched)."""
    return session.get(DisasterState, municipality)


def is_on(session: Session, municipality: str) -> bool:
    """True while the city's disaster mode is on."""
    return bool(session.scalar(select(DisasterState.is_on).where(DisasterState.municipality == municipality)))


def current_hazard(session: Session, municipality: str) -> str | None:
    """The hazard staff named when switching on (None: residents are asked)."""
    state = get_state(session, municipality)
    return state.hazard if state is not None and state.is_on else None


def preferred_faq_category(session: Session, config: dict[str, Any]) -> str | None:
    """The FAQ category to prefer now: 防災 while the mode is on (faq.service's hook, wired in bot.app)."""
    return FAQ_CATEGORY if is_on(session, str(config["MUNICIPALITY"])) else None


def _row(session: Session, municipality: str) -> DisasterState:
    state = session.get(DisasterState, municipality, with_for_update=True)
    if state is None:
        state = DisasterState(municipality=municipality, is_on=False, is_menu_applied=True, switched_by="")
        session.add(state)
        session.flush()
    return state


# --- switching ----------------------------------------------------------------------------------------


def switch(db: Database, gateway: LineGateway, municipality: str, on: bool, *, actor: Any = None,
           username: str = "", message: str | None = None, hazard: str | None = None,
           sender: EmergencySender | None = None, retry: Retry = Retry()) -> SwitchResult:
    """Switch the city's disaster mode on or off, audited; then give LINE the matching default menu.

    Already in that state: nothing changes (no second notice); a menu LINE has not taken yet is
    applied again. DisasterModeError when LINE failed after the retries (the state is kept and the
    maintenance job finishes it) or the notice could not be made (then nothing changes).
    """
    if hazard is not None and hazard not in HAZARDS:
        raise DisasterModeError(f"災害の種類「{hazard}」が分かりません（{', '.join(HAZARDS)}）。")
    message = (message or "").strip() or None
    if message is not None and not on:
        raise DisasterModeError("緊急のお知らせは災害モードを始めるときだけ送れます。")
    with db.session() as session:
        state = _row(session, municipality)
        changed = state.is_on != on
        broadcast_id: int | None = None
        if changed:
            if message is not None:
                if sender is None:
                    raise DisasterModeError("緊急のお知らせを送る仕組みがありません。")
                try:
                    broadcast_id = sender(session, message, getattr(actor, "id", None))
                except ValueError as exc:  # the notice service's NoticeError: nothing is switched
                    raise DisasterModeError(f"緊急のお知らせを作れません: {exc}") from None
            state.is_on = on
            state.hazard = hazard if on else None
            state.is_menu_applied = False
            state.switched_at = utcnow()
            state.switched_by = (getattr(actor, "username", None) or username)[:64]
            state.emergency_broadcast_id = broadcast_id if on else None
            detail: dict[str, Any] = {}
            if on:
                detail = {"hazard": label(hazard) if hazard else "なし", "notice": broadcast_id}
            audit(session, "disaster_on" if on else "disaster_off", municipality, actor=actor, **detail)
        needs_menu = not state.is_menu_applied
    applied = True
    if needs_menu:
        try:
            apply_menu(db, gateway, municipality, retry)
        except LineError as exc:
            raise DisasterModeError(
                f"{'災害モードにしました' if on else '災害モードを終えました'}が、LINEのメニューを切り替えられませんでした（{exc}）。"
                "しばらくして同じ操作をもう一度行ってください（自動でも再試行します）。") from None
    return SwitchResult(on, changed, broadcast_id, applied)


def _retried(what: str, call: Callable[[], T], retry: Retry) -> T:
    """Run one LINE call; 429, 5xx and timeouts again with exponential backoff, others at once raised."""
    for attempt in range(1, retry.attempts + 1):
        try:
            return call()
        except RETRYABLE as exc:
            if attempt == retry.attempts:
                raise
            wait = min(retry.ceiling, retry.base * 2 ** (attempt - 1))
            log.warning("disaster menu: LINE %s failed (status=%s), retry %d in %.1fs", what, exc.status, attempt, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")


def _ensure_disaster_menu(gateway: LineGateway, known_id: str | None, retry: Retry) -> str:
    """The disaster menu's id on LINE: the one made before if LINE still has it, else a new one."""
    definition = load_menu_definition()
    menus = _retried("list_rich_menus", gateway.list_rich_menus, retry)
    ids = {str(m.get("richMenuId")) for m in menus}
    if known_id and known_id in ids:
        return known_id
    for menu in menus:
        if menu.get("name") == definition["name"]:
            return str(menu["richMenuId"])
    image = MENU_IMAGE_PATH.read_bytes()
    rich_menu_id = _retried("create_rich_menu", lambda: gateway.create_rich_menu(definition), retry)
    try:
        _retried("set_rich_menu_image", lambda: gateway.set_rich_menu_image(rich_menu_id, image, "image/png"), retry)
    except LineError:
        try:
            gateway.delete_rich_menu(rich_menu_id)
        except LineError:
            pass  # the upload's error is the one to report
        raise
    return rich_menu_id


def apply_menu(db: Database, gateway: LineGateway, municipality: str, retry: Retry = Retry()) -> None:
    """Give LINE the default menu of the city's current state and mark it applied.

    On: the disaster menu (made once), remembering the default it replaces. Off: that default back
    (none before: no default). LineError after the retries; the state then stays not applied.
    """
    with db.read_session() as session:
        state = get_state(session, municipality)
        if state is None:
            return
        on, known_id, normal_id = state.is_on, state.disaster_menu_id, state.normal_menu_id
    current = _retried("get_default_rich_menu", gateway.get_default_rich_menu, retry)
    if on:
        disaster_id = _ensure_disaster_menu(gateway, known_id, retry)
        if current != disaster_id:
            normal_id = current
            _retried("set_default_rich_menu", lambda: gateway.set_default_rich_menu(disaster_id), retry)
        known_id = disaster_id
    elif current is not None and current == known_id:
        if normal_id:
            try:
                _retried("set_default_rich_menu", lambda: gateway.set_default_rich_menu(str(normal_id)), retry)
            except LineRejected as exc:
                if exc.status != 404:
                    raise
                # The normal menu was deleted meanwhile: leave no disaster menu up; staff set it up again.
                log.warning("disaster menu: the normal rich menu is gone; default menu cancelled")
                _retried("cancel_default_rich_menu", gateway.cancel_default_rich_menu, retry)
        else:
            _retried("cancel_default_rich_menu", gateway.cancel_default_rich_menu, retry)
    with db.session() as session:
        state = _row(session, municipality)
        if state.is_on == on:  # not switched again meanwhile
            state.is_menu_applied = True
            state.disaster_menu_id = known_id
            state.normal_menu_id = normal_id if on else state.normal_menu_id


def reconcile_menus(app: Flask) -> None:
    """Maintenance job: finish switches whose menu LINE did not take (logged, retried next hour)."""
    db = get_db(app)
    with db.read_session() as session:
        pending = list(session.scalars(select(DisasterState.municipality).where(DisasterState.is_menu_applied.is_(False))))
    for municipality in pending:
        try:
            apply_menu(db, app.extensions["line"], municipality)
            log.info("disaster menu applied by the maintenance job: municipality=%s", municipality)
        except LineError as exc:
            log.warning("disaster menu still not applied: municipality=%s error=%s", municipality, exc)


def status_text(state: DisasterState | None, jst: Callable[[dt.datetime | None], str]) -> str:
    """「災害モード: 実施中（2026-12-07 09:00 から、洪水）」 for staff."""
    if state is None or not state.is_on:
        return "災害モード: 通常（実施していません）"
    hazard = f"、{label(state.hazard)}" if state.hazard else ""
    pending = "（LINEのメニュー切り替えを再試行中）" if not state.is_menu_applied else ""
    return f"災害モード: 実施中（{jst(state.switched_at)} から{hazard}）{pending}"
