"""What a notice says: text, optionally an image, or a card with a link button, as LINE messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from broadcast.errors import NoticeError

TEXT, IMAGE, CARD = "text", "image", "card"
KINDS = (TEXT, IMAGE, CARD)
KIND_LABELS = {TEXT: "テキスト", IMAGE: "テキスト＋画像", CARD: "カード（リンクボタン付き）"}
MAX_TEXT_UTF16 = 5000  # LINE's limit for a text message
MAX_CARD_TEXT = 1000  # a card is read at a glance; longer notices belong in a text message
MAX_CARD_TITLE = 40
MAX_BUTTON_LABEL = 20
MAX_IMAGE_URL = 2000  # LINE: image URLs up to 2000 characters
MAX_LINK_URL = 1000  # LINE: URI action up to 1000 characters
MAX_ALT_TEXT = 400  # LINE allows 1500; the notification preview shows far less
MAX_TITLE = 100
LINE_GREEN = "#06C755"


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _check_url(url: str, what: str, limit: int) -> None:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise NoticeError(f"{what}は https:// で始まるURLを指定してください。")
    if len(url) > limit or any(c.isspace() for c in url):
        raise NoticeError(f"{what}が長すぎるか、空白を含んでいます（{limit}文字まで）。")


@dataclass(frozen=True)
class NoticeContent:
    """What staff wrote; `to_messages` turns it into LINE message objects."""

    kind: str
    text: str
    image_url: str | None = None  # IMAGE: the picture; CARD: an optional picture on top
    card_title: str | None = None
    button_label: str | None = None
    button_url: str | None = None

    def validate(self) -> None:
        """Raise NoticeError (Japanese) unless LINE would accept the messages."""
        if self.kind not in KINDS:
            raise NoticeError(f"メッセージの種類「{self.kind}」が分かりません。")
        if not self.text.strip():
            raise NoticeError("本文を入力してください。")
        if self.kind == CARD:
            if len(self.text) > MAX_CARD_TEXT:
                raise NoticeError(f"カードの本文は{MAX_CARD_TEXT}文字以内にしてください（長いお知らせはテキストで送ってください）。")
            if self.card_title and len(self.card_title) > MAX_CARD_TITLE:
                raise NoticeError(f"カードの見出しは{MAX_CARD_TITLE}文字以内にしてください。")
            if not self.button_label or not self.button_label.strip():
                raise NoticeError("ボタンの文言を入力してください。")
            if len(self.button_label) > MAX_BUTTON_LABEL:
                raise NoticeError(f"ボタンの文言は{MAX_BUTTON_LABEL}文字以内にしてください。")
            _check_url(self.button_url or "", "ボタンのリンク先", MAX_LINK_URL)
            if self.image_url:
                _check_url(self.image_url, "画像のURL", MAX_IMAGE_URL)
        else:
            if _utf16_len(self.text) > MAX_TEXT_UTF16:
                raise NoticeError(f"本文は{MAX_TEXT_UTF16}文字以内にしてください。")
            if self.kind == IMAGE:
                _check_url(self.image_url or "", "画像のURL", MAX_IMAGE_URL)

    @property
    def alt_text(self) -> str:
        """What the notification and the chat list show for a card."""
        base = self.card_title or self.text
        base = " ".join(base.split())
        return base if len(base) <= MAX_ALT_TEXT else base[: MAX_ALT_TEXT - 1] + "…"

    @property
    def summary(self) -> str:
        """The first line, shortened (lists)."""
        line = (self.card_title or self.text).strip().splitlines()[0] if (self.card_title or self.text).strip() else ""
        return line if len(line) <= 40 else line[:39] + "…"

    def to_messages(self) -> list[dict[str, Any]]:
        """LINE message objects (camelCase dicts), at most 2."""
        if self.kind == TEXT:
            return [{"type": "text", "text": self.text}]
        if self.kind == IMAGE:
            assert self.image_url
            return [
                {"type": "text", "text": self.text},
                {"type": "image", "originalContentUrl": self.image_url, "previewImageUrl": self.image_url},
            ]
        body: list[dict[str, Any]] = []
        if self.card_title:
            body.append({"type": "text", "text": self.card_title, "weight": "bold", "size": "lg", "wrap": True})
        body.append({"type": "text", "text": self.text, "size": "sm", "wrap": True, "color": "#333333"})
        bubble: dict[str, Any] = {
            "type": "bubble",
            "body": {"type": "box", "layout": "vertical", "spacing": "md", "contents": body},
            "footer": {
                "type": "box",
                "layout": "vertical",
                "contents": [
                    {
                        "type": "button",
                        "style": "primary",
                        "color": LINE_GREEN,
                        "action": {"type": "uri", "label": self.button_label, "uri": self.button_url},
                    }
                ],
            },
        }
        if self.image_url:
            bubble["hero"] = {
                "type": "image", "url": self.image_url, "size": "full", "aspectRatio": "20:13", "aspectMode": "cover",
            }
        return [{"type": "flex", "altText": self.alt_text, "contents": bubble}]

    def to_dict(self) -> dict[str, Any]:
        """JSON form stored on the notice (only the fields its kind uses)."""
        data: dict[str, Any] = {"kind": self.kind, "text": self.text}
        if self.kind in (IMAGE, CARD) and self.image_url:
            data["image_url"] = self.image_url
        if self.kind == CARD:
            data.update(card_title=self.card_title or "", button_label=self.button_label, button_url=self.button_url)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NoticeContent:
        """Parse the stored form."""
        return cls(
            kind=str(data.get("kind", TEXT)),
            text=str(data.get("text", "")),
            image_url=data.get("image_url") or None,
            card_title=data.get("card_title") or None,
            button_label=data.get("button_label") or None,
            button_url=data.get("button_url") or None,
        )

    @classmethod
    def build(
        cls,
        text: str,
        image_url: str | None = None,
        card_title: str | None = None,
        button_label: str | None = None,
        button_url: str | None = None,
        kind: str | None = None,
    ) -> NoticeContent:
        """From loose inputs (CLI flags, form fields): a link button makes a card, an image alone an image."""
        text = text.replace("\r\n", "\n").strip()
        clean = {k: (v.strip() or None) if isinstance(v, str) else None for k, v in
                 {"image_url": image_url, "card_title": card_title, "button_label": button_label, "button_url": button_url}.items()}
        if kind is None:
            kind = CARD if clean["button_url"] or clean["button_label"] else IMAGE if clean["image_url"] else TEXT
        if kind == TEXT:
            clean = dict.fromkeys(clean)
        elif kind == IMAGE:
            clean.update(card_title=None, button_label=None, button_url=None)
        content = cls(kind=kind, text=text, **clean)
        content.validate()
        return content
