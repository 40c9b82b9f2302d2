"""The FAQ service: answer a resident's question from the city's knowledge base.

Thin over the pure matcher (faq.matcher): this module loads the published entries from the
database, keeps one matcher index per city in each process (rebuilt when the entries change,
so staff edits reach every gunicorn worker on the next message), handles greetings and menu
words before matching, and stores the masked question for staff.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

from bot import metrics
from bot.config import ROOT
from bot.db import utcnow
from faq import importer, index_builder, multilingual
from faq.directory import Directory, current_directory, repo_directory
from faq.freshness import StampedCache
from faq.kb import KBEntry, city_places
from faq.masking import mask_personal_data
from faq.matcher import Decision, MatcherIndex, Thresholds
from faq.models import FaqEntry, QuestionLog
from faq.normalize import normalize

log = logging.getLogger(__name__)

# Sentence vectors cached on disk by text hash, so restarts and workers don't re-embed.
EMBEDDING_CACHE_DIR = ROOT / "instance" / "cache" / "embeddings"

CATEGORY_LABELS = {
    "certificates": "証明書",
    "mynumber": "マイナンバーカード",
    "online": "オンライン申請",
    "counters": "窓口・届出",
    "payments": "税・支払い",
    "children": "子育て・教育",
    "health": "健康・予防接種",
    "welfare": "福祉・介護",
    "disaster": "防災・防犯",
    "environment": "ごみ・環境",
    "facilities": "施設予約",
    "transport": "交通",
    "channels": "市の情報発信",
    "digital-divide": "スマホ・デジタル相談",
    "reporting": "道路・水道の通報",
    "community": "地域・暮らし",
    "tourism": "観光",
    "business": "仕事・産業",
    "bot": "このLINEについて",
}

SmalltalkKind = Literal["greeting", "thanks", "menu", "help", "chat"]
# Exact words; chat ("chat") is recognised by _CHAT_PATTERN below.
_SMALLTALK_WORDS: dict[SmalltalkKind, tuple[str, ...]] = {
    "greeting": ("こんにちは", "こんばんは", "おはよう", "おはようございます", "はじめまして", "やあ", "ハロー",
                 "hello", "hi", "どうも", "よろしく", "よろしくお願いします"),
    "thanks": ("ありがとう", "ありがとうございます", "ありがとうございました", "サンキュー", "thanks", "thank you",
               "助かりました", "たすかりました", "了解", "わかりました", "OK", "おk"),
    "menu": ("メニュー", "menu", "めにゅー", "一覧", "カテゴリ", "よくある質問"),
    "help": ("ヘルプ", "help", "へるぷ", "使い方", "つかいかた", "何ができる", "なにができる", "何ができるの"),
}
# Chat that is not a question to the city (今日ひま？, 好きな食べ物は？, 天気いいね, ｗｗ): whole short
# texts only, matched on the normalised form (hiragana, lower case, no punctuation), so a real
# question that happens to contain such a word (大雨の天気で避難所は開いてる？) is still matched.
_CHAT_MAX_CHARS = 15
_CHAT_PREFIX = r"(?:ねえ|ねぇ|ねー|あー|はぁ|なんか|今日は?|きょうは?|今|いま|めっちゃ|すごく|とても|超|もう)*"
_CHAT_SUFFIX = r"(?:です|でした|だ|なの|なん|じゃない|でしょ|ですか|か|かな|かも|ね|よ|な|なぁ|なー|わ|ー|〜|w|笑)*"
_CHAT_CORES = (
    r"ひま|暇|退屈|たいくつ|つまらない|つまんない|さみしい|寂しい|さびしい",
    r"お?元気|お?げんき|元気にしてる|調子どう|調子はどう",
    r"ねむ|ねむい|眠い|ねむたい|眠たい|おやすみ(?:なさい)?",
    r"(?:疲|つか)れ(?:た|ました|てる)?|お(?:疲|つか)れ(?:さま|様)?|おつ",
    r"お?(?:腹|なか|おなか)(?:が)?(?:すいた|空いた|へった|減った)|腹減った",
    r"好きな.{1,6}(?:は|って|(?:は|って)?(?:何|なに|なあに))|好き|大好き|愛してる|かわいい|すごい|えらい",
    r"(?:天気|てんき)(?:が)?(?:いい|良い|最高|悪い|わるい)|いい(?:天気|てんき)",
    r"(?:あなた|きみ|君|おまえ|お前|ぼっと|bot)?(?:は|って)?(?:誰|だれ|何者|なにもの|人間|ai|何歳|なんさい|いくつ)",
    r"何してる|なにしてる|何してるの|なにしてるの|遊ぼう|あそぼう|暇つぶし",
    r"(?:笑|w|草)+|あ?は{2,}|ふ{2,}|へ{2,}|うける|やば(?:い)?|まじ|まじか|なるほど|へえ|ふーん|そっか|そうなんだ",
)
_CHAT_PATTERN = re.compile(rf"{_CHAT_PREFIX}(?:{'|'.join(_CHAT_CORES)}){_CHAT_SUFFIX}")


@dataclass(frozen=True)
class EntryView:
    """What the reply builders need of an entry."""

    entry_id: str
    title: str
    answer: str
    category: str


@dataclass(frozen=True)
class FaqReply:
    """The outcome for one question; the handler turns it into LINE messages."""

    decision: Literal["answer", "clarify", "unknown", "smalltalk"]
    entry: EntryView | None = None
    candidates: tuple[EntryView, ...] = ()
    smalltalk: SmalltalkKind | None = None
    log_id: int | None = None
    score: float = 0.0
    categories: tuple[tuple[str, str], ...] = ()
    city_name: str = ""
    contact: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def topic(self) -> str | None:
        """The answered entry id, if any (for usage events)."""
        return self.entry.entry_id if self.entry else None


@functools.lru_cache(maxsize=1)
def _smalltalk_forms() -> dict[str, SmalltalkKind]:
    """Normalised small-talk words -> kind (normalised once, not per question)."""
    forms: dict[str, SmalltalkKind] = {}
    for kind, words in _SMALLTALK_WORDS.items():
        for w in words:
            forms.setdefault(normalize(w), kind)
    return forms


def _smalltalk(text: str) -> SmalltalkKind | None:
    norm = normalize(text).strip("!！?？。.、〜~ー")
    if not norm or len(norm) > 20:
        return None
    kind = _smalltalk_forms().get(norm)
    if kind is None and len(norm) <= _CHAT_MAX_CHARS and _CHAT_PATTERN.fullmatch(norm.replace(" ", "")):
        return "chat"
    return kind


def to_kb_entry(row: FaqEntry) -> KBEntry:
    """A database row as the matcher's entry."""
    return KBEntry(
        id=row.entry_id, category=row.category, title=row.title, question=row.question,
        alternates=tuple(row.alternates or ()), keywords=tuple(row.keywords or ()), answer=row.answer,
        source=row.source or "", municipality=row.municipality,
        reviewed_at=row.reviewed_at or utcnow().date(), section=row.section or "",
    )


