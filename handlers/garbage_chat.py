"""Garbage in the LINE chat: 「電池は何ごみ？」 -> the item's category, notes and next collection day
in the resident's area; 「次のごみの日」; the area (asked once with buttons); the evening-before
reminder on and off (「ごみの通知」).

`handle_text` runs before the FAQ matcher and answers only what it recognises (garbage.lookup's
rule: an item name with a garbage word, or a short text that is an item name); everything else,
and everything when the city imported no garbage data, goes on to the FAQ.
"""

from __future__ import annotations

import unicodedata
import zlib
from typing import Any

from bot.i18n import command_msgid
from garbage import service, texts
from garbage.lookup import Match
from bot import japanese_note
from handlers.context import EventContext
from handlers.replies import message_button, postback_button, text
from kpi.service import record_usage

AREAS_PER_PAGE = 12  # 13 quick replies at most: 12 areas + 「次へ」
NEXT_DAYS_WORDS = ("次のごみの日", "次のゴミの日", "ごみの日", "ゴミの日", "次の収集日", "収集日", "ごみの収集日", "ゴミの収集日",
                   "ごみの収集日を知りたい", "次のごみ", "ごみカレンダー", "収集カレンダー", "ごみの日はいつ", "今週のごみ")
REMINDER_WORDS = ("ごみの通知", "ゴミの通知", "ごみ通知", "ごみの日の通知", "ゴミの日の通知", "ごみリマインダー")
AREA_WORDS = ("ごみの地区", "ゴミの地区", "ごみの地区を変更", "ごみの地域")


def _command(message: str) -> str:
    return unicodedata.normalize("NFKC", message).strip().strip("。!！?？「」 ")


def _municipality(ctx: EventContext) -> str:
    return str(ctx.config["MUNICIPALITY"])


def _noted(ctx: EventContext, body: str, *city_texts: str | None) -> str:
    """The body with the Japanese-text note on top when it carries the city's Japanese data
    (items, categories, kinds) that the resident's language has no words for."""
    return japanese_note.with_note(body, ctx.session, _municipality(ctx), ctx.language,
                                   japanese_note.untranslated(city_texts, ctx.language))


def _date(ctx: EventContext, day: Any) -> str:
    return texts.date_label(day, ctx.language)


def _area_check(name: str) -> str:
    return format(zlib.crc32(name.encode()) & 0xFFFF, "x")


def area_buttons(ctx: EventContext, then: dict[str, Any], page: int = 0) -> list[dict[str, Any]]:
    """The calendar's areas as buttons (12 a page, then 「次へ」); `then` rides along (an item to
    answer, or 「次のごみの日」 to list) for after the choice."""
    names = service.area_names(ctx.session, _municipality(ctx))
    start = page * AREAS_PER_PAGE
    buttons = [postback_button(name, {"a": "garea", "x": start + n, "c": _area_check(name), **then}, name)
               for n, name in enumerate(names[start:start + AREAS_PER_PAGE])]
    if start + AREAS_PER_PAGE < len(names):
        buttons.append(postback_button(ctx.t.label(texts.MORE), {"a": "gareas", "p": page + 1, **then}, ctx.t.label(texts.MORE)))
    return buttons


def _ask_area(ctx: EventContext, lead: str, then: dict[str, Any], *city_texts: str | None) -> dict[str, Any]:
    body = f"{lead}\n\n{ctx.t(texts.ASK_AREA)}" if lead else ctx.t(texts.ASK_AREA)
    return text(_noted(ctx, body, *city_texts), area_buttons(ctx, then))


def _area(ctx: EventContext, resident_id: int | None) -> service.AreaCalendar | None:
    settings = service.resident_settings(ctx.session, resident_id)
    if settings is None or settings.municipality != _municipality(ctx):
        return None
    return service.area_calendar(ctx.session, _municipality(ctx), settings.area)


def _reminder_on(ctx: EventContext, resident_id: int | None) -> bool:
    settings = service.resident_settings(ctx.session, resident_id)
    return bool(settings and settings.is_reminder_enabled)


def _follow_up_buttons(ctx: EventContext, resident_id: int | None) -> list[dict[str, Any]]:
    buttons = [message_button(ctx.t.label(texts.NEXT_DAYS_BUTTON), ctx.t.label(texts.NEXT_DAYS_BUTTON))]
    if not _reminder_on(ctx, resident_id):
        buttons.append(postback_button(ctx.t.label(texts.REMINDER_OFFER), {"a": "grem", "on": 1}, ctx.t.label(texts.TURN_ON)))
    return buttons


