"""Residents' notice settings in the chat: consent, registration, 「設定」, stop/resume, deletion.

TEXT_COMMANDS maps a resident's exact (normalised) text, such as 「設定」, to a handler that runs
before FAQ matching; POSTBACK_ACTIONS maps a postback action name to its handler.

The chat keeps no state of its own: every button carries what it needs (which field, which
value, whether it is part of first registration) plus the key of the consent it was offered
under, so a button from before a deletion or an unfollow is stale and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from faq.service import city_name, main_contact
from handlers.context import EventContext
from handlers.replies import message_button, postback_button, text
from kpi.service import record_usage
from segments.models import Resident
from segments.vocab import areas_for
from segments.service import (
    FIELD_LABELS,
    INTERESTS,
    ResidentSettings,
    SettingError,
    choices_for,
    consent_key,
    delete_attributes,
    give_consent,
    has_consented,
    set_attribute,
    set_interest,
    set_notices_enabled,
)

TextCommand = Callable[[EventContext, int | None], None]
PostbackAction = Callable[[EventContext, dict[str, Any], int | None], None]

# Short field codes used in postback data (≤ 300 characters) -> Resident columns.
FIELD_CODES = {"age": "age_band", "gen": "gender", "area": "area"}
# First registration asks these in order, then the interests.
REGISTRATION_ORDER = ("age", "gen", "area")
CHOICES_PER_PAGE = 12  # 13 quick replies at most: 12 choices + 「次へ」

STALE = "このボタンは使えなくなっています。お手数ですが、「設定」と送って、もう一度お試しください。"
NOT_SET = "未登録"

PRIVACY_NOTICE = (
    "【お知らせ配信の登録について】\n"
    "年代・性別・お住まいの地域・関心のある分野を登録すると、あなたに関係するお知らせだけをお送りします。\n"
    "■保存する情報：LINEのユーザーID、登録した項目、同意した日時\n"
    "■目的：お知らせの配信先を選ぶためだけに使います\n"
    "■保存期間：ご自身で削除するか、このアカウントをブロックするまで\n"
    "■削除の方法：「登録情報を削除」と送るか、ブロックしてください\n"
    "どの項目も「回答しない」を選べます。登録しますか？"
)


def greeting(city_name: str) -> str:
    """The first message after a follow: who we are and what the account does."""
    city = f"{city_name}の公式LINE" if city_name else "市の公式LINE"
    return (
        f"友だち追加ありがとうございます。{city}です。\n"
        "手続きや暮らしのことを文章で質問すると、市の案内をお返しします。"
        "（例：「住民票をコンビニで取りたい」「ごみの出し方」）\n"
        "「メニュー」と送ると、よくある質問を分野から探せます。"
    )


def consent_buttons() -> list[dict[str, Any]]:
    """Register (consent) or skip."""
    return [
        postback_button("同意して登録する", {"a": "reg"}, "同意して登録する"),
        postback_button("登録しない", {"a": "skip"}, "登録しない"),
    ]


def privacy_notice_message() -> dict[str, Any]:
    """The privacy notice with the register / skip buttons."""
    return text(PRIVACY_NOTICE, consent_buttons())


def follow_messages(municipality: str) -> list[dict[str, Any]]:
    """Greeting naming the city, then the privacy notice with register / skip."""
    return [text(greeting(city_name(municipality))), privacy_notice_message()]


# --- showing settings ---------------------------------------------------------------------------


def _shown(value: str | None) -> str:
    return value or NOT_SET


def settings_summary(resident: Resident) -> str:
    """The resident's settings, one per line."""
    s = ResidentSettings.of(resident)
    return (
        f"年代：{_shown(s.age_band)}\n"
        f"性別：{_shown(s.gender)}\n"
        f"地域：{_shown(s.area)}\n"
        f"関心のある分野：{'、'.join(s.interests) or 'なし'}\n"
        f"お知らせ：{'受け取る' if s.is_notices_enabled else '停止中'}"
    )


