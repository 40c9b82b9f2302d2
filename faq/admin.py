"""Admin pages of `faq`: the knowledge-base workbench for FAQ staff.

Entries (list, search, edit, publish, history with revert), the review of unanswered questions
(clusters -> alternates of an entry, a new entry, or out of scope), what-if replays before saving,
and CSV import/export. Views parse the form, call the services in faq.workbench / faq.review /
faq.whatif with the request's session, write the audit row, commit, and render.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import secrets
from collections.abc import Sequence
from typing import Any

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import delete, select
from werkzeug.wrappers import Response

from bot import auth
from bot.audit_text import register_audit_text
from bot.auth import audit, current_staff, register_nav, require_role
from bot.db import get_db, get_session, utcnow
from bot.i18n import DEFAULT_LANGUAGE, city_languages
from bot.staff_languages import staff_label
from bot.text import single_line
from faq import importer, review, service, whatif, workbench
from faq.kb import TITLE_MAX
from faq.models import FaqEntry, FaqRevision, ImportDraft, ReviewDecision
from faq.store import ImportError_, export_csv
from faq.workbench import EntryDraft, EntryValidationError, StaleEditError

bp = Blueprint("faq_admin", __name__, url_prefix="/admin/faq")

EDIT_ROLES = ("faq",)  # admin may do everything as well (bot.auth.has_role)
PAGE_SIZE = 50
MAX_CLUSTERS_SHOWN = 100
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
DAYS_CHOICES = (7, 30, 90, 365)
IMPORT_DRAFT_TTL = dt.timedelta(days=1)
# Below this mean matcher score no suggestion is preselected: the cluster probably needs a new entry.
SUGGESTION_MIN_SCORE = 0.3
# The category select's 「＋ 新しいカテゴリを追加」: the name typed beside it is the new category.
NEW_CATEGORY = "__new__"

AUDIT_LABELS = {
    "faq_entry_create": "FAQ項目の作成",
    "faq_entry_edit": "FAQ項目の編集",
    "faq_entry_publish": "FAQ項目の公開",
    "faq_entry_unpublish": "FAQ項目の非公開",
    "faq_entry_revert": "FAQ項目を以前の版に戻す",
    "faq_attach": "未回答の質問を言い換えに追加",
    "faq_out_of_scope": "未回答の質問を対象外に",
    "faq_reopen": "対象外の取り消し",
    "faq_import": "FAQの取り込み（CSV）",
    "faq_export": "FAQの書き出し（CSV）",
    "faq_translation_edit": "FAQ項目の翻訳の編集",
}


def _audit_fields(row: Any) -> str:
    names = [workbench.FIELD_LABELS.get(name, name) for name in (row.detail or {}).get("fields", [])]
    return f"（変更した項目: {'、'.join(names)}）" if names else ""


def _audit_created(row: Any) -> str:
    detail = row.detail or {}
    where = f"未回答の質問 {detail['questions']:,} 件から" if detail.get("cluster") else ""
    return f"{where}FAQ項目 {row.target} を作成（{'公開' if detail.get('published') else '非公開'}）"


def _audit_import(row: Any) -> str:
    d = row.detail or {}
    resumed = "（中断していた取り込みを再開）" if d.get("resumed") else ""
    return (f"FAQ を CSV「{row.target}」から取り込み（追加 {d['added']:,} 件・更新 {d['updated']:,} 件・"
            f"変更なし {d['unchanged']:,} 件）{resumed}")


# The FAQ actions of the audit log in sentences (bot.audit_text).
AUDIT_TEXTS = {
    "faq_entry_create": _audit_created,
    "faq_entry_edit": lambda row: f"FAQ項目 {row.target} を編集{_audit_fields(row)}",
    "faq_entry_publish": lambda row: f"FAQ項目 {row.target} を公開",
    "faq_entry_unpublish": lambda row: f"FAQ項目 {row.target} を非公開に",
    "faq_entry_revert": lambda row: (f"FAQ項目 {row.target} を履歴 #{row.detail['revision']} の"
                                     f"{'変更前' if row.detail.get('which') == 'before' else '変更後'}の内容に戻す"),
    "faq_attach": lambda row: (f"未回答の質問 {row.detail['questions']:,} 件を FAQ項目 {row.target} の言い換えに追加"
                               f"（新しい言い換え {row.detail['added']:,} 件）"),
    "faq_out_of_scope": lambda row: (f"未回答の質問 {row.detail['questions']:,} 件を対象外に"
                                     + (f"（理由: {row.detail['reason']}）" if row.detail.get("reason") else "")),
    "faq_reopen": lambda row: "対象外にした未回答の質問を確認待ちに戻す",
    "faq_import": _audit_import,
    "faq_export": lambda row: f"FAQ を CSV で書き出し（{'子育てオープンデータ協議会の形式' if row.target == 'kosodate' else 'このシステムの形式'}）",
    "faq_translation_edit": lambda row: (f"FAQ項目 {row.target} の{staff_label(row.detail.get('language'))}訳を"
                                         + ("新しく作成" if row.detail.get("created") else "編集")),
}


def _municipality() -> str:
    return str(current_app.config["MUNICIPALITY"])


def _city_name() -> str:
    return service.city_name(_municipality()) or _municipality()


def _categories(rows: list[FaqEntry]) -> list[tuple[str, str]]:
    present = sorted({r.category for r in rows})
    ordered = [c for c in service.CATEGORY_LABELS if c in present] + [c for c in present if c not in service.CATEGORY_LABELS]
    return [(c, service.CATEGORY_LABELS.get(c, c)) for c in ordered]


def _category_choices(rows: list[FaqEntry], also: str = "") -> list[tuple[str, str]]:
    """Every category staff may choose, in Japanese: the shipped ones, then the city's own."""
    present = {r.category for r in rows} | ({also} if also and also != NEW_CATEGORY else set())
    ordered = list(service.CATEGORY_LABELS) + sorted(present - set(service.CATEGORY_LABELS))
    return [(c, service.CATEGORY_LABELS.get(c, c)) for c in ordered]


