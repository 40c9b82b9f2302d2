"""Questions in residents' foreign languages, matched against the entries' translations (issue 17).

A second matcher index per city, built only from the translations into the languages written in
another script or vocabulary than Japanese (FOREIGN: en, pt, vi, zh, fil; やさしい日本語 is Japanese
and stays with the main index). Each entry's translations in all those languages form one entry of
that index (title, question and alternates of each language as its phrasings), so its id is the
Japanese entry's id and a match needs no mapping back.

A question detected in one of FOREIGN is matched against both indexes (the embedding is
multilingual, so the Japanese index also ranks a foreign question): the translation index's
decision is taken when it answers or asks 「もしかして」, else the Japanese index's. Japanese
questions never reach the translation index.

The translation index also holds the out-of-scope matters of faq/kb/out-of-scope/<lang>.yaml: how
residents ask, in each foreign language, about what the city does not handle (visas and re-entry
permits, driving licences, embassies, the national pension refund, employers, landlords, banks). A
question whose best match is one of them, clearly ahead of the city's entries, is not answered and
not offered an entry (「お答えできません」 in the resident's language, logged as unanswered); nearly
tied, the city's entries are offered (outside). They are never shown as candidates.

A third index per city holds the やさしい日本語 translations (titles, questions and alternates as
newcomers write them), with the Japanese index's model. A question detected as やさしい日本語 is
decided by the Japanese index first; only when that does not answer directly does the やさしい日本語
index's direct answer take its place. A question the Japanese index answers is answered as before.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import zip_longest
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from bot.i18n import city_languages, detect_language
from faq import importer
from faq.decision import Signals, load_foreign_model
from faq.freshness import StampedCache
from faq.matcher import Candidate, Decision, MatcherIndex, Params, Thresholds
from faq.models import FaqEntry, FaqTranslation

log = logging.getLogger(__name__)

# Languages whose questions are matched against the translation index.
FOREIGN = ("en", "pt", "vi", "zh", "fil")
EASY = ("ja-easy",)  # the やさしい日本語 index's one language

# Decision rule of the translation index: None = the calibrated decision (faq/decision.py), whose
# answer head for foreign questions is the foreign model (FOREIGN_MODEL_PATH, fitted by
# bench/fit-foreign-decision on the tuning sets faq/eval/tune-*, tune2-*, tune-offtopic-*); its offer
# head («もしかして» or not) is the Japanese one's.
THRESHOLDS: Thresholds | None = None

# Ranking of the translation index: multilingual-e5-small (faq.embed.E5Embedder) instead of USE v3,
# which was not trained on Vietnamese or Filipino; each phrasing kept apart ("max": a Vietnamese
# question meets the Vietnamese phrasing, not a centroid of five languages); e5's cosines of
# unrelated sentences sit near 0.8, hence the floor. Chosen on faq/eval/tune-<lang>.tsv only
# (docs/benchmarks.md, 「外国語の質問」): one step 78.1% (USE, mean) -> 87.6% (e5, max, 0.80).
PARAMS = Params(embed_model="e5", embed_pool="max", embed_floor=0.80)
# The やさしい日本語 index ranks Japanese: the Japanese index's model and parameters. On
# faq/eval/tune-ja-easy.tsv, asking it when the Japanese index does not answer raised one step from
# 57 to 64 of 84 with no off-topic question answered (docs/benchmarks.md, 「外国語の質問」).
EASY_PARAMS = Params()


@dataclass(frozen=True)
class TranslatedEntry:
    """One entry as the translation index sees it: all its foreign translations as phrasings."""

    id: str
    title: str
    question: str
    alternates: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    answer: str = ""
    category: str = ""


def translated_entries(translations: Iterable[Any], known_ids: Iterable[str] | None = None,
                       languages: tuple[str, ...] = FOREIGN) -> list[TranslatedEntry]:
    """Group translations (objects with entry_id, language, title, question, alternates) by entry id
    into one TranslatedEntry each, of `languages` only, in a stable order."""
    known = set(known_ids) if known_ids is not None else None
    grouped: dict[str, dict[str, Any]] = {}
    for t in translations:
        if t.language not in languages or (known is not None and t.entry_id not in known):
            continue
        grouped.setdefault(t.entry_id, {})[t.language] = t
    entries = []
    for entry_id in sorted(grouped):
        by_lang = [grouped[entry_id][code] for code in languages if code in grouped[entry_id]]
        first, rest = by_lang[0], by_lang[1:]
        phrasings: list[str] = list(first.alternates or ())
        for t in rest:
            phrasings += [t.question, t.title, *(t.alternates or ())]
        entries.append(TranslatedEntry(
            id=entry_id, title=first.title, question=first.question,
            alternates=tuple(dict.fromkeys(p.strip() for p in phrasings if p and p.strip())),
        ))
    return entries


OUT_OF_SCOPE_DIR = Path(__file__).resolve().parent / "kb" / "out-of-scope"
OUT_OF_SCOPE = "out-of-scope:"  # id prefix of an out-of-scope matter in the translation index


def is_out_of_scope(entry_id: str | None) -> bool:
    """True for the id of an out-of-scope matter (never a city's entry)."""
    return bool(entry_id) and str(entry_id).startswith(OUT_OF_SCOPE)


@functools.lru_cache(maxsize=8)
def out_of_scope_entries(languages: tuple[str, ...] = FOREIGN, directory: Path = OUT_OF_SCOPE_DIR) -> tuple[TranslatedEntry, ...]:
    """One entry per out-of-scope matter, with its phrasings in `languages` (those with a file).
    A file must be a list of {id, phrasings: [text, ...]}; anything else raises ValueError naming it."""
    phrasings: dict[str, list[str]] = {}
    for language in languages:
        path = directory / f"{language}.yaml"
        if not path.is_file():
            continue
        items = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(items, list):
            raise ValueError(f"{path.name}: a list of {{id, phrasings}} is expected")
        for n, item in enumerate(items, start=1):
            if (not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]
                    or not isinstance(item.get("phrasings"), list)
                    or not all(isinstance(t, str) and t.strip() for t in item["phrasings"])):
                raise ValueError(f"{path.name}: item {n} needs an id and a list of non-empty phrasings")
            phrasings.setdefault(item["id"], []).extend(t.strip() for t in item["phrasings"])
    entries = []
    for matter, texts in sorted(phrasings.items()):
        unique = list(dict.fromkeys(texts))
        entries.append(TranslatedEntry(id=OUT_OF_SCOPE + matter, title=matter, question=unique[0],
                                       alternates=tuple(unique[1:])))
    return tuple(entries)


