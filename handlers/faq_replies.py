"""LINE messages for the FAQ service's outcomes (answer, 「もしかして」, don't know, menus)."""

from __future__ import annotations

from typing import Any

from faq.service import EntryView, FaqReply
from handlers.replies import postback_button, text

# Categories per page of the menu, then 「その他のカテゴリ」. Quick replies are one row that scrolls
# sideways; on a 360-px phone 4 of the shipped labels and that button take under two screen widths
# (measured in the simulator: tests/browser/test_chat_menu_browser.py), so one swipe shows the way on.
CATEGORIES_PER_PAGE = 4
MORE_CATEGORIES = "その他のカテゴリ"
MORE_ENTRIES = "ほかの質問"
CLARIFY_CHOICES = 3  # entries offered by 「もしかして」, numbered 1..3 (0 = 「どれでもない」)


def feedback_buttons(log_id: int | None) -> list[dict[str, Any]]:
    """「役に立ちましたか？」 yes / no."""
    if log_id is None:
        return []
    return [
        postback_button("はい", {"a": "fb", "q": log_id, "v": 1}, "役に立った"),
        postback_button("いいえ", {"a": "fb", "q": log_id, "v": 0}, "役に立たなかった"),
    ]


def answer_messages(entry: EntryView, log_id: int | None) -> list[dict[str, Any]]:
    """The entry's answer, then 「役に立ちましたか？」 with yes/no buttons."""
    messages = [text(entry.answer)]
    if log_id is not None:
        messages.append(text("この回答は役に立ちましたか？", feedback_buttons(log_id)))
    return messages


def choice_numbers(count: int) -> str:
    """The valid numbers of a 「もしかして」 as the resident reads them: 「1」 or 「1〜3」."""
    return "1" if count <= 1 else f"1〜{count}"


def clarify_messages(reply: FaqReply) -> list[dict[str, Any]]:
    """「もしかして」: the top entries numbered in the text (quick replies don't show on LINE for PC
    and vanish after a newer message, so the resident can also send the number) and as buttons,
    plus 「どれでもない」 (0)."""
    offered = reply.candidates[:CLARIFY_CHOICES]
    buttons = [postback_button(c.title, {"a": "pick", "q": reply.log_id, "t": c.entry_id}, c.title) for c in offered]
    buttons.append(postback_button("どれでもない", {"a": "pick", "q": reply.log_id, "t": ""}, "どれでもない"))
    lines = "\n".join(f"{n}. {c.title}" for n, c in enumerate(offered, 1))
    return [text(
        f"もしかして、次のどれかについてのご質問ですか？\n{lines}\n"
        f"番号（{choice_numbers(len(offered))}）を送るか、下のボタンから選んでください。"
        "当てはまらないときは「0」を送ってください。",
        buttons,
    )]


def choice_out_of_range_messages(count: int) -> list[dict[str, Any]]:
    """A number the last 「もしかして」 did not offer."""
    numbers = "「1」" if count <= 1 else f"{choice_numbers(count)}の番号"
    return [text(f"申し訳ありません。その番号は選べません。{numbers}を送るか、"
                 "当てはまるものがないときは「0」を送ってください。")]


def category_pages(count: int) -> int:
    """How many pages a menu of `count` categories has (at least one)."""
    return max(1, -(-count // CATEGORIES_PER_PAGE))


def category_buttons(categories: tuple[tuple[str, str], ...], page: int = 0) -> list[dict[str, Any]]:
    """Quick replies for one page of the category menu, then 「その他のカテゴリ」 to the next page
    (from the last page back to the first, so the menu has no dead end)."""
    start = page * CATEGORIES_PER_PAGE
    chunk = categories[start : start + CATEGORIES_PER_PAGE]
    buttons = [postback_button(label, {"a": "cat", "c": cat}, label) for cat, label in chunk]
    pages = category_pages(len(categories))
    if pages > 1:
        buttons.append(postback_button(MORE_CATEGORIES, {"a": "menu", "p": (page + 1) % pages}, MORE_CATEGORIES))
    return buttons


def unknown_messages(reply: FaqReply) -> list[dict[str, Any]]:
    """Say plainly that the bot does not know; offer the menu and the city's contact."""
    contact = f"\nお急ぎの場合のお問い合わせ先：{reply.contact}" if reply.contact else ""
    body = (
        "申し訳ありません。そのご質問にはまだお答えできません。"
        "いただいた質問は職員が確認し、今後の回答づくりに役立てます。"
        f"{contact}\n下の分類から探すこともできます。"
    )
    return [text(body, category_buttons(reply.categories))]


def menu_messages(categories: tuple[tuple[str, str], ...], page: int = 0) -> list[dict[str, Any]]:
    """One page of the category menu."""
    pages = category_pages(len(categories))
    where = f"（{page + 1}/{pages}）" if pages > 1 else ""
    return [text(f"知りたいことの分類を選んでください{where}。", category_buttons(categories, page))]


def help_messages(reply: FaqReply) -> list[dict[str, Any]]:
    """How to use the bot."""
    city = reply.city_name or "市"
    return [text(
        f"{city}公式LINEの使い方\n"
        "・知りたいことを文章で送ってください（例：「マイナンバーカードの暗証番号を忘れた」）。\n"
        "・「メニュー」で分類から探せます。\n"
        "・答えが合っていなかったら「いいえ」を押してください。職員が改善します。",
        category_buttons(reply.categories),
    )]


def entry_list_messages(entries: list[EntryView], label: str, category: str = "", page: int = 0) -> list[dict[str, Any]]:
    """One page of a category's entries as buttons (as many per page as the category menu, so the
    row fits a phone), then 「ほかの質問」 to the next page: every entry is reachable, none dropped."""
    if not entries:
        return [text("この分類の質問はまだありません。")]
    pages = category_pages(len(entries))
    start = page * CATEGORIES_PER_PAGE
    buttons = [postback_button(e.title, {"a": "show", "t": e.entry_id}, e.title)
               for e in entries[start : start + CATEGORIES_PER_PAGE]]
    where = ""
    if pages > 1:
        buttons.append(postback_button(MORE_ENTRIES, {"a": "cat", "c": category, "p": (page + 1) % pages}, MORE_ENTRIES))
        where = f"（{page + 1}/{pages}）"
    return [text(f"「{label}」のよくある質問です{where}。知りたいものを選んでください。", buttons)]


SMALLTALK_TEXT = {
    "greeting": "こんにちは。{city}公式LINEです。手続きや暮らしのことを、文章で気軽に質問してください。",
    "thanks": "どういたしまして。ほかにも知りたいことがあれば、いつでも送ってください。",
    "chat": "お話ししてくれてありがとうございます。このLINEでは{city}の手続きや暮らしの情報にお答えしています。"
            "知りたいことを文章で送ってください（例：住民票をコンビニで取りたい）。",
}


def faq_reply_messages(reply: FaqReply) -> list[dict[str, Any]]:
    """All messages for one FAQ outcome."""
    if reply.decision == "answer" and reply.entry is not None:
        return answer_messages(reply.entry, reply.log_id)
    if reply.decision == "clarify" and reply.candidates:
        return clarify_messages(reply)
    if reply.decision == "smalltalk":
        if reply.smalltalk == "menu":
            return menu_messages(reply.categories)
        if reply.smalltalk == "help":
            return help_messages(reply)
        return [text(SMALLTALK_TEXT[reply.smalltalk or "greeting"].format(city=reply.city_name or "市"))]
    return unknown_messages(reply)