def _category_from_form(rows: list[FaqEntry]) -> tuple[str, list[str]]:
    """The chosen category, or the new one typed beside 「＋ 新しいカテゴリを追加」 (with its errors).

    A new name that is already a category's name (「証明書」) is that category; any other is stored
    as it is typed and shows in the bot's category menu under that name once an entry of it is
    published.
    """
    chosen = request.form.get("category", "").strip()
    if chosen != NEW_CATEGORY:
        return chosen, []
    name = single_line(request.form.get("new_category", ""))
    errors = workbench.new_category_errors(name)
    if errors:
        return NEW_CATEGORY, errors
    for key, label in _category_choices(rows):
        if name in (key, label):
            return key, []
    return name, []


def _draft_from_form(entry_id: str, category: str) -> EntryDraft:
    """The form as a draft, normalised as it would be stored (a browser sends CRLF line breaks)."""
    form = request.form
    return EntryDraft(
        entry_id=entry_id.strip(),
        category=category,
        title=form.get("title", "").strip(),
        question=form.get("question", "").strip(),
        alternates=workbench.split_lines(form.get("alternates", "")),
        keywords=workbench.split_lines(form.get("keywords", "")),
        answer=form.get("answer", "").strip(),
        source=form.get("source", "").strip(),
        is_published=form.get("is_published") == "1",
    ).normalized()


def _recent_from_form() -> int:
    try:
        value = int(request.form.get("replay_recent", "") or whatif.recent_setting(current_app.config))
    except ValueError:
        value = whatif.recent_setting(current_app.config)
    return min(max(value, 0), whatif.MAX_RECENT)


def _use_eval_from_form() -> bool:
    # An unticked checkbox sends nothing: "replay_form" tells "unticked" from "no replay fields".
    return request.form.get("replay_eval") == "1" or "replay_form" not in request.form


def _what_if(changes: dict[str, Any], extra: Sequence[str] = ()) -> whatif.WhatIfReport:
    return whatif.what_if(get_session(), _municipality(), changes, current_app.config, recent=_recent_from_form(),
                          extra_questions=extra, use_eval=_use_eval_from_form())


def _replay_defaults() -> dict[str, Any]:
    posted = request.method == "POST"
    return {"recent": _recent_from_form() if posted else whatif.recent_setting(current_app.config),
            "use_eval": _use_eval_from_form() if posted else True,
            "eval_path": whatif.eval_file(_municipality(), current_app.config)}


# --- entries ----------------------------------------------------------------------------------------