def _place_names(municipality: str) -> tuple[str, ...]:
    """Places the city's knowledge base may be asked about: its name and districts."""
    try:
        return city_places(municipality)
    except Exception:  # noqa: BLE001 - an imported-only city without city.yaml still answers
        return ()


def _content_key(entries: list[KBEntry]) -> str:
    """A hash of everything the matcher looks at, so identical knowledge bases share an index."""
    digest = hashlib.sha256()
    for e in entries:
        digest.update(repr((e.id, e.title, e.question, e.alternates, e.keywords, e.answer, e.category)).encode())
    return digest.hexdigest()


def _published_stamp(session: Session, municipality: str) -> tuple[Any, ...] | None:
    """A cheap fingerprint of the city's published entries (count, newest change, ids); None while
    an import is being published, so residents keep the index they have until it is all there."""
    if importer.publishing(session, municipality):
        return None
    return tuple(session.execute(
        select(func.count(FaqEntry.id), func.max(FaqEntry.updated_at), func.sum(FaqEntry.id)).where(
            FaqEntry.municipality == municipality, FaqEntry.is_published.is_(True)
        )
    ).one())


# Above this many entries the index is built by one low-priority process per host and loaded by every
# worker from its file (faq.index_builder), instead of by each worker beside its residents' answering.
SHARED_BUILD_ENTRIES = 2_000
# Indexes by content, so identical knowledge bases (several test databases, a revert) share one.
_BY_CONTENT: dict[str, tuple[MatcherIndex, dict[str, KBEntry]]] = {}
# Old versions kept beyond the newest: at most 8, and not more entries than this in all (a large
# knowledge base's index takes hundreds of MB; the one in use is held by INDEXES anyway).
_KEEP_OLD_ENTRIES = 20_000


