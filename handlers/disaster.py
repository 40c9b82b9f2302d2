"""Disaster mode and shelters in the LINE chat: the disaster menu's four buttons, 避難所を探す ->
the resident's location -> the hazard (asked when staff did not name one) -> the 3 nearest open
shelters that suit it, as a flex carousel (its alt text lists them for clients that show text).

The search is one short step: 「避難所を探す」 is recorded as a usage event, and for the next
SEARCH_MINUTES a location the resident sends is read as the place to search from. The coordinates
are never logged nor stored by us: when the hazard still has to be asked, they ride in the
buttons' postback data (LINE sends them back with the tap), rounded to about a metre.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import quote

from sqlalchemy import select

from bot.db import utcnow
from bot.geo import valid_coordinates
from bot.i18n import N_
from disaster import mode, shelters
from disaster.hazards import ASKED_ORDER, UNKNOWN, is_hazard, label
from disaster.models import KIND_LABELS
from faq.directory import current_directory
from faq.service import main_contact
from bot import japanese_note
from handlers.context import EventContext
from handlers.replies import postback_button, text
from kpi.models import UsageEvent
from kpi.service import record_usage

SEARCH_MINUTES = 30  # a location within this long after 「避難所を探す」 is a shelter search
SEARCH_EVENT = "shelter_search"  # usage event: detail step = asked | answered (never coordinates)
TEXT_WORDS = ("避難所", "避難所を探す", "避難場所")
WEB171_URL = "https://www.web171.jp/"
MAX_ALT_TEXT = 400
STALE = N_("このボタンは使えなくなっています。お手数ですが、もう一度「避難所を探す」から始めてください。")


def _municipality(ctx: EventContext) -> str:
    return str(ctx.config["MUNICIPALITY"])


def info_url(ctx: EventContext) -> str:
    """Where the latest information is: DISASTER_INFO_URL, else the city's homepage."""
    configured = (ctx.config.get("DISASTER_INFO_URL") or "").strip()
    return configured or current_directory(ctx.session, _municipality(ctx)).homepage


def _contact(ctx: EventContext) -> str:
    return main_contact(ctx.session, _municipality(ctx))


def location_button(ctx: EventContext) -> dict[str, Any]:
    """LINE's quick-reply item that opens the location picker."""
    return {"type": "action", "action": {"type": "location", "label": ctx.t.label("位置情報を送る")}}


# --- the search step ---------------------------------------------------------------------------------


def start_search(ctx: EventContext, resident_id: int | None) -> None:
    """「避難所を探す」: ask for the resident's location (a quick reply with the location action)."""
    if not shelters.has_shelters(ctx.session, _municipality(ctx)):
        ctx.reply(text(ctx.t("避難所の情報がまだ登録されていません。市の発表をご確認いただくか、次の連絡先にお問い合わせください。\n{contact}",
                             contact=_contact(ctx))))
        return
    record_usage(ctx.session, SEARCH_EVENT, resident_id, step="asked")
    ctx.reply(text(ctx.t("近くの開設中の避難所をお探しします。下の「位置情報を送る」を押して、今いる場所を送ってください。\n"
                         "（位置情報は避難所を探すためだけに使い、保存しません）"), [location_button(ctx)]))


def search_asked_at(ctx: EventContext, resident_id: int | None) -> dt.datetime | None:
    """When the resident's latest 「避難所を探す」 was tapped, while it still waits for a location
    (within SEARCH_MINUTES, not yet answered); None otherwise."""
    if resident_id is None:
        return None
    row = ctx.session.execute(
        select(UsageEvent.occurred_at, UsageEvent.detail)
        .where(UsageEvent.resident_id == resident_id, UsageEvent.kind == SEARCH_EVENT)
        .order_by(UsageEvent.id.desc()).limit(1)
    ).first()
    if row is None or (row.detail or {}).get("step") != "asked":
        return None
    return row.occurred_at if row.occurred_at >= utcnow() - dt.timedelta(minutes=SEARCH_MINUTES) else None


def in_search(ctx: EventContext, resident_id: int | None) -> bool:
    """True while the resident's latest 「避難所を探す」 waits for a location (within SEARCH_MINUTES)."""
    return search_asked_at(ctx, resident_id) is not None


