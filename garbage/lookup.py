"""Item lookup: what a resident typed -> the dictionary's item (a pure function of the index).

A question is split into the item phrase and the words that make it a garbage question (「何ごみ」,
「捨て方」, 「分別」, 「出し方」, a separate 「ごみ」 ...). The phrase and every item name (its aliases
in 「（）」 and 「・」 too) are compared in their normalised form and their hiragana reading, long
vowel marks dropped, by rapidfuzz: WRatio (which tolerates a typo and a part of a longer name)
blended with plain ratio (so the closer-length name wins a tie).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from garbage import text

CUE_THRESHOLD = 70.0  # with a garbage word (「何ごみ」...): best score needed to answer
STRONG_THRESHOLD = 92.0  # without one: the text must be an item name, nearly exactly
STRONG_MAX_CHARS = 15  # ... and short (a sentence is a question for the FAQ)
CANDIDATES = 40

# Words that make a message a question about throwing something away (an unknown item then goes to
# the review queue), and words that only do so together with a known item (「出し方」 is also how
# one submits a form).
_CUES = re.compile(
    r"(何|なに|なん|どの|どんな)(の)?(ごみ|ゴミ)|捨て方|すてかた|捨てかた|分別|ぶんべつ|分け方|わけかた|"
    r"処分(方法|の仕方|のしかた|したい|する)?|捨てたい|すてたい|捨てる|すてる|捨てれ|捨てます"
)
_WEAK_CUES = re.compile(r"出し方|だしかた|出しかた|出したい|出せる|出せます|(何|なん)曜日?|いつ出す?")
# 「ごみ」 as a word of its own (「ふとん ごみ」, 「電池のごみ」), not inside a name (生ごみ, 粗大ごみ).
_GOMI_WORD = re.compile(r"(^|[\sのはを])(ごみ|ゴミ)(?=$|[\sはの?？。、])")
_FILLERS = re.compile(
    r"(を|は)?(教えて(ください|下さい)?|知りたい(です)?|について|ですか|でしょうか|ますか|ですが|です|って|か)$"
)
_TRAILING = re.compile(r"(は|を|の|も|って|とか|など|等|類|たち|達|ら|とかは)$")
_LEADING = re.compile(r"^(この|その|あの|古い|ふるい|いらない|要らない|不要な|使わない|使わなくなった|壊れた|こわれた|割れてない)")
_NOISE = re.compile(r"[\s?？!！。、,.．「」『』・/／]+")
_PARENS = re.compile(r"[（(]([^）)]*)[）)]")
_ALIAS_SPLIT = re.compile(r"[・／/、,]")
_GENERIC = {"ごみ", "ゴミ", "ごみの", "家庭ごみ", "ごみぶくろ", "ごみ袋", "資源", "資源ごみ", "粗大ごみ", "不燃ごみ", "可燃ごみ"}


@dataclass(frozen=True)
class Question:
    """What the resident asked: the item phrase and whether a garbage word came with it."""

    phrase: str
    has_cue: bool  # a word that makes it a garbage question on its own
    has_weak_cue: bool = False  # a word that does so only with a known item


@dataclass(frozen=True)
class ItemRecord:
    """An item as the lookup sees it (plain data, no session)."""

    id: int
    name: str
    kana: str
    category: str
    notes: str
    remarks: str


@dataclass(frozen=True)
class Match:
    """An item and how well the phrase matched it (0-100)."""

    item: ItemRecord
    score: float


def parse_question(message: str) -> Question:
    """Split a message into the item phrase and whether it carried a garbage word."""
    value = unicodedata.normalize("NFKC", message).strip()
    has_cue = bool(_CUES.search(value) or _GOMI_WORD.search(value))
    has_weak_cue = bool(_WEAK_CUES.search(value))
    value = _WEAK_CUES.sub(" ", _CUES.sub(" ", value))
    value = _GOMI_WORD.sub(r"\1 ", value)
    phrase = _NOISE.sub(" ", value).strip()
    for _ in range(4):  # 「ペットボトルは何ごみですか」 -> 「ペットボトル」
        before = phrase
        phrase = _FILLERS.sub("", phrase).strip()
        phrase = _TRAILING.sub("", phrase).strip()
        phrase = _LEADING.sub("", phrase).strip()
        if phrase == before:
            break
    return Question(phrase.replace(" ", ""), has_cue, has_weak_cue)


def is_generic(phrase: str, categories: Sequence[str] = ()) -> bool:
    """A phrase naming garbage in general or a whole category (「粗大ごみ」): the FAQ's question."""
    key = _key(phrase)
    return not key or phrase in _GENERIC or key in {_key(g) for g in (*_GENERIC, *categories)}