def _build_index(session: Session, municipality: str) -> tuple[MatcherIndex, dict[str, KBEntry]]:
    """The matcher index of the city's published entries (built, or shared by content)."""
    rows = session.scalars(
        select(FaqEntry).where(FaqEntry.municipality == municipality, FaqEntry.is_published.is_(True))
        .order_by(FaqEntry.entry_id)
    ).all()
    entries = [to_kb_entry(r) for r in rows]
    content = _content_key(entries)
    if content not in _BY_CONTENT:
        build_args = {"cache_dir": EMBEDDING_CACHE_DIR, "place_names_known": _place_names(municipality)}
        if len(entries) > SHARED_BUILD_ENTRIES:  # one low-priority builder process per host (faq.index_builder)
            index = index_builder.build_shared(content, entries, **build_args)
        else:
            index = MatcherIndex.build(entries, **build_args)
        _BY_CONTENT[content] = (index, {e.id: e for e in entries})
        log.info("FAQ index built: municipality=%s entries=%d", municipality, len(entries))
        if not entries:
            log.warning("no published FAQ entries for municipality=%s: every question gets "
                        "「わかりません」 (run `flask faq load` or `flask faq import`)", municipality)
        while len(_BY_CONTENT) > 8 or (  # old versions after edits: keep memory bounded
                len(_BY_CONTENT) > 1 and sum(len(ids) for _, ids in _BY_CONTENT.values()) > _KEEP_OLD_ENTRIES + len(entries)):
            _BY_CONTENT.pop(next(iter(_BY_CONTENT)))
    return _BY_CONTENT[content]


# Matcher indexes in this process, one per (database, city), rebuilt when the published entries change.
# Residents wait for a rebuild (at most freshness.BUILD_WAIT_SECONDS) only up to this many entries;
# a larger base (an import) is rebuilt while the old index answers.
QUICK_REBUILD_ENTRIES = 5_000
INDEXES: StampedCache[tuple[MatcherIndex, dict[str, KBEntry]]] = StampedCache(
    _published_stamp, _build_index, quick=lambda stamp: stamp is not None and int(stamp[0] or 0) <= QUICK_REBUILD_ENTRIES)
for _when in ("after_insert", "after_update", "after_delete"):
    event.listen(FaqEntry, _when, lambda *_args: INDEXES.touch())


def view(entry: KBEntry, directory: Directory | None = None) -> EntryView:
    """The reply-builder view of an entry; with the city's directory, the answer as residents
    receive it (ending with its section's お問い合わせ line)."""
    answer = directory.finish_answer(entry.answer, entry.section, entry.category) if directory else entry.answer
    return EntryView(entry.id, entry.title, answer, entry.category)


def thresholds_from(config: dict[str, Any], default: Thresholds | None = None) -> Thresholds | None:
    """Decision thresholds from settings, the rest from `default` (None: the index's measured defaults)."""
    values = [config.get(k) for k in ("FAQ_ANSWER_THRESHOLD", "FAQ_CLARIFY_THRESHOLD", "FAQ_MARGIN")]
    if all(v is None for v in values):
        return None
    default = default or Thresholds()
    return Thresholds(
        answer=float(values[0] if values[0] is not None else default.answer),
        clarify=float(values[1] if values[1] is not None else default.clarify),
        margin=float(values[2] if values[2] is not None else default.margin),
    )


def decide(session: Session, municipality: str, text: str, config: dict[str, Any]) -> Decision:
    """The matcher's decision for a question over the city's published entries (no logging)."""
    index, _ = INDEXES.get(session, municipality)
    return multilingual.match(session, municipality, text, config,
                              lambda: index.match(text, thresholds_from(config, index.default_thresholds)))


def categories(session: Session, municipality: str) -> tuple[tuple[str, str], ...]:
    """(category id, Japanese label) of the city's published entries, in a stable order."""
    present = set(session.scalars(
        select(FaqEntry.category).where(FaqEntry.municipality == municipality, FaqEntry.is_published.is_(True)).distinct()
    ))
    ordered = [c for c in CATEGORY_LABELS if c in present] + sorted(present - set(CATEGORY_LABELS))
    return tuple((c, CATEGORY_LABELS.get(c, c)) for c in ordered)


def entries_in_category(session: Session, municipality: str, category: str) -> list[EntryView]:
    """Published entries of one category, by title."""
    _, by_id = INDEXES.get(session, municipality)
    directory = current_directory(session, municipality)
    return sorted((view(e, directory) for e in by_id.values() if e.category == category), key=lambda v: v.entry_id)


def get_entry(session: Session, municipality: str, entry_id: str) -> EntryView | None:
    """A published entry by id."""
    _, by_id = INDEXES.get(session, municipality)
    entry = by_id.get(entry_id)
    return view(entry, current_directory(session, municipality)) if entry else None


def get_kb_entry(session: Session, municipality: str, entry_id: str) -> KBEntry | None:
    """A published entry as the matcher holds it (section and category for the お問い合わせ line)."""
    _, by_id = INDEXES.get(session, municipality)
    return by_id.get(entry_id)