def claims_location(ctx: EventContext, resident_id: int | None) -> bool:
    """Whether disaster answers this location when no other flow claims it: while searching, or
    whenever the city has shelters (a resident sending a location most likely looks for one)."""
    return in_search(ctx, resident_id) or shelters.has_shelters(ctx.session, _municipality(ctx))


def handle_location(ctx: EventContext, resident_id: int | None) -> None:
    """A location message: the nearest open shelters, after asking the hazard when it is not known."""
    message = ctx.event.get("message") or {}
    point = valid_coordinates(message.get("latitude"), message.get("longitude"))
    if point is None:
        ctx.reply(text(ctx.t(STALE)))
        return
    hazard = mode.current_hazard(ctx.session, _municipality(ctx))
    if hazard is None:
        ctx.reply(_hazard_question(ctx, point))
        return
    _answer(ctx, resident_id, point, hazard)


def _hazard_question(ctx: EventContext, point: tuple[float, float]) -> dict[str, Any]:
    lat, lon = round(point[0], 5), round(point[1], 5)
    buttons = [postback_button(ctx.t.label(label(code)), {"a": "shl", "h": code, "la": lat, "lo": lon}, ctx.t.label(label(code)))
               for code in (*ASKED_ORDER, UNKNOWN)]
    return text(ctx.t("どの災害から避難しますか？ 避難所は災害の種類ごとに指定されています。下のボタンから選んでください。"), buttons)


