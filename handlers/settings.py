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

from bot.i18n import JAPANESE, LANGUAGES, N_, Translator
from faq.service import city_name, main_contact
from handlers import garbage_chat, report_chat
from handlers import survey_chat
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
    set_language,
    set_notices_enabled,
)

TextCommand = Callable[[EventContext, int | None], None]
PostbackAction = Callable[[EventContext, dict[str, Any], int | None], None]

# Short field codes used in postback data (≤ 300 characters) -> Resident columns.
FIELD_CODES = {"age": "age_band", "gen": "gender", "area": "area"}
# First registration asks these in order, then the interests.
REGISTRATION_ORDER = ("age", "gen", "area")
CHOICES_PER_PAGE = 12  # 13 quick replies at most: 12 choices + 「次へ」

STALE = N_("このボタンは使えなくなっています。お手数ですが、「設定」と送って、もう一度お試しください。")
NOT_SET = N_("未登録")
# The button that opens the language choice: the same words in every language.
LANGUAGE_BUTTON = "Language / 言語"

PRIVACY_NOTICE = N_(
    "【お知らせ配信の登録について】\n"
    "年代・性別・お住まいの地域・関心のある分野・使う言語を登録すると、あなたに関係するお知らせだけを"
    "あなたの言語でお送りします。\n"
    "■保存する情報：LINEのユーザーID、登録した項目、同意した日時\n"
    "■目的：お知らせの配信先を選ぶためだけに使います\n"
    "■保存期間：ご自身で削除するか、このアカウントをブロックするまで\n"
    "■削除の方法：「登録情報を削除」と送るか、ブロックしてください\n"
    "どの項目も「回答しない」を選べます。登録しますか？"
)


def greeting(city_name: str, t: Translator = JAPANESE, languages: tuple[str, ...] = ()) -> str:
    """The first message after a follow: who we are and what the account does (and, when the city
    offers other languages, where to choose one: in those languages' own names)."""
    city = t.label("{city}の公式LINE", city=city_name) if city_name else t.label("市の公式LINE")
    body = t(
        "友だち追加ありがとうございます。{city}です。\n"
        "手続きや暮らしのことを文章で質問すると、市の案内をお返しします。"
        "（例：「住民票をコンビニで取りたい」「ごみの出し方」）\n"
        "「メニュー」と送ると、よくある質問を分野から探せます。", city=city)
    others = [LANGUAGES[code] for code in languages if code != "ja"]
    if others:
        body += f"\n\n{LANGUAGE_BUTTON}: {' / '.join(others)}"
    return body


def language_button() -> dict[str, Any]:
    """「Language / 言語」: opens the language choice."""
    return postback_button(LANGUAGE_BUTTON, {"a": "langs"}, LANGUAGE_BUTTON)


