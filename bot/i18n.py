"""Residents' languages: the codes, the city's list, and the bot's messages from Babel catalogs.

Messages to residents are Japanese in the code (the msgid) and translated from
bot/translations/<lang>/LC_MESSAGES/messages.po, read with Babel once at first use (no compile
step). A message a catalog lacks is sent in Japanese with a one-line note in the resident's
language (never empty). Language "ja" and None (not chosen) are Japanese.
"""

from __future__ import annotations

import functools
import re
import string
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# Every language the bot can speak, in the order residents see them offered; the name is how the
# language calls itself (what the quick-reply button shows).
LANGUAGES: dict[str, str] = {
    "ja": "日本語",
    "ja-easy": "やさしい日本語",
    "en": "English",
    "pt": "Português",
    "vi": "Tiếng Việt",
    "zh": "中文",
    "fil": "Filipino",
}
DEFAULT_LANGUAGE = "ja"
DEFAULT_LANGUAGES = ",".join(LANGUAGES)
TRANSLATED = tuple(code for code in LANGUAGES if code != DEFAULT_LANGUAGE)
CATALOG_DIR = Path(__file__).resolve().parent / "translations"


def parse_languages(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """The city's setting LANGUAGES ("ja,en,pt") as codes in the order given, ja always included.

    Raises ValueError naming an unknown code.
    """
    if value is None:
        value = DEFAULT_LANGUAGES
    items = value.split(",") if isinstance(value, str) else list(value)
    codes: list[str] = []
    for raw in items:
        code = raw.strip()
        if not code:
            continue
        if code not in LANGUAGES:
            raise ValueError(f"unknown language {code!r}; expected some of {', '.join(LANGUAGES)}")
        if code not in codes:
            codes.append(code)
    if DEFAULT_LANGUAGE not in codes:
        codes.insert(0, DEFAULT_LANGUAGE)
    return tuple(codes)


def city_languages(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The languages this city offers (config LANGUAGES, checked at start by bot.config)."""
    return parse_languages(config.get("LANGUAGES"))


def normalize(code: str | None) -> str:
    """A stored language code as one the bot speaks ("ja" for None or an unknown code)."""
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def N_(msgid: str) -> str:
    """Marks a Japanese message kept in a constant for extraction; translate it where it is sent."""
    return msgid


# The note added to a message a catalog lacks, and its own last resort (no catalog has it).
MISSING_NOTE = N_("（このメッセージは日本語だけです）")
_LAST_RESORT_NOTE = "(Japanese only)"


class _Catalogs:
    """The .po catalogs, read with Babel once (per process) and kept as msgid -> text."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._loaded: dict[str, dict[str, str]] = {}

    def get(self, language: str) -> dict[str, str]:
        if language not in self._loaded:
            with self._lock:
                if language not in self._loaded:
                    self._loaded[language] = read_catalog(self.directory, language)
        return self._loaded[language]


def catalog_path(directory: Path, language: str) -> Path:
    """bot/translations/<lang>/LC_MESSAGES/messages.po."""
    return directory / language / "LC_MESSAGES" / "messages.po"


def read_catalog(directory: Path, language: str) -> dict[str, str]:
    """A language's translations (msgid -> text); empty and fuzzy entries are left out."""
    from babel.messages.pofile import read_po

    path = catalog_path(directory, language)
    if not path.is_file():
        return {}
    with path.open("rb") as f:
        catalog = read_po(f, abort_invalid=True)
    return {str(m.id): str(m.string) for m in catalog
            if m.id and isinstance(m.id, str) and isinstance(m.string, str) and m.string.strip() and not m.fuzzy}


CATALOGS = _Catalogs(CATALOG_DIR)


def _fill(template: str, values: Mapping[str, Any]) -> str:
    return template.format_map(values) if values else template


def placeholders(message: str) -> set[str]:
    """The {names} of a message (what its translations must keep)."""
    return {name for _, name, _, _ in string.Formatter().parse(message) if name}


def lookup(msgid: str, language: str | None) -> str | None:
    """The raw translation of a message, None when the language has none (Japanese: the msgid)."""
    language = normalize(language)
    if language == DEFAULT_LANGUAGE:
        return msgid
    return CATALOGS.get(language).get(msgid)


def translate(msgid: str, language: str | None, /, **values: Any) -> str:
    """A message to a resident in their language, placeholders filled; a message the catalog lacks
    is the Japanese with a one-line note in their language (never empty)."""
    found = lookup(msgid, language)
    if found is not None:
        return _fill(found, values)
    note = lookup(MISSING_NOTE, language) or _LAST_RESORT_NOTE
    return f"{_fill(msgid, values)}\n{note}"


def label(msgid: str, language: str | None, /, **values: Any) -> str:
    """A short text (a button label, a list item): the translation, else the Japanese without a note."""
    found = lookup(msgid, language)
    return _fill(found if found is not None else msgid, values)


class Translator:
    """translate()/label() bound to one resident's language: `t("…{city}…", city=name)`."""

    def __init__(self, language: str | None = None) -> None:
        self.language = normalize(language)

    def __call__(self, msgid: str, /, **values: Any) -> str:
        return translate(msgid, self.language, **values)

    def label(self, msgid: str, /, **values: Any) -> str:
        return label(msgid, self.language, **values)

    @property
    def is_japanese(self) -> bool:
        return self.language == DEFAULT_LANGUAGE

    def __repr__(self) -> str:
        return f"Translator({self.language!r})"


JAPANESE = Translator(DEFAULT_LANGUAGE)


def command_msgid(text: str, commands: Iterable[str]) -> str | None:
    """The Japanese command (msgid) a resident's text is in any language (「Settings」 -> 「設定」),
    compared without case; None when it is none of them."""
    wanted = text.strip().casefold()
    for language in TRANSLATED:
        catalog = CATALOGS.get(language)
        for msgid in commands:
            found = catalog.get(msgid)
            if found is not None and found.strip().casefold() == wanted:
                return msgid
    return None


# --- detecting the language of a resident's text -------------------------------------------------

_KANA = re.compile(r"[\u3040-\u30ff\uff66-\uff9f]")
_HIRAGANA = re.compile(r"[\u3040-\u309f]")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_JA_WORD = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fffー]+")
_LATIN_WORD = re.compile(r"[^\W\d_]{2,}")
# Letters only Vietnamese uses among the offered languages (đ ă ơ ư and the dotted/hooked vowels).
_VIETNAMESE = re.compile(r"[đĐăĂơƠưƯ\u1ea0-\u1ef9]")
# Characters of simplified Chinese that Japanese does not write (or writes in other forms), and
# Chinese function words: a text of Han characters only is Chinese when it has one of them.
_CHINESE = re.compile(
    "[们这么吗呢吧怎办证请问哪里没个什给说该区县还过为门东车书长见现发对开关时间电话费学会样边网"
    "从认让应该么啊嘛呀哪谁很都也就要能可以想找帮助护照签证户籍税务垃圾搬家医院儿孩童养]"
)
_LIBRARY_CODES = {"en": "en", "pt": "pt", "vi": "vi", "tl": "fil", "fil": "fil"}


def _japanese_kind(text: str) -> str:
    """ja-easy for plain Japanese as newcomers write it: mostly hiragana, words parted by spaces."""
    words = _JA_WORD.findall(text)
    letters = "".join(words)
    hiragana = len(_HIRAGANA.findall(letters))
    if len(words) >= 3 and hiragana >= 0.6 * len(letters):
        return "ja-easy"
    return "ja"


@functools.lru_cache(maxsize=1)
def _identifier() -> Any:
    """py3langid restricted to the Latin-script languages the rules leave to it (model loaded once)."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(["en", "pt", "vi", "tl"])
    return identifier


def detect_language(text: str, offered: Iterable[str] = tuple(LANGUAGES)) -> str | None:
    """The language a resident wrote in, among `offered`; None when the text is too short or unclear.

    Script rules first (kana: Japanese or やさしい日本語; Han only: Chinese when a character Japanese
    does not use is there, else Japanese; Vietnamese letters), then py3langid for the rest of Latin
    text (English, Portuguese, Filipino, Vietnamese typed without marks). docs/dependencies.md has
    the measurement behind the choice.
    """
    offered = tuple(offered)
    sample = text.strip()[:500]
    if _KANA.search(sample):
        found = _japanese_kind(sample)
    elif _HAN.search(sample):
        found = "zh" if _CHINESE.search(sample) else "ja"
    elif _VIETNAMESE.search(sample):
        found = "vi"
    else:
        words = _LATIN_WORD.findall(sample)
        if len(words) < 2:  # 「ok」「hi」, a name: not enough to tell
            return None
        code, probability = _identifier().classify(sample.lower())
        found = _LIBRARY_CODES.get(code)
        if found is None or probability < 0.6:
            return None
    if found == "ja-easy" and "ja-easy" not in offered:
        found = "ja"
    return found if found in offered else None


# --- the messages the code sends (for the catalogs and their test) --------------------------------

_CALLS = {"t", "N_", "translate", "label"}


def extract_messages(paths: Iterable[Path]) -> dict[str, list[str]]:
    """Japanese msgids in source files -> where they are ("path:line"): the string literal first
    argument of t(…), ctx.t(…), t.label(…), Translator(…)(…), translate(…), label(…) and N_(…)."""
    import ast

    found: dict[str, list[str]] = {}
    for path in paths:
        tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            named = (isinstance(func, ast.Name) and func.id in _CALLS) or (
                isinstance(func, ast.Attribute) and func.attr in ("t", "label")) or (
                isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "Translator")
            first = node.args[0]
            if named and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.setdefault(first.value, []).append(f"{Path(path).as_posix()}:{node.lineno}")
    return found


def message_sources(root: Path) -> list[Path]:
    """The files whose messages reach residents: the handlers, the FAQ's answer note, and the
    features' texts outside handlers/ (garbage's chat and reminders, reports' categories and status
    pushes, a survey's invitation in a notice, the disaster hazards and shelter kinds)."""
    features = ["garbage/texts.py", "reports/texts.py", "surveys/service.py", "disaster/hazards.py", "disaster/models.py",
                "bot/japanese_note.py"]
    return sorted([*(root / "handlers").glob("*.py"), root / "faq" / "translations.py",
                   *(root / name for name in features)])