@functools.lru_cache(maxsize=16)
def city_name(municipality: str) -> str:
    """The city's name from its shipped city.yaml ("" for a city without one)."""
    try:
        return repo_directory(municipality).city_name
    except Exception:  # noqa: BLE001 - a missing city file must not break answering
        return ""


def main_contact(session: Session, municipality: str) -> str:
    """How to reach the city as a whole, from its directory (「那須烏山市役所　電話 …　https://…」)."""
    return current_directory(session, municipality).main_text()


@dataclass(frozen=True)
class PreparedAnswer:
    """The CPU-heavy part of answering, done before any write lock is taken."""

    text: str
    smalltalk: SmalltalkKind | None
    decision: Decision | None
    by_id: dict[str, KBEntry]


def prime_questions(session: Session, texts: list[str], config: dict[str, Any]) -> None:
    """Embed a batch of questions in one model call before prepare_answer matches them one by one.

    The embedding model streams its weights once per call, so a batch costs little more than
    one question. Only this thread's next matches use the vectors; nothing is kept beyond them.
    """
    questions = [t for t in texts if _smalltalk(t) is None]
    if len(questions) < 2:
        return
    index, _ = INDEXES.get(session, config["MUNICIPALITY"])
    index.prime(questions)


# The category whose entries to prefer now, or None: a hook bot.app wires (disaster mode prefers
# 防災 entries while it is on; faq may not import the package that knows).
CategoryPreference = Callable[[Session, dict[str, Any]], "str | None"]
_category_preference: CategoryPreference | None = None
# How close to the best candidate a preferred one must score to be put first.
PREFERENCE_MARGIN = 0.05


def set_category_preference(hook: CategoryPreference | None) -> None:
    """Wire the category-preference hook (bot.app)."""
    global _category_preference
    _category_preference = hook


def prefer_category(decision: Decision, by_id: dict[str, KBEntry], category: str) -> Decision:
    """A small bias of a decision toward a category: candidates of it that score within
    PREFERENCE_MARGIN of the best come first, and an answer goes to the first of them. An unknown
    stays unknown, and nothing further behind moves up."""
    if decision.kind == "unknown" or not decision.candidates:
        return decision
    best = decision.candidates[0].score
    preferred = [c for c in decision.candidates
                 if c.entry_id in by_id and by_id[c.entry_id].category == category and c.score >= best - PREFERENCE_MARGIN]
    if not preferred or preferred[0] is decision.candidates[0]:
        return decision
    ordered = tuple(preferred + [c for c in decision.candidates if c not in preferred])
    entry_id = ordered[0].entry_id if decision.kind == "answer" else None
    return Decision(decision.kind, entry_id, decision.score, ordered)


def prepare_answer(session: Session, text: str, config: dict[str, Any], language_hint: str | None = None) -> PreparedAnswer:
    """Small-talk detection and matching (read-only), with the category preference applied;
    `language_hint` (the resident's chosen language) counts when the text's language is unclear."""
    kind = _smalltalk(text)
    if kind is not None:
        return PreparedAnswer(text, kind, None, {})
    index, by_id = INDEXES.get(session, config["MUNICIPALITY"])
    decision = multilingual.match(session, config["MUNICIPALITY"], text, config,  # a foreign question: translations too
                                  lambda: index.match(text, thresholds_from(config, index.default_thresholds)),
                                  language_hint)
    preferred = _category_preference(session, config) if _category_preference is not None else None
    if preferred:
        decision = prefer_category(decision, by_id, preferred)
    return PreparedAnswer(text, None, decision, by_id)


_INSERT_QUESTION_LOG = insert(QuestionLog.__table__).returning(QuestionLog.__table__.c.id)


def log_question(session: Session, municipality: str, text: str, decision: Decision, resident_id: int | None = None,
                 *, channel: str = "line", web_session: str | None = None, language: str | None = None) -> int:
    """Store a resident's question, masked, with the decision made, for staff's review queue; its id.

    The one place the question log's text is written (tests/test_masking.py checks it)."""
    # Core insert, without autoflush: only the id is needed, and the objects the handler added
    # so far (usage events) are then written together with the rest of the batch at commit.
    with session.no_autoflush:
        return int(session.execute(
            _INSERT_QUESTION_LOG,
            {
                "municipality": municipality,
                "masked_text": mask_personal_data(text)[:1000],
                "decision": decision.kind,
                "topic": decision.entry_id,
                "score": float(decision.score),
                "candidates": [{"topic": c.entry_id, "score": c.score} for c in decision.candidates],
                "resident_id": resident_id,
                "channel": channel,
                "web_session": web_session,
                "language": language if language and language != "ja" else None,
            },
        ).scalar_one())