def hazard_chosen(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """A hazard button: answer from the location the button carries."""
    point = valid_coordinates(data.get("la"), data.get("lo"))
    hazard = data.get("h")
    if point is None or not is_hazard(hazard):
        ctx.reply(text(ctx.t(STALE)))
        return
    _answer(ctx, resident_id, point, str(hazard))


def _map_url(latitude: float, longitude: float) -> str:
    return f"https://www.google.com/maps/search/?api=1&query={quote(f'{latitude:.6f},{longitude:.6f}')}"


def _answer(ctx: EventContext, resident_id: int | None, point: tuple[float, float], hazard: str) -> None:
    record_usage(ctx.session, SEARCH_EVENT, resident_id, step="answered", hazard=hazard)
    result = shelters.nearest_open(ctx.session, _municipality(ctx), point[0], point[1], hazard)
    again = [location_button(ctx)]
    if result.open_count == 0:
        ctx.reply(text(ctx.t("現在、開設している避難所はありません。危険を感じたら、近くの安全な建物の高い階など、"
                             "命を守る行動をとってください。\n市の連絡先：{contact}\n最新の情報：{url}",
                             contact=_contact(ctx), url=info_url(ctx))))
        return
    if not result.found:
        ctx.reply(text(ctx.t("「{hazard}」に対応する開設中の避難所は見つかりませんでした。"
                             "災害の種類を「わからない」にすると、開設中のすべての避難所から探します。\n市の連絡先：{contact}",
                             hazard=ctx.t.label(label(hazard)), contact=_contact(ctx)),
                       [postback_button(ctx.t.label("わからない"), {"a": "shl", "h": UNKNOWN, "la": round(point[0], 5),
                                                                   "lo": round(point[1], 5)}, ctx.t.label("わからない"))]))
        return
    # The shelters' names and addresses are the city's Japanese data: the note goes with the text.
    body = ctx.t("開設中の避難所のうち、近い順に{count}か所です（距離は直線距離です）。"
                 "避難する道の安全を確かめて、早めに避難してください。\n最新の情報：{url}",
                 count=len(result.found), url=info_url(ctx))
    ctx.reply(shelter_carousel(ctx, result.found, hazard),
              text(japanese_note.with_note(body, ctx.session, _municipality(ctx), ctx.language), again))


def shelter_lines(ctx: EventContext, found: tuple[shelters.Nearby, ...]) -> str:
    """The shelters as text (the carousel's alt text)."""
    return "\n".join(f"{n}. {item.shelter.name}（{item.distance_km:.1f}km）{item.shelter.address}"
                     for n, item in enumerate(found, 1))


def shelter_carousel(ctx: EventContext, found: tuple[shelters.Nearby, ...], hazard: str) -> dict[str, Any]:
    """A flex carousel: one bubble per shelter with name, distance, address and a map button."""
    bubbles = []
    separator = "、" if ctx.language in ("ja", "ja-easy", "zh") else ", "  # the translated hazards, listed
    for item in found:
        s = item.shelter
        suits = (separator.join(ctx.t.label(label(h)) for h in s.hazards) if s.hazards else ctx.t.label("指定なし"))
        bubbles.append({
            "type": "bubble",
            "body": {"type": "box", "layout": "vertical", "spacing": "sm", "contents": [
                {"type": "text", "text": s.name[:200], "weight": "bold", "size": "lg", "wrap": True},
                {"type": "text", "text": ctx.t.label("約{km}km・{kind}", km=f"{item.distance_km:.1f}", kind=ctx.t.label(KIND_LABELS[s.kind])),
                 "size": "sm", "color": "#B03A2E", "wrap": True},
                {"type": "text", "text": s.address[:300], "size": "sm", "wrap": True},
                {"type": "text", "text": ctx.t.label("対応する災害：{hazards}", hazards=suits), "size": "xs", "color": "#666666",
                 "wrap": True},
            ]},
            "footer": {"type": "box", "layout": "vertical", "contents": [
                {"type": "button", "style": "primary", "color": "#B03A2E",
                 "action": {"type": "uri", "label": ctx.t.label("地図で見る"), "uri": _map_url(s.latitude, s.longitude)}},
            ]},
        })
    alt = ctx.t.label("近くの開設中の避難所") + "\n" + shelter_lines(ctx, found)
    return {"type": "flex", "altText": alt if len(alt) <= MAX_ALT_TEXT else alt[: MAX_ALT_TEXT - 1] + "…",
            "contents": {"type": "carousel", "contents": bubbles}}


# --- the disaster menu's other buttons -------------------------------------------------------------


def _info(ctx: EventContext) -> None:
    on = mode.is_on(ctx.session, _municipality(ctx))
    lead = ctx.t("市は現在、災害への対応を行っています。") if on else ""
    ctx.reply(text(lead + ctx.t("最新の災害情報は、市の発表をご確認ください。\n{url}\n"
                                "テレビ・ラジオの情報や、避難の呼びかけにも注意してください。", url=info_url(ctx))))


def _safety(ctx: EventContext) -> None:
    ctx.reply(text(ctx.t("家族や知人の安否確認には、大きな災害のときに通信事業者が提供する次のサービスが使えます。\n"
                         "・災害用伝言ダイヤル：「171」に電話し、案内にしたがって伝言を録音・再生します。\n"
                         "・災害用伝言板（web171）：{url}\n"
                         "・携帯電話各社の災害用伝言板\n"
                         "電話がつながりにくいときは、LINEやメールなど文字での連絡も役立ちます。", url=WEB171_URL)))


def _city_contact(ctx: EventContext) -> None:
    ctx.reply(text(ctx.t("市の連絡先：{contact}\n最新の情報：{url}\n"
                         "命に関わる緊急のときは、119番（消防・救急）・110番（警察）に通報してください。",
                         contact=_contact(ctx), url=info_url(ctx))))


def menu_postback(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """A button of the disaster menu (`{"a":"dis","k":...}`)."""
    actions = {"shelter": lambda: start_search(ctx, resident_id), "info": lambda: _info(ctx),
               "safety": lambda: _safety(ctx), "contact": lambda: _city_contact(ctx)}
    action = actions.get(data.get("k")) if isinstance(data.get("k"), str) else None
    if action is None:
        ctx.reply(text(ctx.t(STALE)))
        return
    record_usage(ctx.session, "disaster_menu", resident_id, button=data["k"])
    action()


POSTBACK_ACTIONS = {"dis": menu_postback, "shl": hazard_chosen}


# --- the FAQ while disaster mode is on ---------------------------------------------------------------


def with_info_line(ctx: EventContext, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """While disaster mode is on, the answer's first text ends with a line to the latest information."""
    if not messages or not mode.is_on(ctx.session, _municipality(ctx)):
        return messages
    first = messages[0]
    if first.get("type") == "text":
        line = ctx.t("【災害時】最新の情報：{url}", url=info_url(ctx))
        first["text"] = text(f"{first['text']}\n\n{line}")["text"]
    return messages
