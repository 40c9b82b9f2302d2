"""Residents' reports in the LINE chat: 「通報」 (or the rich-menu button) -> category -> photo
(camera / camera roll, or スキップ) -> place (LINE's location picker, or typed) -> a short
description -> a summary with 送信 / やり直す. Every step offers やめる.

The state is the resident's draft row (reports.models.Report, one per resident, dropped after
REPORT_DRAFT_MINUTES). Buttons carry the draft's id and revision, so a button of an earlier step or
of an older report is refused politely. While a draft is open, images and locations go to it (a
location goes to a shelter search the resident asked for after the draft's latest step instead:
handlers.message decides with last_step_at); text goes to it at the steps that expect text (place,
description), and otherwise only when it is a step's word (スキップ, 送信, ...), so questions still
reach the FAQ.

A photo is fetched from LINE's content endpoint before the write transaction (the preparer, with
a read-only session): the fetch is retried by the gateway, then checked and cleaned by
reports.photos. A fetch that still fails lets the report go on without the photo.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bot.geo import valid_coordinates
from bot.i18n import N_
from bot.line import LineError, LineGateway
from bot import japanese_note
from handlers.context import EventContext
from handlers.replies import postback_button, text
from kpi.service import record_usage
from reports import photos, service
from reports.models import PHOTO_ATTACHED, PHOTO_FAILED, Report
from reports.texts import COORDINATES, ROAD_GUIDANCE
from segments.service import get_resident

log = logging.getLogger(__name__)
TEXT_WORDS = ("通報", "通報する", "通報したい", "通報します")
ACTION = "rep"
FETCH_ATTEMPTS = 3
STALE = N_("このボタンは使えなくなっています。通報するときは、もう一度「通報」と送ってください。")
CANCEL_WORDS = ("やめる", "中止", "キャンセル")
SKIP_WORDS = ("スキップ", "写真なし")
NO_DESCRIPTION_WORDS = ("説明なし", "なし")
SEND_WORDS = ("送信", "送信する")
REDO_WORDS = ("やり直す", "やりなおす")


def _word(value: str) -> str:
    return unicodedata.normalize("NFKC", value).strip().strip("。!！「」")


# --- the photo, fetched before the write transaction ---------------------------------------------


@dataclass(frozen=True)
class PreparedPhoto:
    """What the preparer made of an image: the stored photo, or why there is none."""

    stored: photos.StoredPhoto | None
    problem: str | None = None  # "fetch" (LINE did not give it) | "refused" (not a photo we keep)


@functools.lru_cache(maxsize=4)
def _content_gateway(token: str, base_url: str, data_url: str, timeout: float) -> LineGateway:
    """A gateway for content fetches in the preparer (which gets the settings, not the app)."""
    return LineGateway(token, base_url, data_url, timeout=timeout)


def _draft_of_event(event: dict[str, Any], session: Session) -> Report | None:
    user_id = (event.get("source") or {}).get("userId")
    resident = get_resident(session, user_id) if isinstance(user_id, str) and user_id else None
    return service.current_draft(session, resident.id if resident else None)


def prepare_photo(event: dict[str, Any], session: Session, config: Any) -> PreparedPhoto | None:
    """For an image sent while the sender's draft waits for a photo: fetch, check, clean and store
    it (None for any other event)."""
    message = event.get("message") or {}
    if message.get("type") != "image" or (event.get("source") or {}).get("type") != "user":
        return None
    draft = _draft_of_event(event, session)
    if draft is None or draft.step != "photo":
        return None
    message_id = str(message.get("id", ""))
    gateway = _content_gateway(config["LINE_CHANNEL_ACCESS_TOKEN"], config["LINE_API_BASE_URL"],
                               config["LINE_API_DATA_BASE_URL"], float(config["LINE_TIMEOUT_SECONDS"]))
    try:
        data = gateway.get_message_content(message_id, attempts=FETCH_ATTEMPTS)
    except LineError as exc:
        log.warning("report photo could not be fetched: %s", exc)
        return PreparedPhoto(None, "fetch")
    try:
        return PreparedPhoto(photos.store(config, data))
    except photos.PhotoError as exc:
        log.info("report photo refused: %s (%d bytes)", exc, len(data))
        return PreparedPhoto(None, "refused")


# --- buttons and prompts -------------------------------------------------------------------------


def _button(ctx: EventContext, label: str, draft: Report | None, kind: str, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"a": ACTION, "k": kind}
    if draft is not None:
        data.update(r=draft.id, v=draft.revision)
    data.update(extra)
    shown = ctx.t.label(label)
    return postback_button(shown, data, shown)


def _stop(ctx: EventContext, draft: Report) -> dict[str, Any]:
    return _button(ctx, "やめる", draft, "stop")


def _noted(ctx: EventContext, body: str, *city_texts: str | None) -> str:
    """The body with the Japanese-text note on top when a category of the city's own (no catalog
    words) is in it or on its buttons."""
    return japanese_note.with_note(body, ctx.session, str(ctx.config["MUNICIPALITY"]), ctx.language,
                                   japanese_note.untranslated(city_texts, ctx.language))


def _place(ctx: EventContext, draft: Report) -> str:
    """The place as the resident gave it; a point alone is labelled in their language."""
    if not draft.place_text and not draft.address and draft.latitude is not None and draft.longitude is not None:
        return ctx.t.label(COORDINATES, latitude=f"{draft.latitude:.6f}", longitude=f"{draft.longitude:.6f}")
    return service.place_label(draft)


def _ask_category(ctx: EventContext, draft: Report, lead: str = "") -> dict[str, Any]:
    names = service.categories(ctx.config)
    buttons = [_button(ctx, name, draft, "cat", c=i) for i, name in enumerate(names)]
    return text(_noted(ctx, lead + ctx.t("通報の分類を選んでください。\n道路や公園の傷み、ごみの不法投棄などを、写真と場所をつけて市にお知らせできます。"
                                         "途中でやめるときは「やめる」を押してください。"), *names),
                [*buttons, _stop(ctx, draft)])


def _ask_photo(ctx: EventContext, draft: Report, lead: str = "") -> dict[str, Any]:
    guidance = ctx.t(ROAD_GUIDANCE) + "\n\n" if draft.category == service.ROAD else ""
    items = [{"type": "action", "action": {"type": "camera", "label": ctx.t.label("カメラで撮る")}},
             {"type": "action", "action": {"type": "cameraRoll", "label": ctx.t.label("写真を選ぶ")}},
             _button(ctx, "スキップ", draft, "skip"), _stop(ctx, draft)]
    return text(lead + guidance + ctx.t("写真があれば1枚送ってください（「カメラで撮る」か「写真を選ぶ」）。"
                                        "写真がなければ「スキップ」を押してください。\n写真の位置情報などは消してから保存します。"), items)


def _ask_place(ctx: EventContext, draft: Report, lead: str = "") -> dict[str, Any]:
    items = [{"type": "action", "action": {"type": "location", "label": ctx.t.label("位置情報を送る")}}, _stop(ctx, draft)]
    return text(lead + ctx.t("場所を教えてください。「位置情報を送る」で地図から選ぶか、"
                             "住所や目印（例：〇〇公園の北側入口）を文章で送ってください。"), items)


def _ask_description(ctx: EventContext, draft: Report, lead: str = "") -> dict[str, Any]:
    return text(lead + ctx.t("どのような状態か、短く書いて送ってください（{limit}文字まで）。なければ「説明なし」を押してください。",
                             limit=service.MAX_DESCRIPTION), [_button(ctx, "説明なし", draft, "nodesc"), _stop(ctx, draft)])


def _summary(ctx: EventContext, draft: Report, lead: str = "") -> dict[str, Any]:
    photo = {PHOTO_ATTACHED: ctx.t.label("あり"), PHOTO_FAILED: ctx.t.label("なし（受け取れませんでした）")}.get(
        draft.photo_status, ctx.t.label("なし"))
    body = ctx.t("この内容で市に送りますか？\n分類：{category}\n写真：{photo}\n場所：{place}\n説明：{description}",
                 category=ctx.t.label(draft.category or ""), photo=photo, place=_place(ctx, draft),
                 description=draft.description or ctx.t.label("なし"))
    return text(_noted(ctx, lead + body, draft.category), [_button(ctx, "送信", draft, "send"), _button(ctx, "やり直す", draft, "redo"), _stop(ctx, draft)])


PROMPTS = {"category": _ask_category, "photo": _ask_photo, "place": _ask_place, "description": _ask_description,
           "confirm": _summary}


def _prompt(ctx: EventContext, draft: Report, lead: str = "") -> dict[str, Any]:
    return PROMPTS[draft.step](ctx, draft, lead)


# --- the flow ------------------------------------------------------------------------------------


def in_progress(ctx: EventContext, resident_id: int | None) -> bool:
    """True while the resident has a report being filled in."""
    return service.current_draft(ctx.session, resident_id) is not None


def last_step_at(ctx: EventContext, resident_id: int | None) -> dt.datetime | None:
    """When the resident last moved their report in progress on (started it or answered a step); None without one."""
    draft = service.current_draft(ctx.session, resident_id)
    return draft.updated_at if draft is not None else None


def start(ctx: EventContext, resident_id: int | None) -> None:
    """「通報」: a new draft at the category step (an unfinished one is dropped), unless the daily limit is reached."""
    if resident_id is None:
        return
    if service.over_daily_limit(ctx.session, ctx.config, resident_id):
        ctx.reply(text(ctx.t("通報は1日{limit}件までです。明日以降にもう一度お送りください。急ぐときは市の担当窓口に連絡してください。",
                             limit=int(ctx.config["REPORT_DAILY_LIMIT"]))))
        return
    draft = service.start_draft(ctx.session, ctx.config, resident_id)
    record_usage(ctx.session, "report", resident_id, step="started")
    ctx.reply(_ask_category(ctx, draft))


def _cancel(ctx: EventContext, draft: Report) -> None:
    service.cancel(ctx.session, ctx.config, draft)
    record_usage(ctx.session, "report", draft.resident_id, step="cancelled")
    ctx.reply(text(ctx.t("通報をやめました。入力した内容は消しました。")))


def _send(ctx: EventContext, draft: Report) -> None:
    resident_id = draft.resident_id
    if resident_id is not None and service.over_daily_limit(ctx.session, ctx.config, resident_id):
        service.cancel(ctx.session, ctx.config, draft)
        ctx.reply(text(ctx.t("通報は1日{limit}件までです。明日以降にもう一度お送りください。急ぐときは市の担当窓口に連絡してください。",
                             limit=int(ctx.config["REPORT_DAILY_LIMIT"]))))
        return
    number = service.submit(ctx.session, ctx.config, draft)
    if number is None:  # no category or place: back to the step that lacks it
        draft.step = "category" if not draft.category else "place"
        ctx.reply(_prompt(ctx, draft, ctx.t("分類と場所がないと送れません。") + "\n"))
        return
    record_usage(ctx.session, "report", resident_id, step="submitted", category=draft.category)
    ctx.reply(text(ctx.t("通報を受け付けました。通報番号は {number} です。\n"
                         "対応の状況が変わったら、このトークでお知らせします（ブロックしたり「登録情報を削除」をしたりすると届かなくなります）。\n"
                         "命に関わる危険があるときは、110番（警察）・119番（消防・救急）に連絡してください。", number=number)))


def handle_message(ctx: EventContext, resident_id: int | None, kind: str | None, body: str | None = None) -> bool:
    """A message while the resident may have a draft: True when the report flow took it.

    Images and locations are always the draft's (while one is open); text only at the steps that
    expect text or when it is one of the steps' words.
    """
    draft = service.current_draft(ctx.session, resident_id)
    if draft is None:
        return False
    if kind == "image":
        _image(ctx, draft)
        return True
    if kind == "location":
        _location(ctx, draft)
        return True
    if kind != "text" or body is None:
        return False
    word = _word(body)
    if word in CANCEL_WORDS:
        _cancel(ctx, draft)
        return True
    if draft.step == "category" and word in service.categories(ctx.config):
        service.choose_category(ctx.config, draft, word)
        ctx.reply(_ask_photo(ctx, draft))
    elif draft.step == "photo" and word in SKIP_WORDS:
        service.skip_photo(ctx.config, draft)
        ctx.reply(_ask_place(ctx, draft))
    elif draft.step == "place":
        if service.set_place_text(ctx.config, draft, body):
            ctx.reply(_ask_description(ctx, draft))
        else:
            ctx.reply(_ask_place(ctx, draft))
    elif draft.step == "description":
        if word in NO_DESCRIPTION_WORDS:
            service.set_description(ctx.config, draft, None)
            ctx.reply(_summary(ctx, draft))
        elif service.set_description(ctx.config, draft, body):
            ctx.reply(_summary(ctx, draft))
        else:
            ctx.reply(_ask_description(ctx, draft, ctx.t("説明は{limit}文字までにしてください（いま{count}文字です）。",
                                                         limit=service.MAX_DESCRIPTION, count=len(body.strip())) + "\n"))
    elif draft.step == "confirm" and word in SEND_WORDS:
        _send(ctx, draft)
    elif draft.step == "confirm" and word in REDO_WORDS:
        service.restart(ctx.config, draft)
        ctx.reply(_ask_category(ctx, draft))
    else:
        return False  # a question: the FAQ answers it, and the draft waits
    return True


def _image(ctx: EventContext, draft: Report) -> None:
    prepared = ctx.prepared if isinstance(ctx.prepared, PreparedPhoto) else None
    if draft.step != "photo" or prepared is None:
        if prepared is not None and prepared.stored is not None:
            photos.delete(ctx.config, prepared.stored.file_name)  # the step moved on meanwhile
        ctx.reply(_prompt(ctx, draft, ctx.t("通報の入力中です。いまは写真を受け付けていません。") + "\n"))
        return
    service.attach_photo(ctx.config, draft, prepared.stored)
    if prepared.stored is not None:
        lead = ctx.t("写真を受け取りました。")
    elif prepared.problem == "refused":
        lead = ctx.t("この写真は受け付けられませんでした（JPEG か PNG で、{mb}MBまでの写真を受け付けます）。写真なしで続けます。",
                     mb=int(ctx.config["REPORT_PHOTO_MAX_BYTES"]) // 1_000_000)
    else:
        lead = ctx.t("写真をLINEから受け取れませんでした。写真なしで続けます。")
    ctx.reply(_ask_place(ctx, draft, lead + "\n"))


def _location(ctx: EventContext, draft: Report) -> None:
    message = ctx.event.get("message") or {}
    point = valid_coordinates(message.get("latitude"), message.get("longitude"))
    if draft.step != "place" or point is None:
        ctx.reply(_prompt(ctx, draft, ctx.t("通報の入力中です。いまは位置情報を受け付けていません。") + "\n"))
        return
    address = message.get("address")
    service.set_location(ctx.config, draft, point[0], point[1], address if isinstance(address, str) else None)
    ctx.reply(_ask_description(ctx, draft, ctx.t("場所を受け取りました。") + "\n"))


def postback(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """A report button (`{"a":"rep","k":...,"r":draft id,"v":revision}`); `k=start` is the rich-menu button."""
    kind = data.get("k")
    if kind == "start":
        start(ctx, resident_id)
        return
    draft = service.current_draft(ctx.session, resident_id)
    if draft is None or data.get("r") != draft.id or data.get("v") != draft.revision:
        ctx.reply(text(ctx.t(STALE)))
        return
    if kind == "stop":
        _cancel(ctx, draft)
    elif kind == "cat" and draft.step == "category" and isinstance(data.get("c"), int) \
            and 0 <= data["c"] < len(service.categories(ctx.config)):
        service.choose_category(ctx.config, draft, service.categories(ctx.config)[data["c"]])
        ctx.reply(_ask_photo(ctx, draft))
    elif kind == "skip" and draft.step == "photo":
        service.skip_photo(ctx.config, draft)
        ctx.reply(_ask_place(ctx, draft))
    elif kind == "nodesc" and draft.step == "description":
        service.set_description(ctx.config, draft, None)
        ctx.reply(_summary(ctx, draft))
    elif kind == "send" and draft.step == "confirm":
        _send(ctx, draft)
    elif kind == "redo" and draft.step == "confirm":
        service.restart(ctx.config, draft)
        ctx.reply(_ask_category(ctx, draft))
    else:
        ctx.reply(text(ctx.t(STALE)))


POSTBACK_ACTIONS = {ACTION: postback}


def forget(ctx: EventContext, resident_id: int | None) -> None:
    """Unfollow or 「登録情報を削除」: the draft is deleted, sent reports are unlinked from the resident."""
    service.forget_resident(ctx.session, ctx.config, resident_id)