@bp.get("")
@require_role(*EDIT_ROLES)
def index() -> str:
    """The city's entries: search, filter, publish/unpublish, overlap warnings."""
    session = get_session()
    rows = workbench.city_entries(session, _municipality())
    overlaps = workbench.OVERLAPS.get(rows)
    args = request.args
    q, category, status = args.get("q", "").strip()[:200], args.get("category", ""), args.get("status", "")
    origin, flagged = args.get("origin", ""), args.get("flagged") == "1"
    filters: dict[str, Any] = {"q": q, "category": category, "status": status, "origin": origin, "flagged": flagged}
    found = workbench.search_entries(rows, q, category, status, origin, flagged, overlaps)
    pages = max(1, -(-len(found) // PAGE_SIZE))
    page = min(max(args.get("page", 1, type=int) or 1, 1), pages)
    flagged_total = sum(1 for r in rows if overlaps.of(r.entry_id))
    query = {k: v for k, v in filters.items() if v}
    if "flagged" in query:
        query["flagged"] = "1"
    return render_template(
        "faq/entries.html", rows=found[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], total=len(rows), found=len(found),
        page=page, pages=pages, filters=filters, query=query, categories=_categories(rows), overlaps=overlaps,
        category_labels=dict(_categories(rows)),
        flagged_total=flagged_total, city=_city_name(), origin_labels=workbench.ORIGIN_LABELS,
        overlap_labels=workbench.OVERLAP_LABELS, stale=workbench.stale_languages(session, _municipality()),
        language_label=staff_label,
    )


def _entry_or_404(entry_id: str) -> FaqEntry:
    row = workbench.get_entry_row(get_session(), _municipality(), entry_id)
    if row is None:
        abort(404)
    return row


def _entry_page(row: FaqEntry | None, draft: EntryDraft, *, status: int = 200, errors: list[str] | None = None,
                report: whatif.WhatIfReport | None = None, draft_overlaps: list[workbench.Overlap] | None = None,
                version: str = "", cluster: review.Cluster | None = None, changes: list[workbench.FieldChange] | None = None) -> Any:
    session = get_session()
    rows = workbench.city_entries(session, _municipality())
    overlaps = workbench.OVERLAPS.get(rows).of(row.entry_id) if row is not None else []
    revisions = workbench.history(session, _municipality(), row.entry_id) if row is not None else []
    return render_template(
        "faq/entry.html", row=row, draft=draft, errors=errors or [], report=report, overlaps=overlaps,
        draft_overlaps=draft_overlaps, revisions=revisions, diff=workbench.diff,
        categories=_category_choices(rows, draft.category), new_category_value=NEW_CATEGORY,
        new_category=request.form.get("new_category", "") if request.method == "POST" else "",
        category_name_max=workbench.CATEGORY_NAME_MAX,
        version=version or (workbench.version_of(row) if row is not None else ""), cluster=cluster,
        action_labels=workbench.ACTION_LABELS, origin_labels=workbench.ORIGIN_LABELS, replay=_replay_defaults(),
        overlap_labels=workbench.OVERLAP_LABELS, changes=changes, source_labels=whatif.SOURCE_LABELS,
        title_max=TITLE_MAX, titles={**{r.entry_id: r.title for r in rows}, draft.entry_id: draft.title},
        translations=_translation_rows(row) if row is not None else [],
    ), status


def _translation_languages() -> tuple[str, ...]:
    """The city's languages an entry may be translated into (its LANGUAGES setting but Japanese)."""
    return tuple(code for code in city_languages(current_app.config) if code != DEFAULT_LANGUAGE)


def _translation_rows(row: FaqEntry) -> list[dict[str, Any]]:
    """Each of the city's languages with the entry's translation in it, if any, and whether it is stale."""
    found = workbench.translations_of_entry(get_session(), row)
    return [
        {"language": code, "label": staff_label(code), "translation": found.get(code),
         "is_stale": code in found and workbench.is_stale(found[code], row)}
        for code in _translation_languages()
    ]


def _translation_page(row: FaqEntry, language: str, draft: workbench.TranslationDraft, *, status: int = 200,
                      errors: list[str] | None = None) -> Any:
    translation = workbench.translations_of_entry(get_session(), row).get(language)
    return render_template(
        "faq/translation.html", row=row, language=language, label=staff_label(language), draft=draft,
        translation=translation, is_stale=translation is not None and workbench.is_stale(translation, row),
        errors=errors or [], title_max=workbench.TRANSLATION_TITLE_MAX.get(language, workbench.TRANSLATION_TITLE_MAX_OTHER),
        html_lang="ja" if language == "ja-easy" else language, others=_translation_rows(row),
    ), status


@bp.get("/entries/<path:entry_id>/translations/<language>")
@require_role(*EDIT_ROLES)
def translation(entry_id: str, language: str) -> Any:
    """An entry's translation into one language, edited beside the Japanese entry."""
    row = _entry_or_404(entry_id)
    if language not in _translation_languages():
        abort(404)
    existing = workbench.translations_of_entry(get_session(), row).get(language)
    return _translation_page(row, language, workbench.TranslationDraft.from_row(existing))


@bp.post("/entries/<path:entry_id>/translations/<language>")
@require_role(*EDIT_ROLES)
def translation_save(entry_id: str, language: str) -> Any:
    """Save a translation: staff-edited from now on, and following the Japanese entry as it is now."""
    session = get_session()
    row = _entry_or_404(entry_id)
    if language not in _translation_languages():
        abort(404)
    form = request.form
    draft = workbench.TranslationDraft(
        form.get("title", ""), form.get("question", ""), form.get("answer", ""), workbench.split_lines(form.get("alternates", "")),
    )
    created = language not in workbench.translations_of_entry(session, row)
    try:
        saved = workbench.save_translation(session, row, language, draft)
    except EntryValidationError as exc:
        session.rollback()
        return _translation_page(row, language, draft, status=400, errors=exc.errors)
    if saved is None:
        flash("変更はありませんでした。", "info")
        return redirect(url_for("faq_admin.translation", entry_id=row.entry_id, language=language))
    audit(session, "faq_translation_edit", row.entry_id, language=language, created=created)
    session.commit()
    service.INDEXES.touch()  # the matcher's index holds translations' titles and alternates
    flash(f"「{row.title}」の{staff_label(language)}訳を保存しました（日本語の回答 {row.reviewed_at or '—'} 版に対応）。", "success")
    return redirect(url_for("faq_admin.translation", entry_id=row.entry_id, language=language))


@bp.get("/entries/<path:entry_id>")
@require_role(*EDIT_ROLES)
def entry(entry_id: str) -> Any:
    """One entry: the edit form, its overlaps and its history."""
    row = _entry_or_404(entry_id)
    return _entry_page(row, EntryDraft.from_row(row))


@bp.post("/entries/<path:entry_id>")
@require_role(*EDIT_ROLES)
def entry_save(entry_id: str) -> Any:
    """Preview the effect of an edit (intent=preview) or save it."""
    session = get_session()
    row = _entry_or_404(entry_id)
    category, category_errors = _category_from_form(workbench.city_entries(session, _municipality()))
    draft = _draft_from_form(row.entry_id, category)
    version = request.form.get("version", "")
    errors = category_errors + workbench.validate_draft(session, _municipality(), draft, is_new=False)
    if errors:
        return _entry_page(row, draft, status=400, errors=errors, version=version)
    changes = workbench.diff(workbench.snapshot(row), draft.snapshot())
    if request.form.get("intent") == "preview":
        # An unchanged form replays the knowledge base as it is: no difference can show.
        report = _what_if({row.entry_id: draft.to_kb_entry(_municipality()) if draft.is_published else None}
                          if changes else {})
        return _entry_page(row, draft, report=report, version=version, changes=changes,
                           draft_overlaps=workbench.overlaps_for_draft(session, _municipality(), draft))
    try:
        changed = workbench.update_entry(session, row, draft, current_staff(), expected_version=version or None)
    except StaleEditError as exc:
        session.rollback()
        return _entry_page(row, draft, status=409, errors=[str(exc)], version=version)
    except EntryValidationError as exc:
        session.rollback()
        return _entry_page(row, draft, status=400, errors=exc.errors, version=version)
    if not changed:
        flash("変更はありませんでした。", "info")
        return redirect(url_for("faq_admin.entry", entry_id=row.entry_id))
    audit(session, "faq_entry_edit", row.entry_id, fields=[c.name for c in changes])
    session.commit()
    flash(f"「{row.title}」を保存しました。次の質問から新しい内容で回答します。", "success")
    return redirect(url_for("faq_admin.entry", entry_id=row.entry_id))


def _cluster_by_key(key: str | None, days: int | None = None) -> review.Cluster | None:
    if not key:
        return None
    queue = review.review_queue(get_session(), _municipality(), days=days or _days_arg())
    return review.find_cluster(queue, key)


def _days_arg() -> int:
    try:
        days = int(request.values.get("days", review.DEFAULT_DAYS))
    except ValueError:
        days = review.DEFAULT_DAYS
    return min(max(days, 1), 3650)


def _prefill_from_cluster(cluster: review.Cluster, suggestions: list[review.Suggestion]) -> EntryDraft:
    rep = cluster.representative.text
    others = [p.text for p in cluster.examples(50) if p.text != rep]
    category = ""
    if suggestions:
        top = workbench.get_entry_row(get_session(), _municipality(), suggestions[0].entry_id)
        category = top.category if top is not None else ""
    stamp = utcnow().strftime("%Y%m%d")
    suffix = hashlib.sha1(cluster.representative.norm.encode()).hexdigest()[:6]
    return EntryDraft(entry_id=f"staff-{stamp}-{suffix}", category=category, title=rep[: TITLE_MAX],
                      question=rep, alternates=tuple(others), is_published=True)


@bp.get("/entries/new")
@require_role(*EDIT_ROLES)
def entry_new() -> Any:
    """A form for a new entry (prefilled from a cluster of unanswered questions with ?cluster=)."""
    cluster = _cluster_by_key(request.args.get("cluster"))
    if request.args.get("cluster") and cluster is None:
        flash("その未回答のまとまりは見つかりませんでした（対応済みの可能性があります）。", "error")
    if cluster is not None:
        draft = _prefill_from_cluster(cluster, review.suggest_entries(get_session(), _municipality(), cluster, limit=1))
    else:
        draft = EntryDraft(entry_id=f"staff-{utcnow().strftime('%Y%m%d-%H%M%S')}", category="", title="", question="")
    return _entry_page(None, draft, cluster=cluster)


@bp.post("/entries/new")
@require_role(*EDIT_ROLES)
def entry_create() -> Any:
    """Preview or create a new entry (and close the cluster it came from)."""
    session = get_session()
    category, category_errors = _category_from_form(workbench.city_entries(session, _municipality()))
    draft = _draft_from_form(request.form.get("entry_id", ""), category)
    cluster = _cluster_by_key(request.form.get("cluster"))
    errors = category_errors + workbench.validate_draft(session, _municipality(), draft, is_new=True)
    if errors:
        return _entry_page(None, draft, status=400, errors=errors, cluster=cluster)
    extra = [p.text for p in cluster.phrasings] if cluster is not None else []
    if request.form.get("intent") == "preview":
        report = _what_if({draft.entry_id: draft.to_kb_entry(_municipality()) if draft.is_published else None}, extra)
        return _entry_page(None, draft, report=report, cluster=cluster,
                           draft_overlaps=workbench.overlaps_for_draft(session, _municipality(), draft))
    actor = current_staff()
    try:
        row = workbench.create_entry(session, _municipality(), draft, actor,
                                     note="未回答の質問から作成" if cluster is not None else "")
    except EntryValidationError as exc:
        session.rollback()
        return _entry_page(None, draft, status=400, errors=exc.errors, cluster=cluster)
    detail: dict[str, Any] = {"published": row.is_published}
    if cluster is not None:
        decision = review.mark_resolved(session, _municipality(), cluster, "created", row.entry_id, actor)
        detail.update(cluster=cluster.key, questions=cluster.count, decision=decision.id)
    audit(session, "faq_entry_create", row.entry_id, **detail)
    session.commit()
    flash(f"新しい項目「{row.title}」を作成しました。" + ("次の質問から回答に使われます。" if row.is_published else "（非公開）"), "success")
    return redirect(url_for("faq_admin.entry", entry_id=row.entry_id))


@bp.post("/entries/<path:entry_id>/publish")
@require_role(*EDIT_ROLES)
def entry_publish(entry_id: str) -> Any:
    """Publish (published=1) or unpublish (published=0) an entry."""
    session = get_session()
    row = _entry_or_404(entry_id)
    published = request.form.get("published") == "1"
    if workbench.set_published(session, row, published, current_staff()):
        audit(session, "faq_entry_publish" if published else "faq_entry_unpublish", row.entry_id)
        session.commit()
        flash(f"「{row.title}」を{'公開' if published else '非公開に'}しました。", "success")
    else:
        flash(f"「{row.title}」は既に{'公開' if published else '非公開'}です。", "info")
    back = request.form.get("next", "")
    return redirect(auth.safe_next_url(back) or url_for("faq_admin.entry", entry_id=row.entry_id))


@bp.post("/entries/<path:entry_id>/revert/<int:revision_id>")
@require_role(*EDIT_ROLES)
def entry_revert(entry_id: str, revision_id: int) -> Any:
    """Restore the content an entry had after (which=after) or before (which=before) a change."""
    session = get_session()
    row = _entry_or_404(entry_id)
    revision = session.get(FaqRevision, revision_id)
    which = "before" if request.form.get("which") == "before" else "after"
    if revision is None or revision.entry_id != row.entry_id or revision.municipality != row.municipality:
        flash("その履歴は見つかりません。", "error")
        return redirect(url_for("faq_admin.entry", entry_id=row.entry_id))
    try:
        changed = workbench.revert_entry(session, row, revision, which, current_staff())
    except EntryValidationError as exc:
        session.rollback()
        flash("戻せませんでした: " + " ".join(exc.errors), "error")
        return redirect(url_for("faq_admin.entry", entry_id=row.entry_id))
    except ValueError as exc:
        session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("faq_admin.entry", entry_id=row.entry_id))
    if changed:
        audit(session, "faq_entry_revert", row.entry_id, revision=revision.id, which=which)
        session.commit()
        flash(f"「{row.title}」を履歴 #{revision.id} の{'変更前' if which == 'before' else '変更後'}の内容に戻しました。", "success")
    else:
        flash("現在の内容と同じため、変更しませんでした。", "info")
    return redirect(url_for("faq_admin.entry", entry_id=row.entry_id))


# --- review of unanswered questions -----------------------------------------------------------------


@bp.get("/review")
@require_role(*EDIT_ROLES)
def review_list() -> str:
    """Clusters of unanswered questions, biggest (or newest) first."""
    days = _days_arg()
    sort = "recent" if request.args.get("sort") == "recent" else "size"
    queue = review.review_queue(get_session(), _municipality(), days=days, sort=sort)
    return render_template(
        "faq/review.html", queue=queue, clusters=queue.clusters[:MAX_CLUSTERS_SHOWN], days=days, sort=sort,
        days_choices=DAYS_CHOICES, reason_labels=review.REASON_LABELS, city=_city_name(),
    )


def _cluster_page(cluster: review.Cluster, *, status: int = 200, errors: list[str] | None = None,
                  report: whatif.WhatIfReport | None = None, selected_entry: str | None = None,
                  selected_texts: set[str] | None = None, reason: str = "", preview_entry: FaqEntry | None = None) -> Any:
    session = get_session()
    suggestions = review.suggest_entries(session, _municipality(), cluster)
    rows = workbench.city_entries(session, _municipality())
    confident = [x for x in suggestions if x.score >= SUGGESTION_MIN_SCORE]
    if selected_entry is None:
        selected_entry = confident[0].entry_id if confident else ""
    collisions: dict[str, list[tuple[str, str]]] = {}
    by_norm: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        for text in (r.question, r.title, *(r.alternates or [])):
            by_norm.setdefault(workbench.normalize(text), []).append((r.entry_id, r.title))
    for p in cluster.phrasings:
        owners = [o for o in by_norm.get(p.norm, []) if o[0] != selected_entry]
        if owners:
            collisions[p.text] = owners
    return render_template(
        "faq/cluster.html", cluster=cluster, suggestions=suggestions, entries=rows, selected_entry=selected_entry,
        selected_texts=selected_texts if selected_texts is not None else {p.text for p in cluster.phrasings},
        errors=errors or [], report=report, reason=reason, reason_labels=review.REASON_LABELS, days=_days_arg(),
        replay=_replay_defaults(), source_labels=whatif.SOURCE_LABELS, collisions=collisions,
        preview_entry=preview_entry, titles={r.entry_id: r.title for r in rows}, has_confident=bool(confident),
        language_label=staff_label,
    ), status


def _cluster_or_redirect(key: str) -> review.Cluster | Response:
    cluster = _cluster_by_key(key)
    if cluster is None:
        flash("その未回答のまとまりは見つかりませんでした。既に対応済みか、期間外の可能性があります。", "error")
        return redirect(url_for("faq_admin.review_list"))
    return cluster


@bp.get("/review/<key>")
@require_role(*EDIT_ROLES)
def cluster(key: str) -> Any:
    """One cluster: its questions, the likely entries, and what staff can do with it."""
    found = _cluster_or_redirect(key)
    if isinstance(found, Response):
        return found
    return _cluster_page(found)


@bp.post("/review/<key>/attach")
@require_role(*EDIT_ROLES)
def cluster_attach(key: str) -> Any:
    """Add the cluster's (chosen) questions as alternates of an entry: preview first, or save."""
    found = _cluster_or_redirect(key)
    if isinstance(found, Response):
        return found
    session = get_session()
    entry_id = request.form.get("entry_id", "")
    chosen = set(request.form.getlist("texts"))
    part = review.Cluster([p for p in found.phrasings if p.text in chosen])
    row = workbench.get_entry_row(session, _municipality(), entry_id) if entry_id else None
    errors = []
    if row is None:
        errors.append("追加先の項目を選んでください。")
    if not part.phrasings:
        errors.append("追加する質問を1つ以上選んでください。")
    if errors:
        return _cluster_page(found, status=400, errors=errors, selected_entry=entry_id, selected_texts=chosen)
    assert row is not None
    texts = [p.text for p in part.examples(len(part.phrasings))]
    if request.form.get("intent") == "preview":
        existing = [row.question, row.title, *(row.alternates or [])]
        new = workbench.dedupe_phrasings(texts, also_exclude=existing)
        draft = EntryDraft.from_row(row)
        draft = dataclasses.replace(draft, alternates=(*draft.alternates, *new))
        report = _what_if({row.entry_id: draft.to_kb_entry(_municipality()) if row.is_published else None}, texts)
        return _cluster_page(found, report=report, selected_entry=entry_id, selected_texts=chosen, preview_entry=row)
    actor = current_staff()
    added = workbench.add_alternates(session, row, texts, actor, note=f"未回答の質問（{part.count}件）から追加")
    decision = review.mark_resolved(session, _municipality(), part, "attached", row.entry_id, actor)
    audit(session, "faq_attach", row.entry_id, cluster=found.key, questions=part.count, added=len(added), decision=decision.id)
    session.commit()
    if added:
        flash(f"「{row.title}」に言い換えを {len(added)} 件追加しました。"
              + ("次の質問から回答に使われます。" if row.is_published else "この項目は非公開のため、公開すると回答に使われます。"), "success")
    else:
        flash(f"選んだ質問は「{row.title}」の言い換えに既にあります。まとまりは対応済みにしました。", "info")
    return redirect(url_for("faq_admin.review_list"))


@bp.post("/review/<key>/out-of-scope")
@require_role(*EDIT_ROLES)
def cluster_out_of_scope(key: str) -> Any:
    """Mark the cluster out of scope (with a reason); similar questions stop appearing."""
    found = _cluster_or_redirect(key)
    if isinstance(found, Response):
        return found
    session = get_session()
    reason = request.form.get("reason", "")
    try:
        decision = review.mark_out_of_scope(session, _municipality(), found, reason, current_staff())
    except ValueError as exc:
        session.rollback()
        return _cluster_page(found, status=400, errors=[str(exc)], reason=reason)
    # The audit log names the cluster, not residents' (masked) words.
    audit(session, "faq_out_of_scope", f"cluster:{found.key}", questions=found.count, decision=decision.id,
          reason=reason.strip()[:200])
    session.commit()
    flash(f"「{found.representative.text[:30]}」ほか {found.count} 件を対象外にしました。似た質問は今後この一覧に出ません。", "success")
    return redirect(url_for("faq_admin.review_list"))


@bp.get("/review/decisions")
@require_role(*EDIT_ROLES)
def decisions() -> str:
    """What staff decided about clusters (out of scope ones can be reopened)."""
    session = get_session()
    rows = review.decisions(session, _municipality())
    queue = review.review_queue(session, _municipality(), days=_days_arg())
    return render_template("faq/decisions.html", rows=rows, joined=queue.joined_out_of_scope, kind_labels=review.KIND_LABELS,
                           titles={r.entry_id: r.title for r in workbench.city_entries(session, _municipality())})


@bp.post("/review/decisions/<int:decision_id>/reopen")
@require_role(*EDIT_ROLES)
def decision_reopen(decision_id: int) -> Response:
    """Undo an out-of-scope decision: its questions come back to the review list."""
    session = get_session()
    decision = session.get(ReviewDecision, decision_id)
    if decision is None or decision.municipality != _municipality() or decision.kind != "out_of_scope" or not decision.is_active:
        flash("取り消せる判断が見つかりません。", "error")
        return redirect(url_for("faq_admin.decisions"))
    review.reopen(session, decision)
    audit(session, "faq_reopen", f"cluster:{decision.cluster_key}", decision=decision.id)
    session.commit()
    flash("対象外を取り消しました。質問は未回答の一覧に戻ります。", "success")
    return redirect(url_for("faq_admin.decisions"))


# --- import / export ------------------------------------------------------------------------------


def _limits() -> importer.ImportLimits:
    return importer.ImportLimits.from_config(current_app.config)


def _import_page(status: int = 200, **context: Any) -> Any:
    """The import page, with the city's unfinished imports (running, or interrupted and waiting to be finished)."""
    context.setdefault("plan", None)
    context.setdefault("errors", None)
    jobs = importer.unfinished(get_db(), _municipality())
    interrupted = [job for job in jobs if importer.is_interrupted(job)]
    running = [job for job in jobs if job not in interrupted]
    return render_template("faq/import.html", city=_city_name(), running=running, interrupted=interrupted, **context), status


def _end_request_transaction() -> None:
    """An import reads and writes in transactions of its own: end the request's (on SQLite it holds the write lock)."""
    get_session().commit()


@bp.get("/import")
@require_role(*EDIT_ROLES)
def import_page() -> Any:
    """Upload a CSV (either format) for a preview; download the entries as CSV."""
    _end_request_transaction()
    return _import_page()


@bp.post("/import")
@require_role(*EDIT_ROLES)
def import_preview() -> Any:
    """Validate an uploaded CSV and show what it would change (kept as a draft until confirmed)."""
    _end_request_transaction()
    upload = request.files.get("file")
    filename = (upload.filename or "")[:200] if upload else ""
    if upload is None or not filename:
        return _import_page(400, errors=[(0, "CSVファイルを選んでください。")])
    data = upload.stream.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        return _import_page(400, errors=[(0, "ファイルが大きすぎます（5MBまで）。")], filename=filename)
    try:
        source = importer.CsvSource(data=data)
        plan = importer.preview(get_db(), source, _municipality(), _limits())
        text = data.decode(source.encoding)
    except ImportError_ as exc:
        return _import_page(400, errors=exc.errors, filename=filename)
    # The file waits in the database (not in the page: forms are limited in size, and any worker may
    # receive the confirmation); drafts older than a day are dropped.
    session = get_session()
    session.execute(delete(ImportDraft).where(ImportDraft.created_at < utcnow() - IMPORT_DRAFT_TTL))
    actor = current_staff()
    draft = ImportDraft(token=secrets.token_urlsafe(24), municipality=_municipality(),
                        staff_user_id=actor.id if actor else None, filename=filename, csv_text=text, created_at=utcnow())
    session.add(draft)
    session.commit()
    return _import_page(plan=plan, token=draft.token, filename=filename, labels=workbench.FIELD_LABELS)


@bp.post("/import/confirm")
@require_role(*EDIT_ROLES)
def import_confirm() -> Any:
    """Import the previewed CSV: checked again in full, then written in short transactions (faq.importer)."""
    session = get_session()
    actor = current_staff()
    draft = session.scalar(select(ImportDraft).where(ImportDraft.token == request.form.get("token", "")))
    _end_request_transaction()
    if (draft is None or draft.municipality != _municipality()
            or draft.staff_user_id != (actor.id if actor else None)):
        flash("取り込む内容が見つかりません。もう一度ファイルを選んでください。", "error")
        return redirect(url_for("faq_admin.import_page"))
    filename = draft.filename
    try:
        result = importer.run_import(get_db(), importer.CsvSource(text=draft.csv_text), _municipality(), _limits(),
                                     filename=filename, staff_user_id=actor.id if actor else None,
                                     username=actor.username if actor else "")
    except ImportError_ as exc:
        return _import_page(400, errors=exc.errors, filename=filename)
    session.execute(delete(ImportDraft).where(ImportDraft.id == draft.id))
    audit(session, "faq_import", filename, added=result.added, updated=result.updated, unchanged=result.unchanged)
    session.commit()
    flash(f"取り込みました（{result.summary()}）。次の質問から新しい内容で回答します。", "success")
    return redirect(url_for("faq_admin.index"))


@bp.post("/import/resume")
@require_role(*EDIT_ROLES)
def import_resume() -> Any:
    """Finish an import that was interrupted after its commit point (or drop one interrupted before it)."""
    _end_request_transaction()
    try:
        done = importer.recover(get_db(), _municipality(), _limits())
    except ImportError_ as exc:
        return _import_page(409, errors=exc.errors)
    session = get_session()
    for result in done:
        audit(session, "faq_import", result.filename, added=result.added, updated=result.updated,
              unchanged=result.unchanged, resumed=True)
    session.commit()
    flash("途中で止まっていた取り込みを最後まで反映しました。" if done else "途中で止まっていた取り込みを取り消しました（何も変わっていません）。",
          "success")
    return redirect(url_for("faq_admin.import_page"))


@bp.get("/export")
@require_role(*EDIT_ROLES)
def export() -> Response:
    """The city's entries as CSV (format=project or kosodate), UTF-8 with BOM so Excel reads it."""
    kind = "kosodate" if request.args.get("format") == "kosodate" else "project"
    session = get_session()
    body = export_csv(session, _municipality(), kind)
    audit(session, "faq_export", kind)
    session.commit()
    name = f"faq-{_municipality()}-{kind}-{dt.date.today():%Y%m%d}.csv"
    return Response("\ufeff" + body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def init_app(app: Flask) -> None:
    """Register the pages, the navigation entry and the audit labels."""
    app.register_blueprint(bp)
    register_nav("FAQ管理", "faq_admin.index", list(EDIT_ROLES), order=20)
    auth.AUDIT_ACTION_LABELS.update(AUDIT_LABELS)
    for action, text in AUDIT_TEXTS.items():
        register_audit_text(action, text)

