"""faq text: stored entries in the form the edit form sends back (LF line breaks, one-line fields on
one line, list items trimmed and unique), and the 職員が編集 mark taken off repo and imported
entries whose every edit only changed line breaks

Before this, saving an entry's form untouched stored the browser's CRLF line breaks, wrote an edit
revision and marked the entry staff-edited, so `flask faq load` no longer updated it. The text rules
are those of bot.text and faq.workbench.EntryDraft.normalized, copied here so that this migration
keeps doing what it did when the application code changes. Revisions are history and stay as they
are. Downgrading changes nothing (CRLF cannot be told back from LF).

Revision ID: 0010
Revises: 0006
Create Date: 2026-12-04
"""
import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0006"
branch_labels = None
depends_on = None

MULTI_LINE = ("question", "answer")
SINGLE_LINE = ("title", "category", "source")
LISTS = ("alternates", "keywords")
CONTENT = ("title", "category", "question", "alternates", "keywords", "answer", "source")
# Revisions after which an entry is marked staff-edited (faq.workbench: _apply and add_alternates).
MARKING_ACTIONS = ("edit", "revert", "attach")

entries = sa.table(
    "faq_entries",
    sa.column("id", sa.Integer), sa.column("municipality", sa.String), sa.column("entry_id", sa.String),
    sa.column("title", sa.String), sa.column("category", sa.String), sa.column("question", sa.Text),
    sa.column("alternates", sa.JSON), sa.column("keywords", sa.JSON), sa.column("answer", sa.Text),
    sa.column("source", sa.Text), sa.column("origin", sa.String), sa.column("is_staff_edited", sa.Boolean),
)
revisions = sa.table(
    "faq_revisions",
    sa.column("municipality", sa.String), sa.column("entry_id", sa.String), sa.column("action", sa.String),
    sa.column("before", sa.JSON), sa.column("after", sa.JSON),
)
decisions = sa.table("faq_review_decisions", sa.column("id", sa.Integer), sa.column("reason", sa.Text))


def multi_line(text: Any) -> str:
    return re.sub(r"\r\n?", "\n", text or "").strip()


def single_line(text: Any) -> str:
    return " ".join(part.strip() for part in (text or "").splitlines() if part.strip())


def items(values: Any) -> list[str]:
    """List items as the form sends them back: one per line or `|`-separated, trimmed, no repeats."""
    seen: dict[str, None] = {}
    for value in values or []:
        for line in str(value).splitlines():
            for part in line.split("|"):
                if part.strip():
                    seen.setdefault(part.strip(), None)
    return list(seen)


def normalized(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in CONTENT:
        if name not in values:
            continue
        if name in MULTI_LINE:
            out[name] = multi_line(values[name])
        elif name in SINGLE_LINE:
            out[name] = single_line(values[name])
        else:
            out[name] = items(values[name])
    return out


def _only_line_breaks(before: Any, after: Any) -> bool:
    """Whether a revision changed nothing but line breaks and spacing of the content."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return False
    return normalized(before) == normalized(after)


def upgrade() -> None:
    conn = op.get_bind()
    marking: dict[tuple[str, str], bool] = {}  # entry -> every marking revision was line breaks only
    for municipality, entry_id, before, after in conn.execute(
            sa.select(revisions.c.municipality, revisions.c.entry_id, revisions.c.before, revisions.c.after)
            .where(revisions.c.action.in_(MARKING_ACTIONS))):
        key = (municipality, entry_id)
        marking[key] = marking.get(key, True) and _only_line_breaks(before, after)
    for row in conn.execute(sa.select(entries)).mappings().all():
        stored = {name: row[name] for name in CONTENT}
        changes: dict[str, Any] = {k: v for k, v in normalized(stored).items() if v != stored[k]}
        # Entries staff wrote themselves (origin "staff") keep the mark their creation gave them.
        if (row["is_staff_edited"] and row["origin"] != "staff"
                and marking.get((row["municipality"], row["entry_id"])) is True):
            changes["is_staff_edited"] = False
        if changes:
            conn.execute(entries.update().where(entries.c.id == row["id"]).values(**changes))
    for decision_id, reason in conn.execute(sa.select(decisions.c.id, decisions.c.reason)).all():
        if reason and multi_line(reason) != reason:
            conn.execute(decisions.update().where(decisions.c.id == decision_id).values(reason=multi_line(reason)))


def downgrade() -> None:
    pass
