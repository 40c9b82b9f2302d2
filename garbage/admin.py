"""Admin pages (role faq): the sorting dictionary's items — search, add, edit, delete — and what
the calendar holds. Every change is audited; imports are the CLI's (`flask garbage ...`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import func, or_, select
from werkzeug.wrappers import Response

from bot import auth
from bot.auth import audit, register_nav, require_role
from bot.db import get_session
from bot.text import multi_line, single_line
from garbage import service
from garbage.models import SOURCE_ITEMS, GarbageArea, GarbageBreak, GarbageItem, GarbageKind

bp = Blueprint("garbage_admin", __name__, url_prefix="/admin/garbage", template_folder="templates")

ROLES = ("faq",)
PAGE_SIZE = 200
AUDIT_LABELS = {
    "garbage_item_create": "ごみ分別の品目の追加",
    "garbage_item_edit": "ごみ分別の品目の変更",
    "garbage_item_delete": "ごみ分別の品目の削除",
    "garbage_items_import": "ごみ分別の一覧の取り込み",
    "garbage_calendar_import": "ごみ収集カレンダーの取り込み",
}
FIELDS = (("name", "品目名", 200), ("kana", "品目名（カナ）", 200), ("category", "分別区分", 100))


def _municipality() -> str:
    return str(current_app.config["MUNICIPALITY"])


@bp.get("/")
@require_role(*ROLES)
def items() -> str:
    """The items, searched by name or reading and filtered by category."""
    session = get_session()
    query = single_line(request.args.get("q"))
    category = request.args.get("category") or ""
    where = [GarbageItem.municipality == _municipality()]
    if query:
        like = f"%{query}%"
        where.append(or_(GarbageItem.name.like(like), GarbageItem.kana.like(like)))
    if category:
        where.append(GarbageItem.category == category)
    total = session.scalar(select(func.count(GarbageItem.id)).where(*where)) or 0
    rows = session.scalars(select(GarbageItem).where(*where).order_by(GarbageItem.kana, GarbageItem.name).limit(PAGE_SIZE)).all()
    categories = session.scalars(select(GarbageItem.category).where(GarbageItem.municipality == _municipality())
                                 .group_by(GarbageItem.category).order_by(GarbageItem.category)).all()
    kinds = session.scalars(select(GarbageKind.label).where(GarbageKind.municipality == _municipality())
                            .order_by(GarbageKind.position)).all()
    areas = session.scalar(select(func.count(GarbageArea.id)).where(GarbageArea.municipality == _municipality())) or 0
    breaks = session.scalars(select(GarbageBreak).where(GarbageBreak.municipality == _municipality())
                             .order_by(GarbageBreak.start_date)).all()
    return render_template("garbage/items.html", rows=rows, total=total, query=query, category=category,
                           categories=categories, kinds=kinds, areas=areas, breaks=breaks, page_size=PAGE_SIZE,
                           unmapped=[c for c in categories if kinds and service.kind_for_category(c, list(kinds)) is None])


def _form_values() -> tuple[dict[str, str], list[str]]:
    values = {key: single_line(request.form.get(key)) for key, _label, _limit in FIELDS}
    values["notes"] = multi_line(request.form.get("notes"))
    values["remarks"] = multi_line(request.form.get("remarks"))
    errors = [f"{label}は{limit}文字までです。" for key, label, limit in FIELDS if len(values[key]) > limit]
    if not values["name"]:
        errors.append("品目名を入力してください。")
    if not values["category"]:
        errors.append("分別区分を入力してください。")
    if len(values["notes"]) > 2000 or len(values["remarks"]) > 2000:
        errors.append("注意点と備考は2000文字までです。")
    return values, errors


def _item(item_id: int) -> GarbageItem:
    row = get_session().get(GarbageItem, item_id)
    if row is None or row.municipality != _municipality():
        abort(404)
    return row


@bp.route("/new", methods=["GET", "POST"])
@require_role(*ROLES)
def new() -> Any:
    """Add an item."""
    if request.method == "GET":
        return render_template("garbage/item.html", item=None, values={}, errors=[])
    values, errors = _form_values()
    if errors:
        return render_template("garbage/item.html", item=None, values=values, errors=errors), 422
    session = get_session()
    row = GarbageItem(municipality=_municipality(), source=SOURCE_ITEMS, extra={}, **values)
    session.add(row)
    session.flush()
    audit(session, "garbage_item_create", values["name"], item=row.id)
    session.commit()
    flash(f"「{values['name']}」を追加しました。", "info")
    return redirect(url_for("garbage_admin.items"))


@bp.route("/<int:item_id>", methods=["GET", "POST"])
@require_role(*ROLES)
def edit(item_id: int) -> Any:
    """Edit an item (what residents are told from the next question on)."""
    row = _item(item_id)
    if request.method == "GET":
        return render_template("garbage/item.html", item=row, values={}, errors=[])
    values, errors = _form_values()
    if errors:
        return render_template("garbage/item.html", item=row, values=values, errors=errors), 422
    changed = [key for key, value in values.items() if getattr(row, key) != value]
    for key in changed:
        setattr(row, key, values[key])
    session = get_session()
    if changed:
        audit(session, "garbage_item_edit", row.name, item=row.id, fields=changed)
    session.commit()
    flash(f"「{row.name}」を保存しました。" if changed else "変更はありませんでした。", "info")
    return redirect(url_for("garbage_admin.items"))


@bp.post("/<int:item_id>/delete")
@require_role(*ROLES)
def delete(item_id: int) -> Response:
    """Delete an item."""
    row = _item(item_id)
    session = get_session()
    audit(session, "garbage_item_delete", row.name, item=row.id)
    session.delete(row)
    session.commit()
    flash(f"「{row.name}」を削除しました。", "info")
    return redirect(url_for("garbage_admin.items"))


def init_app(app: Flask) -> None:
    """Register the pages, the navigation entry and the audit wording."""
    app.register_blueprint(bp)
    register_nav("ごみ分別", "garbage_admin.items", list(ROLES), order=45)
    auth.AUDIT_ACTION_LABELS.update(AUDIT_LABELS)