def registration_order(municipality: str) -> tuple[str, ...]:
    """The single-valued fields asked, in order (area only where the city has districts configured)."""
    return tuple(code for code in REGISTRATION_ORDER if code != "area" or areas_for(municipality))


def settings_buttons(resident: Resident, municipality: str) -> list[dict[str, Any]]:
    """One button per thing the resident may change, then stop/resume and delete."""
    key = consent_key(resident)
    buttons = [
        postback_button(f"{FIELD_LABELS[FIELD_CODES[code]]}を変更", {"a": "ask", "f": code, "k": key},
                        f"{FIELD_LABELS[FIELD_CODES[code]]}を変更")
        for code in registration_order(municipality)
    ]
    buttons.append(postback_button("関心を変更", {"a": "ask", "f": "int", "k": key}, "関心のある分野を変更"))
    buttons.append(message_button("配信再開") if not resident.is_notices_enabled else message_button("配信停止"))
    buttons.append(message_button("登録情報を削除"))
    return buttons


def settings_message(resident: Resident, municipality: str, lead: str = "現在の登録内容です。") -> dict[str, Any]:
    """Current settings and the buttons to change each."""
    return text(f"{lead}\n{settings_summary(resident)}\n変更する項目を下のボタンから選んでください。",
                settings_buttons(resident, municipality))


def choice_buttons(resident: Resident, code: str, municipality: str, wizard: bool, page: int = 0) -> list[dict[str, Any]]:
    """The values of one field as buttons (paged when a city has many districts)."""
    choices = choices_for(FIELD_CODES[code], municipality)
    key = consent_key(resident)
    if len(choices) <= CHOICES_PER_PAGE + 1:
        page_choices, has_more = choices, False
    else:
        start = page * CHOICES_PER_PAGE
        page_choices, has_more = choices[start : start + CHOICES_PER_PAGE], start + CHOICES_PER_PAGE < len(choices)
    buttons = [postback_button(value, {"a": "set", "f": code, "v": value, "k": key, "w": int(wizard)}, value)
               for value in page_choices]
    if has_more:
        buttons.append(postback_button("次へ", {"a": "ask", "f": code, "k": key, "w": int(wizard), "p": page + 1}, "次へ"))
    return buttons


def _step(code: str, municipality: str) -> str:
    """「【2/4】」: where first registration is (the interests come last)."""
    order = registration_order(municipality)
    position = order.index(code) + 1 if code in order else len(order) + 1
    return f"【{position}/{len(order) + 1}】"


def ask_message(resident: Resident, code: str, municipality: str, wizard: bool, lead: str = "", page: int = 0) -> dict[str, Any]:
    """Ask for one field."""
    label = FIELD_LABELS[FIELD_CODES[code]]
    current = getattr(resident, FIELD_CODES[code])
    if wizard:
        question = f"{_step(code, municipality)}{label}を選んでください。"
    else:
        question = f"{label}を選んでください。" + (f"（現在：{current}）" if current else "")
    return text(f"{lead}\n{question}" if lead else question, choice_buttons(resident, code, municipality, wizard, page))


def interest_buttons(resident: Resident, wizard: bool) -> list[dict[str, Any]]:
    """Each interest as an on/off button (✓ = chosen; tapping it removes it), then 「決定」."""
    key = consent_key(resident)
    chosen = set(ResidentSettings.of(resident).interests)
    buttons = []
    for name in INTERESTS:
        if name in chosen:
            buttons.append(postback_button(f"✓{name}", {"a": "int", "v": name, "on": 0, "k": key, "w": int(wizard)}, f"{name}を外す"))
        else:
            buttons.append(postback_button(name, {"a": "int", "v": name, "on": 1, "k": key, "w": int(wizard)}, f"{name}を追加"))
    buttons.append(postback_button("決定", {"a": "intok", "k": key, "w": int(wizard)}, "決定"))
    return buttons