def consent_buttons(t: Translator = JAPANESE, language: str | None = None,
                    languages: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Register (consent) or skip; `language` is stored with the consent (chosen before it);
    with the city's `languages`, also 「Language / 言語」."""
    data: dict[str, Any] = {"a": "reg"} if language is None else {"a": "reg", "l": language}
    buttons = [
        postback_button(t.label("同意して登録する"), data, t.label("同意して登録する")),
        postback_button(t.label("登録しない"), {"a": "skip"}, t.label("登録しない")),
    ]
    if len(languages) > 1:
        buttons.append(language_button())
    return buttons


def privacy_notice_message(t: Translator = JAPANESE, language: str | None = None,
                           languages: tuple[str, ...] = ()) -> dict[str, Any]:
    """The privacy notice with the register / skip buttons (and 「Language / 言語」)."""
    return text(t(PRIVACY_NOTICE), consent_buttons(t, language, languages))


def follow_messages(municipality: str, t: Translator = JAPANESE, languages: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Greeting naming the city, then the privacy notice with register / skip and 「Language / 言語」
    when the city offers more than Japanese."""
    return [text(greeting(city_name(municipality), t, languages)), privacy_notice_message(t, languages=languages)]


# --- showing settings ---------------------------------------------------------------------------


def _shown(value: str | None, t: Translator) -> str:
    return t.label(value) if value else t.label(NOT_SET)


def _interests_shown(names: tuple[str, ...] | list[str], t: Translator) -> str:
    return t.label("、").join(t.label(n) for n in names) or t.label("なし")


def settings_summary(resident: Resident, t: Translator = JAPANESE) -> str:
    """The resident's settings, one per line."""
    s = ResidentSettings.of(resident)
    language = LANGUAGES.get(resident.language or "", LANGUAGES["ja"])
    return t(
        "年代：{age}\n性別：{gender}\n地域：{area}\n関心のある分野：{interests}\nお知らせ：{notices}\n言語：{language}",
        age=_shown(s.age_band, t), gender=_shown(s.gender, t), area=_shown(s.area, t),
        interests=_interests_shown(s.interests, t),
        notices=t.label("受け取る") if s.is_notices_enabled else t.label("停止中"), language=language,
    )


def registration_order(municipality: str) -> tuple[str, ...]:
    """The single-valued fields asked, in order (area only where the city has districts configured)."""
    return tuple(code for code in REGISTRATION_ORDER if code != "area" or areas_for(municipality))


def _command_button(command: str, t: Translator) -> dict[str, Any]:
    """A button sending a text command in the resident's language (TEXT_COMMANDS knows every language's)."""
    return message_button(t.label(command))


def settings_buttons(resident: Resident, municipality: str, t: Translator = JAPANESE,
                     languages: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """One button per thing the resident may change, then the language, stop/resume and delete."""
    key = consent_key(resident)
    buttons = [
        postback_button(t.label("{field}を変更", field=t.label(FIELD_LABELS[FIELD_CODES[code]])), {"a": "ask", "f": code, "k": key},
                        t.label("{field}を変更", field=t.label(FIELD_LABELS[FIELD_CODES[code]])))
        for code in registration_order(municipality)
    ]
    buttons.append(postback_button(t.label("関心を変更"), {"a": "ask", "f": "int", "k": key}, t.label("関心のある分野を変更")))
    if len(languages) > 1:
        buttons.append(language_button())
    buttons.append(_command_button("配信再開" if not resident.is_notices_enabled else "配信停止", t))
    buttons.append(_command_button("登録情報を削除", t))
    return buttons


def settings_message(resident: Resident, municipality: str, lead: str | None = None, t: Translator = JAPANESE,
                     languages: tuple[str, ...] = ()) -> dict[str, Any]:
    """Current settings and the buttons to change each (`lead` already in the resident's language)."""
    lead = t("現在の登録内容です。") if lead is None else lead
    return text(f"{lead}\n{settings_summary(resident, t)}\n" + t("変更する項目を下のボタンから選んでください。"),
                settings_buttons(resident, municipality, t, languages))


def choice_buttons(resident: Resident, code: str, municipality: str, wizard: bool, page: int = 0,
                   t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """The values of one field as buttons (paged when a city has many districts)."""
    choices = choices_for(FIELD_CODES[code], municipality)
    key = consent_key(resident)
    if len(choices) <= CHOICES_PER_PAGE + 1:
        page_choices, has_more = choices, False
    else:
        start = page * CHOICES_PER_PAGE
        page_choices, has_more = choices[start : start + CHOICES_PER_PAGE], start + CHOICES_PER_PAGE < len(choices)
    buttons = [postback_button(t.label(value), {"a": "set", "f": code, "v": value, "k": key, "w": int(wizard)}, t.label(value))
               for value in page_choices]
    if has_more:
        buttons.append(postback_button(t.label("次へ"), {"a": "ask", "f": code, "k": key, "w": int(wizard), "p": page + 1},
                                       t.label("次へ")))
    return buttons


def _step(code: str, municipality: str) -> str:
    """「【2/4】」: where first registration is (the interests come last)."""
    order = registration_order(municipality)
    position = order.index(code) + 1 if code in order else len(order) + 1
    return f"【{position}/{len(order) + 1}】"


def ask_message(resident: Resident, code: str, municipality: str, wizard: bool, lead: str = "", page: int = 0,
                t: Translator = JAPANESE) -> dict[str, Any]:
    """Ask for one field."""
    label = t.label(FIELD_LABELS[FIELD_CODES[code]])
    current = getattr(resident, FIELD_CODES[code])
    if wizard:
        question = _step(code, municipality) + t("{field}を選んでください。", field=label)
    else:
        question = t("{field}を選んでください。", field=label) + (t.label("（現在：{value}）", value=t.label(current)) if current else "")
    return text(f"{lead}\n{question}" if lead else question, choice_buttons(resident, code, municipality, wizard, page, t))


def interest_buttons(resident: Resident, wizard: bool, t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """Each interest as an on/off button (✓ = chosen; tapping it removes it), then 「決定」."""
    key = consent_key(resident)
    chosen = set(ResidentSettings.of(resident).interests)
    buttons = []
    for name in INTERESTS:
        shown = t.label(name)
        if name in chosen:
            buttons.append(postback_button(f"✓{shown}", {"a": "int", "v": name, "on": 0, "k": key, "w": int(wizard)},
                                           t.label("{name}を外す", name=shown)))
        else:
            buttons.append(postback_button(shown, {"a": "int", "v": name, "on": 1, "k": key, "w": int(wizard)},
                                           t.label("{name}を追加", name=shown)))
    buttons.append(postback_button(t.label("決定"), {"a": "intok", "k": key, "w": int(wizard)}, t.label("決定")))
    return buttons


def interests_message(resident: Resident, municipality: str, wizard: bool, lead: str = "", brief: bool = False,
                      t: Translator = JAPANESE) -> dict[str, Any]:
    """Ask for interests (several allowed); `brief` after a tap, when the resident knows how it works."""
    chosen = _interests_shown(ResidentSettings.of(resident).interests, t)
    if brief:
        body = t("選択中：{chosen}\nほかにもあれば選び、終わったら「決定」を押してください。", chosen=chosen)
    else:
        body = (_step('int', municipality) if wizard else '') + t(
            "関心のある分野を選んでください（いくつでも選べます）。"
            "✓の付いたボタンを押すと外せます。選び終わったら「決定」を押してください。\n"
            "選択中：{chosen}", chosen=chosen)
    return text(f"{lead}\n{body}" if lead else body, interest_buttons(resident, wizard, t))


# --- text commands ------------------------------------------------------------------------------


def _resident(ctx: EventContext) -> Resident | None:
    return ctx.resident() if ctx.is_direct_chat else None


def show_settings(ctx: EventContext, resident_id: int | None) -> None:
    """「設定」: current settings with change buttons, or the offer to register."""
    resident = _resident(ctx)
    if resident is None:
        return
    t = ctx.t
    if not has_consented(resident):
        ctx.reply(text(t("お知らせ配信にはまだ登録されていません。")),
                  privacy_notice_message(t, languages=ctx.languages))
        return
    ctx.reply(settings_message(resident, ctx.config["MUNICIPALITY"], t=t, languages=ctx.languages))


def stop_notices(ctx: EventContext, resident_id: int | None) -> None:
    """「配信停止」."""
    resident = _resident(ctx)
    if resident is None:
        return
    t = ctx.t
    if not has_consented(resident):
        ctx.reply(text(t(
            "お知らせ配信には登録されていないため、停止するお知らせはありません。\n"
            "（防災などの緊急のお知らせは、友だち登録している皆さまにお送りします）"
        )))
        return
    if not set_notices_enabled(resident, False):
        ctx.reply(text(t("お知らせの配信はすでに停止しています。再開するときは「配信再開」と送ってください。")))
        return
    record_usage(ctx.session, "notices_stopped", resident.id)
    ctx.reply(text(
        t("お知らせの配信を停止しました。\n"
          "防災などの緊急のお知らせは、引き続きお送りします。\n"
          "再開するときは「配信再開」と送ってください。"),
        [_command_button("配信再開", t), _command_button("設定", t)],
    ))


def resume_notices(ctx: EventContext, resident_id: int | None) -> None:
    """「配信再開」."""
    resident = _resident(ctx)
    if resident is None:
        return
    t = ctx.t
    if not has_consented(resident):
        ctx.reply(text(t("お知らせを受け取るには、登録が必要です。")), privacy_notice_message(t, languages=ctx.languages))
        return
    if not set_notices_enabled(resident, True):
        ctx.reply(text(t("お知らせは配信中です（停止していません）。"), [_command_button("設定", t)]))
        return
    record_usage(ctx.session, "notices_resumed", resident.id)
    ctx.reply(text(t("お知らせの配信を再開しました。登録内容に合ったお知らせをお送りします。"), [_command_button("設定", t)]))


def ask_delete(ctx: EventContext, resident_id: int | None) -> None:
    """「登録情報を削除」: ask for confirmation first."""
    resident = _resident(ctx)
    if resident is None:
        return
    t = ctx.t
    if not has_consented(resident):
        ctx.reply(text(t("削除する登録情報はありません（お知らせ配信には登録されていません）。")))
        return
    ctx.reply(text(
        t("登録情報（年代・性別・地域・関心のある分野・言語・同意した日時）をすべて削除します。"
          "お知らせ配信の対象からも外れます。よろしいですか？"),
        [postback_button(t.label("削除する"), {"a": "del", "k": consent_key(resident)}, t.label("削除する")),
         postback_button(t.label("やめる"), {"a": "delno"}, t.label("やめる"))],
    ))


def contact(ctx: EventContext, resident_id: int | None) -> None:
    """「お問い合わせ」 (rich menu): how to reach the city as a whole, from its directory."""
    if not ctx.is_direct_chat:
        return
    t = ctx.t
    ctx.reply(text(
        t("お問い合わせ先：{contact}\n"
          "このトークに質問を文章で送っていただくと、市の案内と担当の課の連絡先をお返しします。",
          contact=main_contact(ctx.session, ctx.config['MUNICIPALITY'])),
        [_command_button("よくある質問", t)],
    ))


# --- postback actions ---------------------------------------------------------------------------


def _stale(ctx: EventContext) -> None:
    """Say politely that the button no longer works (never in a group: settings are 1:1 only)."""
    if ctx.is_direct_chat:
        ctx.reply(text(ctx.t(STALE)))


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
    language = data.get("l")
    if language is not None and language not in ctx.languages:
        _stale(ctx)
        return
    if not give_consent(resident):
        t = ctx.t
        ctx.reply(settings_message(resident, ctx.config["MUNICIPALITY"], t("すでに登録されています。現在の登録内容です。"),
                                   t, ctx.languages))
        return
    record_usage(ctx.session, "consent", resident.id)
    if language is not None:  # chosen before consenting: stored with the consent
        set_language(resident, language)
    t = ctx.t
    municipality = ctx.config["MUNICIPALITY"]
    questions = len(registration_order(municipality)) + 1
    ctx.reply(ask_message(resident, registration_order(municipality)[0], municipality, wizard=True,
                          lead=t("ご同意ありがとうございます。同意した日時を記録しました。\n"
                                 "{questions}つの質問にお答えください（途中でやめても大丈夫です）。", questions=questions),
                          t=t))


def skip(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「登録しない」: nothing is stored; the bot still answers questions."""
    resident = _resident(ctx)
    if resident is None:
        return
    if has_consented(resident):
        _stale(ctx)
        return
    record_usage(ctx.session, "registration_skipped", resident.id)
    ctx.reply(text(ctx.t(
        "登録せずにご利用いただけます。質問はいつでも文章で送ってください。\n"
        "お知らせを受け取りたくなったら「設定」と送ってください。"
    )))


def ask(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """A 「〜を変更」 or 「次へ」 button: offer the choices of one field."""
    resident = _consented_resident(ctx, data)
    code, wizard, page = data.get("f"), _wizard(data), data.get("p", 0)
    if resident is None or wizard is None or not (code in FIELD_CODES or code == "int"):
        _stale(ctx)
        return
    if code == "int":
        ctx.reply(interests_message(resident, ctx.config["MUNICIPALITY"], wizard, t=ctx.t))
        return
    total = len(choices_for(FIELD_CODES[code], ctx.config["MUNICIPALITY"]))
    if not isinstance(page, int) or isinstance(page, bool) or page < 0 or page * CHOICES_PER_PAGE >= total:
        _stale(ctx)
        return
    ctx.reply(ask_message(resident, code, ctx.config["MUNICIPALITY"], wizard, page=page, t=ctx.t))


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
    t = ctx.t
    label, shown = t.label(FIELD_LABELS[column]), t.label(value)
    if wizard:
        order = registration_order(municipality)
        following = order[order.index(code) + 1 :] if code in order else ()
        lead = t("{field}：{value} を登録しました。", field=label, value=shown)
        if following:
            ctx.reply(ask_message(resident, following[0], municipality, True, lead=lead, t=t))
        else:
            ctx.reply(interests_message(resident, municipality, True, lead=lead, t=t))
        return
    if changed:
        lead = t("{field}を「{value}」に変更しました。", field=label, value=shown)
    else:
        lead = t("{field}は「{value}」のままです。", field=label, value=shown)
    ctx.reply(settings_message(resident, municipality, lead, t, ctx.languages))


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
    t = ctx.t
    shown = t.label(name)
    if changed:
        lead = t("「{name}」を追加しました。", name=shown) if on else t("「{name}」を外しました。", name=shown)
    else:
        lead = t("「{name}」は選択済みです。", name=shown) if on else t("「{name}」は選ばれていません。", name=shown)
    ctx.reply(interests_message(resident, ctx.config["MUNICIPALITY"], wizard, lead=lead, brief=True, t=t))


def interests_done(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「決定」: confirm the interests; first registration ends here."""
    resident = _consented_resident(ctx, data)
    wizard = _wizard(data)
    if resident is None or wizard is None:
        _stale(ctx)
        return
    t = ctx.t
    if wizard:
        ctx.reply(text(
            t("登録が完了しました。ありがとうございます。\n"
              "{summary}\n"
              "「設定」と送ると、いつでも確認・変更・削除できます。", summary=settings_summary(resident, t)),
            [_command_button("設定", t), _command_button("よくある質問", t)],
        ))
        return
    chosen = _interests_shown(ResidentSettings.of(resident).interests, t)
    ctx.reply(settings_message(resident, ctx.config["MUNICIPALITY"], t("関心のある分野を「{chosen}」にしました。", chosen=chosen),
                               t, ctx.languages))


def delete_confirmed(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「削除する」: delete every attribute and the consent."""
    resident = _consented_resident(ctx, data)
    if resident is None:
        _stale(ctx)
        return
    t = ctx.t  # the resident's language before the deletion forgets it
    delete_attributes(resident)
    record_usage(ctx.session, "attributes_deleted", resident.id)
    report_chat.forget(ctx, resident.id)  # their draft goes; sent reports lose the link to them
    survey_chat.forget(ctx, resident.id)  # their answers to named surveys
    garbage_chat.forget(ctx, resident.id)  # their garbage area and reminder
    ctx.reply(text(t(
        "登録情報をすべて削除しました。お知らせ配信の対象からも外れました。\n"
        "質問はこれまでどおりご利用いただけます。もう一度登録するときは「設定」と送ってください。"
    )))


def delete_cancelled(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """「やめる」: nothing is deleted."""
    if _resident(ctx) is None:
        return
    ctx.reply(text(ctx.t("削除を取りやめました。登録内容はそのままです。")))


# --- language -----------------------------------------------------------------------------------


def language_buttons(languages: tuple[str, ...]) -> list[dict[str, Any]]:
    """The city's languages, each in its own name."""
    return [postback_button(LANGUAGES[code], {"a": "lang", "l": code}, LANGUAGES[code]) for code in languages]


def language_choice_message(t: Translator, languages: tuple[str, ...]) -> dict[str, Any]:
    """「Language / 言語」: which language the bot should use."""
    return text(t("使う言語を選んでください。") + "\nLanguage / 言語", language_buttons(languages))


def show_languages(ctx: EventContext, resident_id: int | None) -> None:
    """「言語」 or 「Language」 typed: the language choice."""
    if ctx.is_direct_chat:
        ctx.reply(language_choice_message(ctx.t, ctx.languages))


def offer_languages(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """The 「Language / 言語」 button."""
    show_languages(ctx, resident_id)


def choose_language(ctx: EventContext, data: dict[str, Any], resident_id: int | None) -> None:
    """A language button: stored at once for a registered resident (it is a declared attribute);
    otherwise the privacy notice in that language, whose 「同意して登録する」 stores it with the consent."""
    resident = _resident(ctx)
    code = data.get("l")
    if resident is None or not isinstance(code, str) or code not in ctx.languages:
        _stale(ctx)
        return
    t = Translator(code)
    if has_consented(resident):
        if set_language(resident, code):
            record_usage(ctx.session, "settings_change", resident.id, field="language")
        ctx.reply(settings_message(resident, ctx.config["MUNICIPALITY"],
                                   t("これからは{language}でお送りします。", language=LANGUAGES[code]), t, ctx.languages))
        return
    if code == "ja":  # Japanese is what an unregistered resident gets anyway: nothing to store
        ctx.reply(text(t("これからは{language}でお送りします。", language=LANGUAGES[code])))
        return
    ctx.reply(text(t("{language}でお送りするには、言語を登録する必要があります。"
                     "登録しない場合も、{language}で送られた質問には{language}でお答えします。", language=LANGUAGES[code])),
              privacy_notice_message(t, language=code))


def _aliases(handler: TextCommand, *words: str) -> dict[str, TextCommand]:
    return dict.fromkeys(words, handler)


# Exact texts after handlers.message.normalize_command (NFKC, outer spaces and 「」。！？ removed).
TEXT_COMMANDS: dict[str, TextCommand] = {
    **_aliases(show_settings, "設定", "登録", "登録する", "設定変更", "登録内容", "登録情報", "お知らせ設定", "配信設定"),
    **_aliases(stop_notices, "配信停止", "お知らせ停止", "配信を停止", "配信を止める", "配信停止する"),
    **_aliases(resume_notices, "配信再開", "お知らせ再開", "配信を再開", "配信再開する"),
    **_aliases(ask_delete, "登録情報を削除", "登録情報の削除", "登録情報削除", "登録を削除", "登録削除"),
    **_aliases(contact, "お問い合わせ", "お問合せ", "問い合わせ", "問合せ", "お問い合わせ先", "問い合わせ先", "連絡先"),
    **_aliases(show_languages, "言語", "げんご", "Language", "language", "LANGUAGE", "Languages", "languages",
               LANGUAGE_BUTTON, "言語設定", "言語を変更"),
}
# The commands residents may also send in their language (the catalogs' translations of these,
# and the buttons that send them): handlers.message maps them back to the Japanese word.
TRANSLATED_COMMANDS = ("設定", "配信停止", "配信再開", "登録情報を削除", "お問い合わせ", "よくある質問", "メニュー")

POSTBACK_ACTIONS: dict[str, PostbackAction] = {
    "reg": register,
    "skip": skip,
    "ask": ask,
    "set": set_value,
    "int": toggle_interest,
    "intok": interests_done,
    "del": delete_confirmed,
    "delno": delete_cancelled,
    "langs": offer_languages,
    "lang": choose_language,
}