def build_index(entries: Sequence[TranslatedEntry], languages: tuple[str, ...] = FOREIGN,
                **build_args: Any) -> MatcherIndex | None:
    """The translation index of `languages` (None when the city has no such translations), with the
    out-of-scope matters of those languages beside the city's entries."""
    build_args.setdefault("params", EASY_PARAMS if languages == EASY else PARAMS)
    if not entries:
        return None
    return MatcherIndex.build([*entries, *out_of_scope_entries(languages)], **build_args)


# An out-of-scope matter ranked first by at least this much over the best city entry is 「お答えできません」;
# closer, the question also names a city procedure (a tax certificate for a visa renewal, an address
# change on the residence card), so the city's entries are offered instead. Chosen on the tuning sets
# (bench/fit-foreign-decision prints how many questions each way): at 0.05, 20 of 1,350 in-scope tuning
# questions are refused and 332 of 382 must-not-answer ones that met a matter first; at 0, 39 and 382.
OUT_OF_SCOPE_MARGIN = 0.05


def outside(decision: Decision) -> Decision:
    """A decision whose best match is an out-of-scope matter: 「お答えできません」 with nothing to
    offer, or 「もしかして」 with the city's entries when one is nearly as close; otherwise the
    decision without any out-of-scope candidate."""
    kept = tuple(c for c in decision.candidates if not is_out_of_scope(c.entry_id))
    if decision.candidates and is_out_of_scope(decision.candidates[0].entry_id):
        if not kept or decision.candidates[0].score - kept[0].score >= OUT_OF_SCOPE_MARGIN:
            return Decision("unknown", None, decision.score, ())
        return Decision("clarify", None, decision.score, kept)
    return decision if len(kept) == len(decision.candidates) else replace(decision, candidates=kept)


def combine(translated: Decision | None, japanese: Callable[[], Decision]) -> Decision:
    """The translation index's answer; its 「もしかして」 with the Japanese index's best candidates
    interleaved (only 20 topics are translated: the right one may be among the Japanese index's);
    else the Japanese index's decision."""
    if translated is not None and translated.kind == "answer":
        return translated
    if translated is not None and translated.kind == "clarify":
        own = japanese().candidates
        merged: list[Candidate] = []
        for pair in zip_longest(translated.candidates, own):
            for candidate in pair:
                if candidate is not None and candidate.entry_id not in {c.entry_id for c in merged}:
                    merged.append(candidate)
        return replace(translated, candidates=tuple(merged[: max(len(translated.candidates), 3)]))
    return japanese()


def decide(index: MatcherIndex | None, text: str, language: str | None, japanese: Callable[[], Decision],
           thresholds: Thresholds | None = THRESHOLDS, easy: MatcherIndex | None = None) -> Decision:
    """The decision for a question in `language`: a foreign one against the translation index
    `index` (combine), やさしい日本語 against the Japanese index and then the やさしい日本語 index
    `easy`, anything else against the Japanese index alone."""
    if language in EASY:
        decision = japanese()
        if decision.kind == "answer" or easy is None:
            return decision
        own = easy.match(text)
        return own if own.kind == "answer" else decision
    if language not in FOREIGN or index is None:
        return japanese()
    ja = japanese()
    foreign = load_foreign_model() if index.embeddings is not None else None
    if foreign is None:  # no fitted foreign model (or no embeddings): the Japanese decision model alone
        return _with_out_of_scope(index.match(text, thresholds), ja)

    def head(signals: Signals, best: Candidate) -> float:
        agree = bool(ja.candidates) and ja.candidates[0].entry_id == best.entry_id
        return foreign.prob(signals, agree, ja.score)

    return _with_out_of_scope(index.match(text, thresholds, foreign.threshold(language or ""), head), ja)