def _next_day_line(ctx: EventContext, cal: service.AreaCalendar, category: str) -> str:
    kind = service.kind_for_category(category, [k for k, _ in cal.rules])
    if kind is None:
        return ctx.t(texts.NOT_ON_CALENDAR, category=category)
    day = cal.next_of(kind, service.today_jst())
    if day is None:
        return ctx.t(texts.NO_NEXT_DAY, kind=kind, area=cal.name)
    return ctx.t(texts.NEXT_DAY, area=cal.name, kind=kind, date=_date(ctx, day))


def _item_text(ctx: EventContext, match: Match) -> str:
    item = match.item
    lines = [ctx.t(texts.ITEM_ANSWER, item=item.name, category=item.category)]
    if item.notes:
        lines.append(ctx.t(texts.NOTES, notes=item.notes))
    if item.remarks:
        lines.append(ctx.t(texts.REMARKS, remarks=item.remarks))
    return "\n".join(lines)


def _item_data(match: Match) -> tuple[str | None, ...]:
    item = match.item
    return item.name, item.category, item.notes, item.remarks


def answer_item(ctx: EventContext, resident_id: int | None, match: Match) -> None:
    """The item's category and notes, then its next collection day (or the area question)."""
    record_usage(ctx.session, "garbage_lookup", resident_id, found=True)
    body = _item_text(ctx, match)
    if not service.has_calendar(ctx.session, _municipality(ctx)):
        ctx.reply(text(_noted(ctx, body, *_item_data(match))))
        return
    cal = _area(ctx, resident_id)
    if cal is None:
        ctx.reply(_ask_area(ctx, body, {"i": match.item.id}, *_item_data(match)))
        return
    ctx.reply(text(_noted(ctx, f"{body}\n{_next_day_line(ctx, cal, match.item.category)}", *_item_data(match)),
                   _follow_up_buttons(ctx, resident_id)))


def next_days(ctx: EventContext, resident_id: int | None) -> None:
    """「次のごみの日」: the collection days of the coming two weeks in the resident's area."""
    record_usage(ctx.session, "garbage_next_days", resident_id)
    cal = _area(ctx, resident_id)
    if cal is None:
        ctx.reply(_ask_area(ctx, "", {"d": 1}))
        return
    days = cal.days(service.today_jst(), service.LIST_DAYS)
    if not days:
        ctx.reply(text(ctx.t(texts.NO_DAYS, area=cal.name), _follow_up_buttons(ctx, resident_id)))
        return
    lines = [ctx.t(texts.NEXT_DAYS_TITLE, area=cal.name)]
    lines += [f"{_date(ctx, day)}：{'、'.join(kinds)}" for day, kinds in days]
    ctx.reply(text(_noted(ctx, "\n".join(lines), *(k for _, kinds in days for k in kinds)),
                   _follow_up_buttons(ctx, resident_id)))


def reminder_settings(ctx: EventContext, resident_id: int | None) -> None:
    """「ごみの通知」: whether the reminder is on, with the buttons to change it and the area."""
    settings = service.resident_settings(ctx.session, resident_id)
    if settings is None or _area(ctx, resident_id) is None:
        ctx.reply(_ask_area(ctx, ctx.t(texts.REMINDER_NEEDS_AREA), {"r": 1}))
        return
    state = ctx.t.label(texts.ON if settings.is_reminder_enabled else texts.OFF)
    toggle = (postback_button(ctx.t.label(texts.TURN_OFF), {"a": "grem", "on": 0}, ctx.t.label(texts.TURN_OFF))
              if settings.is_reminder_enabled else
              postback_button(ctx.t.label(texts.TURN_ON), {"a": "grem", "on": 1}, ctx.t.label(texts.TURN_ON)))
    change = postback_button(ctx.t.label(texts.CHANGE_AREA), {"a": "gareas", "p": 0}, ctx.t.label(texts.CHANGE_AREA))
    ctx.reply(text(ctx.t(texts.REMINDER_STATUS, state=state, area=settings.area), [toggle, change]))


