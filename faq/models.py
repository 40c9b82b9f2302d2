"""Knowledge-base entries in the database, and the question log staff review."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.db import Base, UTCDateTime, utcnow


class FaqEntry(Base):
    """One answer of one city's knowledge base (`entry_id` is the stable topic id)."""

    __tablename__ = "faq_entries"
    __table_args__ = (UniqueConstraint("municipality", "entry_id", name="uq_faq_entries_municipality_entry_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32), index=True)
    entry_id: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(40))
    question: Mapped[str] = mapped_column(Text)
    alternates: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    answer: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, default="")
    reviewed_at: Mapped[dt.date | None] = mapped_column(Date)
    # Where it came from: "repo" (faq/kb files), "import" (a city's CSV) or "staff" (admin UI).
    origin: Mapped[str] = mapped_column(String(16), default="repo")
    is_published: Mapped[bool] = mapped_column(default=True)
    # Repo entries a staff member changed are not overwritten by `faq load`.
    is_staff_edited: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # The directory section whose お問い合わせ line ends the answer (faq.directory): the key of the
    # repo answer's first {section_*} placeholder; "" = the default of the entry's category.
    section: Mapped[str] = mapped_column(String(32), default="", server_default="")

    @property
    def id_(self) -> str:
        """The stable topic id (what the matcher calls `id`)."""
        return self.entry_id