def _key(value: str) -> str:
    """The compared form: normalised, kana folded, no spaces or long-vowel marks."""
    return re.sub(r"[\sー\-・]", "", text.normalize(value))


def aliases(name: str) -> list[str]:
    """The names an item answers to: the whole name, without its 「（）」, what is inside them, and
    each part of 「A・B」."""
    found = [name, _PARENS.sub("", name)]
    found += _PARENS.findall(name)
    for part in list(found):
        found += _ALIAS_SPLIT.split(part)
    return [a.strip() for a in dict.fromkeys(found) if a.strip()]


def keys_of(name: str, kana: str = "") -> list[str]:
    """Every compared form of an item: each alias and its reading, and the カナ column."""
    keys = []
    for alias in aliases(name):
        keys.append(_key(alias))
        keys.append(_key(text.reading(alias)))
    if kana:
        keys.append(_key(kana))
    return [k for k in dict.fromkeys(keys) if k]


def query_keys(phrase: str) -> list[str]:
    """The compared forms of what the resident typed (as written and as read)."""
    return [k for k in dict.fromkeys((_key(phrase), _key(text.reading(phrase)))) if k]


class ItemIndex:
    """The dictionary's items with their compared forms, built once per import."""

    def __init__(self, items: Sequence[ItemRecord]) -> None:
        self.items = list(items)
        self.keys: list[str] = []
        self.owners: list[int] = []
        for position, item in enumerate(self.items):
            for key in keys_of(item.name, item.kana):
                self.keys.append(key)
                self.owners.append(position)
        self.categories = tuple(dict.fromkeys(item.category for item in self.items))

    def __len__(self) -> int:
        return len(self.items)

    def search(self, phrase: str, limit: int = 3) -> list[Match]:
        """The best items for a phrase, best first (empty when nothing is close)."""
        best: dict[int, float] = {}
        for query in query_keys(phrase):
            for key, wratio, index in process.extract(query, self.keys, scorer=fuzz.WRatio, limit=CANDIDATES,
                                                      score_cutoff=50):
                score = 0.7 * wratio + 0.3 * fuzz.ratio(query, key) + (1.0 if key == query else 0.0)
                owner = self.owners[index]
                if score > best.get(owner, 0.0):
                    best[owner] = score
        ranked = sorted(best.items(), key=lambda pair: (-pair[1], len(self.items[pair[0]].name)))
        return [Match(self.items[owner], min(100.0, round(score, 1))) for owner, score in ranked[:limit]]

    def is_generic(self, phrase: str) -> bool:
        """A phrase naming garbage in general or one of the dictionary's categories."""
        return is_generic(phrase, self.categories)

    def recognise(self, message: str) -> tuple[Question, Match | None]:
        """The question and its item when it is a garbage question about one: with a garbage word and
        a match of CUE_THRESHOLD, or without one for a short text matching STRONG_THRESHOLD."""
        question = parse_question(message)
        if is_generic(question.phrase, self.categories):
            return question, None
        cued = question.has_cue or question.has_weak_cue
        if not cued and len(question.phrase) > STRONG_MAX_CHARS:
            return question, None
        matches = self.search(question.phrase, limit=1)
        needed = CUE_THRESHOLD if cued else STRONG_THRESHOLD
        if matches and matches[0].score >= needed:
            return question, matches[0]
        return question, None