def answer_question(session: Session, text: str, config: dict[str, Any], resident_id: int | None = None,
                    prepared: PreparedAnswer | None = None, *, channel: str = "line",
                    web_session: str | None = None, language: str | None = None) -> FaqReply:
    """Decide how to answer a resident's text and log it (masked) for staff, with the channel it
    came from ("line", or "web" with the homepage chat's session hash instead of a resident) and
    the language it was detected in (None: Japanese; "ja" is stored as None)."""
    municipality = config["MUNICIPALITY"]
    directory = current_directory(session, municipality)
    city_name, contact = directory.city_name, directory.main_text()
    if prepared is None or prepared.text != text:
        prepared = prepare_answer(session, text, config)
    kind = prepared.smalltalk
    metrics.faq_decision("smalltalk" if kind is not None else prepared.decision.kind if prepared.decision else "unknown", channel)
    if kind is not None:
        cats = categories(session, municipality) if kind in ("menu", "help") else ()
        return FaqReply("smalltalk", smalltalk=kind, categories=cats, city_name=city_name, contact=contact)

    decision, by_id = prepared.decision, prepared.by_id
    assert decision is not None
    entry = by_id.get(decision.entry_id) if decision.entry_id else None
    candidates = tuple(view(by_id[c.entry_id], directory) for c in decision.candidates if c.entry_id in by_id)
    log_id = log_question(session, municipality, text, decision, resident_id, channel=channel,
                          web_session=web_session, language=language)
    cats = categories(session, municipality) if decision.kind == "unknown" else ()
    return FaqReply(
        decision.kind, entry=view(entry, directory) if entry else None, candidates=candidates, log_id=log_id,
        score=float(decision.score), categories=cats, city_name=city_name, contact=contact,
    )


def _own_log(session: Session, log_id: Any, resident_id: int | None, web_session: str | None = None) -> QuestionLog | None:
    if not isinstance(log_id, int) or isinstance(log_id, bool) or (resident_id is None and not web_session):
        return None
    row = session.get(QuestionLog, log_id)
    if row is None:
        return None
    if web_session:
        return row if row.channel == "web" and row.web_session == web_session else None
    return row if row.resident_id == resident_id else None


def record_feedback(session: Session, log_id: Any, resident_id: int | None, helpful: bool, *,
                    web_session: str | None = None) -> bool:
    """Store 「役に立ちましたか？」; False when the row is not this resident's (or web session's):
    stale or forged."""
    row = _own_log(session, log_id, resident_id, web_session)
    if row is None or row.decision not in ("answer", "clarify"):
        return False
    row.is_helpful = helpful
    return True


def record_choice(session: Session, log_id: Any, resident_id: int | None, entry_id: str | None, *,
                  web_session: str | None = None) -> bool:
    """Store the entry chosen after 「もしかして」 ("" for 「どれでもない」) as a labelled example."""
    row = _own_log(session, log_id, resident_id, web_session)
    if row is None or row.decision != "clarify":
        return False
    offered = {c.get("topic") for c in row.candidates or []}
    if entry_id and entry_id not in offered:
        return False
    row.chosen_topic = entry_id or ""
    return True


@dataclass(frozen=True)
class PendingClarify:
    """A 「もしかして」 the resident has not answered yet: its log row and the entries it offered, in order."""

    log_id: int
    topics: tuple[str, ...]


def pending_clarify(session: Session, resident_id: int | None, municipality: str,
                    window_minutes: float) -> PendingClarify | None:
    """The resident's open 「もしかして」, so a number they send can pick from it.

    Only the resident's latest logged question counts (a newer question closes an older
    「もしかして」), and only if it is a 「もしかして」 not yet chosen, asked within the window.
    """
    if resident_id is None or window_minutes <= 0:
        return None
    row = session.execute(
        select(QuestionLog.id, QuestionLog.decision, QuestionLog.chosen_topic, QuestionLog.asked_at,
               QuestionLog.candidates)
        .where(QuestionLog.resident_id == resident_id, QuestionLog.municipality == municipality)
        .order_by(QuestionLog.id.desc()).limit(1)
    ).first()
    if row is None or row.decision != "clarify" or row.chosen_topic is not None:
        return None
    if row.asked_at < utcnow() - dt.timedelta(minutes=window_minutes):
        return None
    topics = tuple(str(c["topic"]) for c in row.candidates or [] if isinstance(c, dict) and c.get("topic"))
    return PendingClarify(row.id, topics) if topics else None