def interests_message(resident: Resident, municipality: str, wizard: bool, lead: str = "", brief: bool = False) -> dict[str, Any]:
    """Ask for interests (several allowed); `brief` after a tap, when the resident knows how it works."""
    chosen = "、".join(ResidentSettings.of(resident).interests) or "なし"
    if brief:
        body = f"選択中：{chosen}\nほかにもあれば選び、終わったら「決定」を押してください。"
    else:
        body = (
            f"{_step('int', municipality) if wizard else ''}関心のある分野を選んでください（いくつでも選べます）。"
            "✓の付いたボタンを押すと外せます。選び終わったら「決定」を押してください。\n"
            f"選択中：{chosen}"
        )
    return text(f"{lead}\n{body}" if lead else body, interest_buttons(resident, wizard))


# --- text commands ------------------------------------------------------------------------------


def _resident(ctx: EventContext) -> Resident | None:
    return ctx.resident() if ctx.is_direct_chat else None


def show_settings(ctx: EventContext, resident_id: int | None) -> None:
    """「設定」: current settings with change buttons, or the offer to register."""
    resident = _resident(ctx)
    if resident is None:
        return
    if not has_consented(resident):
        ctx.reply(text("お知らせ配信にはまだ登録されていません。"), privacy_notice_message())
        return
    ctx.reply(settings_message(resident, ctx.config["MUNICIPALITY"]))


def stop_notices(ctx: EventContext, resident_id: int | None) -> None:
    """「配信停止」."""
    resident = _resident(ctx)
    if resident is None:
        return
    if not has_consented(resident):
        ctx.reply(text(
            "お知らせ配信には登録されていないため、停止するお知らせはありません。\n"
            "（防災などの緊急のお知らせは、友だち登録している皆さまにお送りします）"
        ))
        return
    if not set_notices_enabled(resident, False):
        ctx.reply(text("お知らせの配信はすでに停止しています。再開するときは「配信再開」と送ってください。"))
        return
    record_usage(ctx.session, "notices_stopped", resident.id)
    ctx.reply(text(
        "お知らせの配信を停止しました。\n"
        "防災などの緊急のお知らせは、引き続きお送りします。\n"
        "再開するときは「配信再開」と送ってください。",
        [message_button("配信再開"), message_button("設定")],
    ))


def resume_notices(ctx: EventContext, resident_id: int | None) -> None:
    """「配信再開」."""
    resident = _resident(ctx)
    if resident is None:
        return
    if not has_consented(resident):
        ctx.reply(text("お知らせを受け取るには、登録が必要です。"), privacy_notice_message())
        return
    if not set_notices_enabled(resident, True):
        ctx.reply(text("お知らせは配信中です（停止していません）。", [message_button("設定")]))
        return
    record_usage(ctx.session, "notices_resumed", resident.id)
    ctx.reply(text("お知らせの配信を再開しました。登録内容に合ったお知らせをお送りします。", [message_button("設定")]))


def ask_delete(ctx: EventContext, resident_id: int | None) -> None:
    """「登録情報を削除」: ask for confirmation first."""
    resident = _resident(ctx)
    if resident is None:
        return
    if not has_consented(resident):
        ctx.reply(text("削除する登録情報はありません（お知らせ配信には登録されていません）。"))
        return
    ctx.reply(text(
        "登録情報（年代・性別・地域・関心のある分野・同意した日時）をすべて削除します。"
        "お知らせ配信の対象からも外れます。よろしいですか？",
        [postback_button("削除する", {"a": "del", "k": consent_key(resident)}, "削除する"),
         postback_button("やめる", {"a": "delno"}, "やめる")],
    ))


def contact(ctx: EventContext, resident_id: int | None) -> None:
    """「お問い合わせ」 (rich menu): how to reach the city as a whole, from its directory."""
    if not ctx.is_direct_chat:
        return
    ctx.reply(text(
        f"お問い合わせ先：{main_contact(ctx.session, ctx.config['MUNICIPALITY'])}\n"
        "このトークに質問を文章で送っていただくと、市の案内と担当の課の連絡先をお返しします。",
        [message_button("よくある質問")],
    ))


