"""Admin pages of the city's directory (連絡先（課の一覧）): role admin only.

The list shows each section's name, phone, 受付時間 and URL (未設定 when empty) and the お問い合わせ
line answers end with; the edit form validates in Japanese, changes nothing when invalid, and every
saved change is audited. Views are thin over faq.directory.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from bot import auth
from bot.auth import audit, register_nav, require_role
from bot.db import get_session
from faq import directory

bp = Blueprint("directory_admin", __name__, url_prefix="/admin/directory")

ROLES = ("admin",)
AUDIT_LABELS = {
    "directory_edit": "連絡先（課）の編集",
    "directory_reset": "連絡先を同梱データに戻す",
}


def _municipality() -> str:
    return str(current_app.config["MUNICIPALITY"])


def _line_or_404(key: str) -> directory.DirectoryLine:
    line = directory.staff_line(get_session(), _municipality(), key)
    if line is None:
        abort(404)
    return line


@bp.get("")
@require_role(*ROLES)
def index() -> str:
    """Every section of the city's directory with its fields and the line answers end with."""
    session = get_session()
    current = directory.current_directory(session, _municipality())
    lines = directory.staff_lines(session, _municipality())
    return render_template(
        "faq/directory.html", lines=lines, current=current, labels=directory.FIELD_LABELS,
        line_label=directory.LINE_LABEL,
    )


def _edit_page(line: directory.DirectoryLine, values: dict[str, str], errors: list[str], status: int = 200) -> Any:
    current = directory.current_directory(get_session(), _municipality())
    return render_template(
        "faq/directory_edit.html", line=line, values=values, errors=errors, current=current,
        labels=directory.FIELD_LABELS, limits={"name": directory.NAME_MAX, "hours": directory.HOURS_MAX,
                                               "url": directory.URL_MAX},
        line_label=directory.LINE_LABEL,
    ), status


@bp.get("/<key>")
@require_role(*ROLES)
def edit(key: str) -> Any:
    """The edit form of one section (or of 市役所全体)."""
    line = _line_or_404(key)
    return _edit_page(line, {f: getattr(line.contact, f) for f in directory.FIELDS}, [])


@bp.post("/<key>")
@require_role(*ROLES)
def save(key: str) -> Any:
    """Save the form; invalid input is shown again with the reasons and nothing is changed."""
    line = _line_or_404(key)
    values, errors = directory.clean_values({f: request.form.get(f, "") for f in directory.FIELDS})
    if errors:
        return _edit_page(line, {f: request.form.get(f, "") for f in directory.FIELDS}, errors, 400)
    session = get_session()
    changes = directory.save_contact(session, _municipality(), key, values)
    if not changes:
        flash("変更はありませんでした。", "info")
        return redirect(url_for("directory_admin.edit", key=key))
    audit(session, "directory_edit", key, municipality=_municipality(), changes=changes)
    session.commit()
    flash(f"「{values['name']}」の連絡先を保存しました。次の回答から新しい内容を表示します。", "success")
    return redirect(url_for("directory_admin.index"))


@bp.post("/<key>/reset")
@require_role(*ROLES)
def reset(key: str) -> Response:
    """Back to the shipped value (city.yaml); `faq load` keeps it up to date again."""
    line = _line_or_404(key)
    if line.shipped is None:
        abort(404)
    session = get_session()
    changes = directory.reset_contact(session, _municipality(), key)
    audit(session, "directory_reset", key, municipality=_municipality(), changes=changes)
    session.commit()
    flash(f"「{line.shipped.name}」を同梱データの内容に戻しました。", "success")
    return redirect(url_for("directory_admin.index"))


def init_app(app: Flask) -> None:
    """Register the pages, the navigation entry and the audit labels."""
    app.register_blueprint(bp)
    register_nav("連絡先（課の一覧）", "directory_admin.index", list(ROLES), order=70)
    auth.AUDIT_ACTION_LABELS.update(AUDIT_LABELS)