def _with_out_of_scope(translated: Decision, ja: Decision) -> Decision:
    """combine() after outside(); a question refused as out of scope is not the Japanese index's to answer."""
    checked = outside(translated)
    if checked.kind == "unknown" and translated.candidates and is_out_of_scope(translated.candidates[0].entry_id):
        return checked
    return combine(checked, lambda: ja)


# --- per city, from the database -----------------------------------------------------------------

def _stamp(session: Session, municipality: str, languages: tuple[str, ...]) -> tuple[Any, ...] | None:
    """The published entries' fingerprint and the translations' count and newest change."""
    if importer.publishing(session, municipality):
        return None
    entries = session.execute(
        select(func.count(FaqEntry.id), func.max(FaqEntry.updated_at), func.sum(FaqEntry.id)).where(
            FaqEntry.municipality == municipality, FaqEntry.is_published.is_(True))
    ).one()
    translations = session.execute(
        select(func.count(FaqTranslation.id), func.max(FaqTranslation.updated_at), func.sum(FaqTranslation.id))
        .join(FaqEntry, FaqEntry.id == FaqTranslation.entry_id)
        .where(FaqEntry.municipality == municipality, FaqTranslation.language.in_(languages))
    ).one()
    return (*tuple(entries), *tuple(translations))


def _build(session: Session, municipality: str, languages: tuple[str, ...]) -> MatcherIndex | None:
    from faq.service import EMBEDDING_CACHE_DIR  # faq.service imports this module

    rows = session.execute(
        select(FaqEntry.entry_id, FaqTranslation)
        .join(FaqEntry, FaqEntry.id == FaqTranslation.entry_id)
        .where(FaqEntry.municipality == municipality, FaqEntry.is_published.is_(True),
               FaqTranslation.language.in_(languages))
    ).all()
    translations = [_Row(entry_id, t.language, t.title, t.question, tuple(t.alternates or ())) for entry_id, t in rows]
    entries = translated_entries(translations, languages=languages)
    index = build_index(entries, languages, cache_dir=EMBEDDING_CACHE_DIR)
    log.info("FAQ translation index built: municipality=%s languages=%s entries=%d", municipality,
             ",".join(languages), len(entries))
    return index


@dataclass(frozen=True)
class _Row:
    entry_id: str
    language: str
    title: str
    question: str
    alternates: tuple[str, ...]


# Translation indexes in this process, one per (database, city), rebuilt when the published
# entries or their translations change (staff edits in the workbench, `faq load`).
TRANSLATION_INDEXES: StampedCache[MatcherIndex | None] = StampedCache(
    lambda s, code: _stamp(s, code, FOREIGN), lambda s, code: _build(s, code, FOREIGN))
EASY_INDEXES: StampedCache[MatcherIndex | None] = StampedCache(
    lambda s, code: _stamp(s, code, EASY), lambda s, code: _build(s, code, EASY))


def _touch(*_args: Any) -> None:
    TRANSLATION_INDEXES.touch()
    EASY_INDEXES.touch()


for _model in (FaqEntry, FaqTranslation):
    for _when in ("after_insert", "after_update", "after_delete"):
        event.listen(_model, _when, _touch)


def question_language(text: str, config: Mapping[str, Any]) -> str | None:
    """The language of a question among the city's languages (bot.i18n.detect_language)."""
    return detect_language(text, city_languages(config))


def match(session: Session, municipality: str, text: str, config: Mapping[str, Any],
          japanese: Callable[[], Decision], language_hint: str | None = None) -> Decision:
    """The decision for a resident's question: foreign ones also against the translation index,
    やさしい日本語 ones also against the やさしい日本語 index (decide). When the text's language is
    unclear (Vietnamese typed without its marks, two words), `language_hint` (the language the
    resident chose) is taken if the city offers it."""
    language = question_language(text, config)
    if language is None and language_hint in city_languages(config):
        language = language_hint
    if language in EASY:
        return decide(None, text, language, japanese, easy=EASY_INDEXES.get(session, municipality))
    if language not in FOREIGN:
        return japanese()
    return decide(TRANSLATION_INDEXES.get(session, municipality), text, language, japanese)


def repo_index(code: str, kb_entries: Sequence[Any], *, kb_dir: Path | None = None, languages: tuple[str, ...] = FOREIGN,
               **build_args: Any) -> MatcherIndex | None:
    """The translation index of `languages` of a city's shipped files (bench, without a database)."""
    from faq.kb import KB_DIR
    from faq.translations import load_translations

    translations = load_translations(code, kb_entries, kb_dir or KB_DIR)
    return build_index(translated_entries(translations, (e.id for e in kb_entries), languages), languages, **build_args)