# --- postback actions ---------------------------------------------------------------------------


def _stale(ctx: EventContext) -> None:
    """Say politely that the button no longer works (never in a group: settings are 1:1 only)."""
    if ctx.is_direct_chat:
        ctx.reply(text(STALE))


def _consented_resident(ctx: EventContext, data: dict[str, Any]) -> Resident | None:
    """The resident, if the button was offered under their current consent (else None: stale)."""
    resident = _resident(ctx)
    if resident is None or not has_consented(resident):
        return None
    key = data.get("k")
    if not isinstance(key, int) or isinstance(key, bool) or key != consent_key(resident):
        return None
    return resident


def _wizard(data: dict[str, Any]) -> bool | None:
    """The `w` flag (first registration or not); None when it is malformed."""
    value = data.get("w", 0)
    return bool(value) if value in (0, 1) and not isinstance(value, bool) else None


def register(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「同意して登録する」: store the time of consent and start asking."""
    resident = _resident(ctx)
    if resident is None:
        return
    if not give_consent(resident):
        ctx.reply(settings_message(resident, ctx.config["MUNICIPALITY"], "すでに登録されています。現在の登録内容です。"))
        return
    record_usage(ctx.session, "consent", resident.id)
    municipality = ctx.config["MUNICIPALITY"]
    questions = len(registration_order(municipality)) + 1
    ctx.reply(ask_message(resident, registration_order(municipality)[0], municipality, wizard=True,
                          lead=f"ご同意ありがとうございます。同意した日時を記録しました。\n{questions}つの質問にお答えください（途中でやめても大丈夫です）。"))


def skip(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「登録しない」: nothing is stored; the bot still answers questions."""
    resident = _resident(ctx)
    if resident is None:
        return
    if has_consented(resident):
        _stale(ctx)
        return
    record_usage(ctx.session, "registration_skipped", resident.id)
    ctx.reply(text(
        "登録せずにご利用いただけます。質問はいつでも文章で送ってください。\n"
        "お知らせを受け取りたくなったら「設定」と送ってください。"
    ))


def ask(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """A 「〜を変更」 or 「次へ」 button: offer the choices of one field."""
    resident = _consented_resident(ctx, data)
    code, wizard, page = data.get("f"), _wizard(data), data.get("p", 0)
    if resident is None or wizard is None or not (code in FIELD_CODES or code == "int"):
        _stale(ctx)
        return
    if code == "int":
        ctx.reply(interests_message(resident, ctx.config["MUNICIPALITY"], wizard))
        return
    total = len(choices_for(FIELD_CODES[code], ctx.config["MUNICIPALITY"]))
    if not isinstance(page, int) or isinstance(page, bool) or page < 0 or page * CHOICES_PER_PAGE >= total:
        _stale(ctx)
        return
    ctx.reply(ask_message(resident, code, ctx.config["MUNICIPALITY"], wizard, page=page))


def set_value(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """A choice button: store the value and confirm; in first registration, ask the next field."""
    resident = _consented_resident(ctx, data)
    code, value, wizard = data.get("f"), data.get("v"), _wizard(data)
    if resident is None or wizard is None or code not in FIELD_CODES or not isinstance(value, str):
        _stale(ctx)
        return
    column = FIELD_CODES[code]
    municipality = ctx.config["MUNICIPALITY"]
    try:
        changed = set_attribute(resident, column, value, municipality)
    except SettingError:
        _stale(ctx)
        return
    if changed:
        record_usage(ctx.session, "settings_change", resident.id, field=column)
    label = FIELD_LABELS[column]
    if wizard:
        order = registration_order(municipality)
        following = order[order.index(code) + 1 :] if code in order else ()
        lead = f"{label}：{value} を登録しました。"
        if following:
            ctx.reply(ask_message(resident, following[0], municipality, True, lead=lead))
        else:
            ctx.reply(interests_message(resident, municipality, True, lead=lead))
        return
    lead = f"{label}を「{value}」に変更しました。" if changed else f"{label}は「{value}」のままです。"
    ctx.reply(settings_message(resident, municipality, lead))


def toggle_interest(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """An interest button: add or remove it (explicitly, so a repeated or old tap does no harm)."""
    resident = _consented_resident(ctx, data)
    name, on, wizard = data.get("v"), data.get("on"), _wizard(data)
    if resident is None or wizard is None or not isinstance(name, str) or on not in (0, 1) or isinstance(on, bool):
        _stale(ctx)
        return
    try:
        changed = set_interest(resident, name, bool(on))
    except SettingError:
        _stale(ctx)
        return
    if changed:
        record_usage(ctx.session, "settings_change", resident.id, field="interests")
    lead = f"「{name}」を{'追加' if on else '外'}しました。" if changed else f"「{name}」は{'選択済み' if on else '選ばれていません'}です。"
    ctx.reply(interests_message(resident, ctx.config["MUNICIPALITY"], wizard, lead=lead, brief=True))


def interests_done(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「決定」: confirm the interests; first registration ends here."""
    resident = _consented_resident(ctx, data)
    wizard = _wizard(data)
    if resident is None or wizard is None:
        _stale(ctx)
        return
    if wizard:
        ctx.reply(text(
            "登録が完了しました。ありがとうございます。\n"
            f"{settings_summary(resident)}\n"
            "「設定」と送ると、いつでも確認・変更・削除できます。",
            [message_button("設定"), message_button("よくある質問")],
        ))
        return
    chosen = "、".join(ResidentSettings.of(resident).interests) or "なし"
    ctx.reply(settings_message(resident, ctx.config["MUNICIPALITY"], f"関心のある分野を「{chosen}」にしました。"))


def delete_confirmed(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「削除する」: delete every attribute and the consent."""
    resident = _consented_resident(ctx, data)
    if resident is None:
        _stale(ctx)
        return
    delete_attributes(resident)
    record_usage(ctx.session, "attributes_deleted", resident.id)
    ctx.reply(text(
        "登録情報をすべて削除しました。お知らせ配信の対象からも外れました。\n"
        "質問はこれまでどおりご利用いただけます。もう一度登録するときは「設定」と送ってください。"
    ))


def delete_cancelled(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「やめる」: nothing is deleted."""
    if _resident(ctx) is None:
        return
    ctx.reply(text("削除を取りやめました。登録内容はそのままです。"))


def _aliases(handler: TextCommand, *words: str) -> dict[str, TextCommand]:
    return dict.fromkeys(words, handler)


# Exact texts after handlers.message.normalize_command (NFKC, outer spaces and 「」。！？ removed).
TEXT_COMMANDS: dict[str, TextCommand] = {
    **_aliases(show_settings, "設定", "登録", "登録する", "設定変更", "登録内容", "登録情報", "お知らせ設定", "配信設定"),
    **_aliases(stop_notices, "配信停止", "お知らせ停止", "配信を停止", "配信を止める", "配信停止する"),
    **_aliases(resume_notices, "配信再開", "お知らせ再開", "配信を再開", "配信再開する"),
    **_aliases(ask_delete, "登録情報を削除", "登録情報の削除", "登録情報削除", "登録を削除", "登録削除"),
    **_aliases(contact, "お問い合わせ", "お問合せ", "問い合わせ", "問合せ", "お問い合わせ先", "問い合わせ先", "連絡先"),
}

POSTBACK_ACTIONS: dict[str, PostbackAction] = {
    "reg": register,
    "skip": skip,
    "ask": ask,
    "set": set_value,
    "int": toggle_interest,
    "intok": interests_done,
    "del": delete_confirmed,
    "delno": delete_cancelled,
}
