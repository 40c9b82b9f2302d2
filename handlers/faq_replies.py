"""LINE messages for the FAQ service's outcomes (answer, 「もしかして」, don't know, menus)."""

from __future__ import annotations

from typing import Any

from bot.i18n import JAPANESE, N_, Translator
from faq.service import EntryView, FaqReply
from handlers.replies import postback_button, text

# Categories per page of the menu, then 「その他のカテゴリ」. Quick replies are one row that scrolls
# sideways; on a 360-px phone 4 of the shipped labels and that button take under two screen widths
# (measured in the simulator: tests/browser/test_chat_menu_browser.py), so one swipe shows the way on.
CATEGORIES_PER_PAGE = 4
MORE_CATEGORIES = N_("その他のカテゴリ")
MORE_ENTRIES = N_("ほかの質問")
CLARIFY_CHOICES = 3  # entries offered by 「もしかして」, numbered 1..3 (0 = 「どれでもない」)


def feedback_buttons(log_id: int | None, t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """「役に立ちましたか？」 yes / no."""
    if log_id is None:
        return []
    return [
        postback_button(t.label("はい"), {"a": "fb", "q": log_id, "v": 1}, t.label("役に立った")),
        postback_button(t.label("いいえ"), {"a": "fb", "q": log_id, "v": 0}, t.label("役に立たなかった")),
    ]


def answer_messages(entry: EntryView, log_id: int | None, t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """The entry's answer (in the resident's language as faq.service chose it), then
    「役に立ちましたか？」 with yes/no buttons."""
    messages = [text(entry.answer)]
    if log_id is not None:
        messages.append(text(t("この回答は役に立ちましたか？"), feedback_buttons(log_id, t)))
    return messages


def choice_numbers(count: int) -> str:
    """The valid numbers of a 「もしかして」 as the resident reads them: 「1」 or 「1〜3」."""
    return "1" if count <= 1 else f"1〜{count}"


def clarify_messages(reply: FaqReply, t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """「もしかして」: the top entries numbered in the text (quick replies don't show on LINE for PC
    and vanish after a newer message, so the resident can also send the number) and as buttons,
    plus 「どれでもない」 (0)."""
    offered = reply.candidates[:CLARIFY_CHOICES]
    buttons = [postback_button(c.title, {"a": "pick", "q": reply.log_id, "t": c.entry_id}, c.title) for c in offered]
    buttons.append(postback_button(t.label("どれでもない"), {"a": "pick", "q": reply.log_id, "t": ""}, t.label("どれでもない")))
    lines = "\n".join(f"{n}. {c.title}" for n, c in enumerate(offered, 1))
    return [text(
        t("もしかして、次のどれかについてのご質問ですか？\n{lines}\n"
          "番号（{numbers}）を送るか、下のボタンから選んでください。"
          "当てはまらないときは「0」を送ってください。", lines=lines, numbers=choice_numbers(len(offered))),
        buttons,
    )]


def choice_out_of_range_messages(count: int, t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """A number the last 「もしかして」 did not offer."""
    if count <= 1:
        return [text(t("申し訳ありません。その番号は選べません。「1」を送るか、"
                       "当てはまるものがないときは「0」を送ってください。"))]
    return [text(t("申し訳ありません。その番号は選べません。{numbers}の番号を送るか、"
                   "当てはまるものがないときは「0」を送ってください。", numbers=choice_numbers(count)))]


def category_pages(count: int) -> int:
    """How many pages a menu of `count` categories has (at least one)."""
    return max(1, -(-count // CATEGORIES_PER_PAGE))


def category_buttons(categories: tuple[tuple[str, str], ...], page: int = 0,
                     t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """Quick replies for one page of the category menu, then 「その他のカテゴリ」 to the next page
    (from the last page back to the first, so the menu has no dead end)."""
    start = page * CATEGORIES_PER_PAGE
    chunk = categories[start : start + CATEGORIES_PER_PAGE]
    # A category's Japanese label is its msgid (faq.service.CATEGORY_LABELS); a staff category shows as named.
    buttons = [postback_button(t.label(label), {"a": "cat", "c": cat}, t.label(label)) for cat, label in chunk]
    pages = category_pages(len(categories))
    if pages > 1:
        more = t.label(MORE_CATEGORIES)
        buttons.append(postback_button(more, {"a": "menu", "p": (page + 1) % pages}, more))
    return buttons


def unknown_messages(reply: FaqReply, t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """Say plainly that the bot does not know; offer the menu and the city's contact."""
    contact = "\n" + t("お急ぎの場合のお問い合わせ先：{contact}", contact=reply.contact) if reply.contact else ""
    body = (
        t("申し訳ありません。そのご質問にはまだお答えできません。"
          "いただいた質問は職員が確認し、今後の回答づくりに役立てます。")
        + f"{contact}\n" + t("下の分類から探すこともできます。")
    )
    return [text(body, category_buttons(reply.categories, t=t))]


def menu_messages(categories: tuple[tuple[str, str], ...], page: int = 0, t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """One page of the category menu."""
    pages = category_pages(len(categories))
    if pages > 1:
        body = t("知りたいことの分類を選んでください（{page}/{pages}）。", page=page + 1, pages=pages)
    else:
        body = t("知りたいことの分類を選んでください。")
    return [text(body, category_buttons(categories, page, t))]


def help_messages(reply: FaqReply, t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """How to use the bot."""
    city = reply.city_name or t.label("市")
    return [text(
        t("{city}公式LINEの使い方\n"
          "・知りたいことを文章で送ってください（例：「マイナンバーカードの暗証番号を忘れた」）。\n"
          "・「メニュー」で分類から探せます。\n"
          "・答えが合っていなかったら「いいえ」を押してください。職員が改善します。", city=city),
        category_buttons(reply.categories, t=t),
    )]


def entry_list_messages(entries: list[EntryView], label: str, category: str = "", page: int = 0,
                        t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """One page of a category's entries as buttons (as many per page as the category menu, so the
    row fits a phone), then 「ほかの質問」 to the next page: every entry is reachable, none dropped."""
    if not entries:
        return [text(t("この分類の質問はまだありません。"))]
    pages = category_pages(len(entries))
    start = page * CATEGORIES_PER_PAGE
    buttons = [postback_button(e.title, {"a": "show", "t": e.entry_id}, e.title)
               for e in entries[start : start + CATEGORIES_PER_PAGE]]
    where = ""
    if pages > 1:
        more = t.label(MORE_ENTRIES)
        buttons.append(postback_button(more, {"a": "cat", "c": category, "p": (page + 1) % pages}, more))
        where = t.label("（{page}/{pages}）", page=page + 1, pages=pages)
    return [text(t("「{label}」のよくある質問です{where}。知りたいものを選んでください。", label=t.label(label), where=where),
                 buttons)]


SMALLTALK_TEXT = {
    "greeting": N_("こんにちは。{city}公式LINEです。手続きや暮らしのことを、文章で気軽に質問してください。"),
    "thanks": N_("どういたしまして。ほかにも知りたいことがあれば、いつでも送ってください。"),
    "chat": N_("お話ししてくれてありがとうございます。このLINEでは{city}の手続きや暮らしの情報にお答えしています。"
               "知りたいことを文章で送ってください（例：住民票をコンビニで取りたい）。"),
}


def faq_reply_messages(reply: FaqReply, t: Translator = JAPANESE) -> list[dict[str, Any]]:
    """All messages for one FAQ outcome, in the resident's language (`t`)."""
    if reply.decision == "answer" and reply.entry is not None:
        return answer_messages(reply.entry, reply.log_id, t)
    if reply.decision == "clarify" and reply.candidates:
        return clarify_messages(reply, t)
    if reply.decision == "smalltalk":
        if reply.smalltalk == "menu":
            return menu_messages(reply.categories, t=t)
        if reply.smalltalk == "help":
            return help_messages(reply, t)
        return [text(t(SMALLTALK_TEXT[reply.smalltalk or "greeting"], city=reply.city_name or t.label("市")))]
    return unknown_messages(reply, t)