class FaqTranslation(Base):
    """A translation of one entry (`faq_entries.id`) into a resident language (bot.i18n codes but "ja").

    Loaded from faq/kb/translations/<lang>.yaml and faq/kb/cities/<code>/translations/<lang>.yaml by
    `flask faq load` (faq.translations); `follows` is the Japanese entry's reviewed_at the
    translation was written from (older than the entry's = stale). Staff-edited rows are kept by
    `faq load`. `answer` is "" when the translation may not answer for this city (the city replaced
    the Japanese answer and gave no translation of its own): title and alternates still match.
    """

    __tablename__ = "faq_translations"
    __table_args__ = (UniqueConstraint("entry_id", "language", name="uq_faq_translations_entry_id_language"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("faq_entries.id", ondelete="CASCADE"))
    language: Mapped[str] = mapped_column(String(8))
    title: Mapped[str] = mapped_column(String(40))
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text, default="")
    alternates: Mapped[list[str]] = mapped_column(JSON, default=list)
    follows: Mapped[dt.date | None] = mapped_column(Date)
    is_staff_edited: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class QuestionLog(Base):
    """A resident's question as staff may see it: masked text, the decision, the feedback."""

    __tablename__ = "faq_question_log"
    __table_args__ = (Index("ix_faq_question_log_municipality_asked_at", "municipality", "asked_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    asked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    municipality: Mapped[str] = mapped_column(String(32))
    # Personal data (phone numbers, e-mail addresses, 12-digit numbers, postal codes, house numbers,
    # other runs of 4+ digits) masked before storing (faq.masking); never the resident's own text.
    masked_text: Mapped[str] = mapped_column(Text)
    decision: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str | None] = mapped_column(String(128))
    score: Mapped[float] = mapped_column(default=0.0)
    candidates: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Pseudonymous link so only the asking resident's buttons can change this row.
    resident_id: Mapped[int | None] = mapped_column(ForeignKey("residents.id", ondelete="SET NULL"), index=True)
    is_helpful: Mapped[bool | None] = mapped_column()
    # After 「もしかして」: the entry the resident chose ("" = 「どれでもない」) — a labelled example.
    chosen_topic: Mapped[str | None] = mapped_column(String(128))
    # Where it was asked: "line" or "web" (the homepage chat, webchat/).
    channel: Mapped[str] = mapped_column(String(8), default="line", server_default="line")
    # The language the question was detected in (bot.i18n codes; None: Japanese or not detected):
    # the review queue shows it and the KPI counts questions by it.
    language: Mapped[str | None] = mapped_column(String(8))
    # Web only: a hash of the anonymous chat session, so only that browser's buttons change this row.
    web_session: Mapped[str | None] = mapped_column(String(64), index=True)


class FaqRevision(Base):
    """One change to an entry made by staff or an import: who, when, the entry before and after."""

    __tablename__ = "faq_revisions"
    __table_args__ = (Index("ix_faq_revisions_municipality_entry_id", "municipality", "entry_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    entry_id: Mapped[str] = mapped_column(String(128))
    # create | edit | publish | unpublish | revert | attach | import
    action: Mapped[str] = mapped_column(String(16))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(64), default="")
    # Snapshots of the entry's editable fields (faq.workbench.SNAPSHOT_FIELDS); None before a create.
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(Text, default="")


class ReviewDecision(Base):
    """What staff decided about a cluster of unanswered questions.

    `kind` is "out_of_scope" (with a reason; later similar questions join it and stay hidden),
    "attached" (its questions became alternates of `entry_id`) or "created" (a new entry).
    `member_texts` are the normalised questions of the cluster: what new questions are compared to.
    """

    __tablename__ = "faq_review_decisions"
    __table_args__ = (Index("ix_faq_review_decisions_municipality_kind", "municipality", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    cluster_key: Mapped[str] = mapped_column(String(64))
    representative: Mapped[str] = mapped_column(Text)
    member_texts: Mapped[list[str]] = mapped_column(JSON, default=list)
    examples: Mapped[list[str]] = mapped_column(JSON, default=list)
    question_count: Mapped[int] = mapped_column(default=0)
    entry_id: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    is_active: Mapped[bool] = mapped_column(default=True)
    decided_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(64), default="")


class ReviewMark(Base):
    """A logged question dealt with by a review decision (it leaves the review queue)."""

    __tablename__ = "faq_review_marks"

    log_id: Mapped[int] = mapped_column(ForeignKey("faq_question_log.id", ondelete="CASCADE"), primary_key=True)
    decision_id: Mapped[int] = mapped_column(ForeignKey("faq_review_decisions.id", ondelete="CASCADE"), index=True)


class ImportDraft(Base):
    """An uploaded CSV awaiting the staff member's confirmation after the preview (kept briefly)."""

    __tablename__ = "faq_import_drafts"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    municipality: Mapped[str] = mapped_column(String(32))
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(200), default="")
    csv_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class DirectoryContact(Base):
    """One line of a city's directory (連絡先): a section (`key` as in {section_<key>}) or the city
    as a whole (`key` "main": the main number and hours). "" = 未設定.

    Copied from city.yaml by `flask faq load`; rows staff edited (`is_staff_edited`) are kept.
    """

    __tablename__ = "faq_directory"
    __table_args__ = (UniqueConstraint("municipality", "key", name="uq_faq_directory_municipality_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(default=0)  # the order of city.yaml, for the staff page
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(32), default="")
    hours: Mapped[str] = mapped_column(String(100), default="")  # 受付時間, free text
    url: Mapped[str] = mapped_column(String(300), default="")
    is_staff_edited: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class FaqImport(Base):
    """One CSV import of a city's FAQ, written in short transactions (faq.importer).

    `state`: "staging" (rows being copied to faq_import_rows; residents and staff see nothing of
    it), "publishing" (the commit point is passed: the staged rows are applied to faq_entries
    in chunks, `published` of `rows` so far), "done", or "discarded" (given up before the
    commit point). `heartbeat_at` moves with every chunk: an import whose heartbeat stopped is
    finished (publishing) or discarded (staging) by the next import of the city.
    """

    __tablename__ = "faq_imports"
    __table_args__ = (Index("ix_faq_imports_municipality_state", "municipality", "state"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    municipality: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="staging")
    filename: Mapped[str] = mapped_column(String(200), default="")
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id", ondelete="SET NULL"))
    username: Mapped[str] = mapped_column(String(64), default="")
    rows: Mapped[int] = mapped_column(default=0)
    published: Mapped[int] = mapped_column(default=0)
    added: Mapped[int] = mapped_column(default=0)
    updated: Mapped[int] = mapped_column(default=0)
    unchanged: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class FaqImportRow(Base):
    """A validated CSV row waiting in an import's staging area until it is published."""

    __tablename__ = "faq_import_rows"

    import_id: Mapped[int] = mapped_column(ForeignKey("faq_imports.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(primary_key=True)  # 0, 1, ... in file order
    line: Mapped[int] = mapped_column(default=0)
    entry_id: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(40))
    question: Mapped[str] = mapped_column(Text)
    alternates: Mapped[list[str]] = mapped_column(JSON, default=list)
    keywords: Mapped[list[str]] = mapped_column(JSON, default=list)
    answer: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text, default="")
    reviewed_at: Mapped[dt.date | None] = mapped_column(Date)