def handle_text(ctx: EventContext, resident_id: int | None, message: str) -> bool:
    """Answer a garbage question; False (nothing replied) for anything else."""
    municipality = _municipality(ctx)
    command = _command(message)
    # A button's label in the resident's language (「Próximo dia de coleta」) is the Japanese command.
    command = command_msgid(command, (texts.NEXT_DAYS_BUTTON, texts.REMINDER_COMMAND)) or command
    has_calendar = service.has_calendar(ctx.session, municipality)
    if has_calendar and command in NEXT_DAYS_WORDS:
        next_days(ctx, resident_id)
        return True
    if has_calendar and command in REMINDER_WORDS:
        reminder_settings(ctx, resident_id)
        return True
    if has_calendar and command in AREA_WORDS:
        ctx.reply(_ask_area(ctx, "", {}))
        return True
    index = service.item_index(ctx.session, municipality)
    if not len(index):
        return False
    question, match = index.recognise(message)
    if match is not None:
        answer_item(ctx, resident_id, match)
        return True
    if question.has_cue and question.phrase and not index.is_generic(question.phrase):
        record_usage(ctx.session, "garbage_lookup", resident_id, found=False)
        service.report_unknown_item(ctx.session, municipality, message, resident_id)
        near = [m.item.name for m in index.search(question.phrase, limit=3) if m.score >= 60]
        body = ctx.t(texts.UNKNOWN_ITEM, item=question.phrase[:40])
        buttons = [message_button(name, f"{name}は何ごみ？") for name in near]
        if near:
            body = _noted(ctx, body + "\n" + ctx.t(texts.MAYBE, items="、".join(near)), *near)
        ctx.reply(text(body, buttons))
        return True
    return False


# --- buttons ------------------------------------------------------------------------------------------


def _stale(ctx: EventContext) -> None:
    ctx.reply(text(ctx.t(texts.STALE)))


def _then(data: dict[str, Any]) -> dict[str, Any]:
    """What an area button carries for after the choice (validated where it is used)."""
    return {key: data[key] for key in ("i", "d", "r") if isinstance(data.get(key), int) and not isinstance(data.get(key), bool)}


def areas_page(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「次へ」 or 「地区を変更」: a page of areas."""
    page = data.get("p")
    names = service.area_names(ctx.session, _municipality(ctx))
    if not isinstance(page, int) or isinstance(page, bool) or page < 0 or page * AREAS_PER_PAGE >= len(names):
        _stale(ctx)
        return
    ctx.reply(text(ctx.t(texts.ASK_AREA_AGAIN), area_buttons(ctx, _then(data), page)))


def area_chosen(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """An area button: store it (with the time: the resident chose to), then do what was asked."""
    position, check = data.get("x"), data.get("c")
    names = service.area_names(ctx.session, _municipality(ctx))
    resident = ctx.resident()
    if (resident is None or not isinstance(position, int) or isinstance(position, bool) or not 0 <= position < len(names)
            or check != _area_check(names[position])):
        _stale(ctx)
        return
    area = names[position]
    service.set_area(ctx.session, resident.id, _municipality(ctx), area)
    record_usage(ctx.session, "garbage_area_set", resident.id)
    then = _then(data)
    lead = ctx.t(texts.AREA_SET, area=area)
    if "r" in then:
        set_reminder(ctx, {"on": 1}, resident.id)
        return
    if "d" in then:
        ctx.reply(text(lead))
        next_days(ctx, resident.id)
        return
    item = service.item_by_id(ctx.session, _municipality(ctx), then["i"]) if "i" in then else None
    cal = _area(ctx, resident.id)
    if item is None or cal is None:
        ctx.reply(text(lead, _follow_up_buttons(ctx, resident.id)))
        return
    kind = service.kind_for_category(item.category, [k for k, _ in cal.rules])
    ctx.reply(text(_noted(ctx, f"{lead}\n{_next_day_line(ctx, cal, item.category)}", item.category, kind),
                   _follow_up_buttons(ctx, resident.id)))


def set_reminder(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「通知を受け取る」 / 「通知を止める」."""
    on = data.get("on")
    if resident_id is None or on not in (0, 1) or isinstance(on, bool):
        _stale(ctx)
        return
    settings = service.resident_settings(ctx.session, resident_id)
    if settings is None:
        ctx.reply(_ask_area(ctx, ctx.t(texts.REMINDER_NEEDS_AREA), {"r": 1}))
        return
    service.set_reminder(ctx.session, resident_id, bool(on))
    record_usage(ctx.session, "garbage_reminder", resident_id, enabled=bool(on))
    if on:
        ctx.reply(text(ctx.t(texts.REMINDER_ON, time=str(ctx.config["GARBAGE_REMINDER_TIME"]), area=settings.area),
                       [message_button(ctx.t.label(texts.NEXT_DAYS_BUTTON), ctx.t.label(texts.NEXT_DAYS_BUTTON))]))
    else:
        ctx.reply(text(ctx.t(texts.REMINDER_OFF)))


def forget(ctx: EventContext, resident_id: int | None) -> None:
    """Unfollow or 「登録情報を削除」: the garbage area and the reminder choice go."""
    service.forget_resident(ctx.session, resident_id)


POSTBACK_ACTIONS = {"garea": area_chosen, "gareas": areas_page, "grem": set_reminder}
