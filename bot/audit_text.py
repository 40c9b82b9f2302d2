"""The audit log in sentences: 「管理者ユーザー admin を作成（最初の管理者）」 instead of key=value.

Each package may register a function that words its actions (register_audit_text); any other
action is shown as its label, its target and its details with Japanese names of the keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.models import ROLE_LABELS, AuditLog

AuditText = Callable[[AuditLog], str]
AUDIT_TEXTS: dict[str, AuditText] = {}

# Japanese names of detail keys (those of every package, so that none shows as code).
DETAIL_LABELS = {
    "role": "権限", "first_admin": "最初の管理者", "known_user": "登録済みのユーザー名", "step": "段階",
    "two_factor": "二段階認証", "remaining": "残り", "count": "件数", "confirmed_with": "確認方法",
    "old": "変更前", "new": "変更後", "was_enabled": "有効だった", "fields": "変更した項目", "published": "公開",
    "cluster": "未回答のまとまり", "questions": "質問数", "decision": "対応の記録", "revision": "履歴",
    "which": "戻した内容", "added": "追加", "updated": "更新", "unchanged": "変更なし", "removed": "削除",
    "days": "保存日数", "followers": "友だち数", "source": "出典", "municipality": "市町村", "changes": "変更",
    "title": "題名", "audience": "配信先", "schedule": "日時", "recipients_now": "現在の対象者数",
    "emergency": "緊急", "rule": "条件", "replaced": "上書き", "floor": "最少人数", "reason": "理由",
    "value": "数", "basis": "種類", "as_of": "時点", "before": "変更前", "age_bands": "年代", "genders": "性別",
    "areas": "地域", "interests": "関心", "include": "含む", "exclude": "除く", "name": "名称",
    "phone": "電話番号", "hours": "受付時間", "url": "URL", "resumed": "再開", "languages": "ほかの言語の版",
}
VALUE_WORDS = {"totp": "認証アプリの確認コード", "recovery_code": "復旧コード", "code": "確認コード",
               "before": "変更前", "after": "変更後"}


def register_audit_text(action: str, text: AuditText) -> None:
    """Word an action of the audit log (the function gets the row and returns one Japanese sentence)."""
    AUDIT_TEXTS[action] = text


def value_text(value: Any, key: str = "") -> str:
    """A detail value in words: はい/いいえ, role names, lists with 「、」, nested details in brackets."""
    if isinstance(value, bool):
        return "はい" if value else "いいえ"
    if value is None or value == "":
        return "なし"
    if key in ("role", "old", "new") and isinstance(value, str) and value in ROLE_LABELS:
        return ROLE_LABELS[value]
    if isinstance(value, int | float):
        return f"{value:,}"
    if isinstance(value, list | tuple):
        if key == "changes" or (len(value) == 2 and key in DETAIL_LABELS and key in ("name", "phone", "hours", "url")):
            return f"「{value[0]}」→「{value[1]}」"
        return "、".join(value_text(item) for item in value) if value else "なし"
    if isinstance(value, Mapping):
        return "、".join(f"{DETAIL_LABELS.get(str(k), str(k))}: {value_text(v, str(k))}" for k, v in value.items())
    text = str(value)
    return VALUE_WORDS.get(text, text)


def details_text(detail: Mapping[str, Any] | None, skip: tuple[str, ...] = ()) -> str:
    """「（権限: 管理者、最初の管理者: はい）」 for the details not already said, or ""."""
    items = [f"{DETAIL_LABELS.get(k, k)}: {value_text(v, k)}" for k, v in (detail or {}).items() if k not in skip]
    return f"（{'、'.join(items)}）" if items else ""


def describe(row: AuditLog, labels: Mapping[str, str]) -> str:
    """One sentence for an audit row."""
    text = AUDIT_TEXTS.get(row.action)
    if text is not None:
        try:
            return text(row)
        except (KeyError, TypeError, ValueError, AttributeError):
            pass  # a row written before its wording changed: say it the plain way
    label = labels.get(row.action, row.action)
    target = f" {row.target}" if row.target else ""
    return f"{label}{target}{details_text(row.detail)}"


# --- the admin shell's own actions -----------------------------------------------------------------


def _d(row: AuditLog) -> dict[str, Any]:
    return dict(row.detail or {})


def _role(value: Any) -> str:
    return ROLE_LABELS.get(str(value), str(value))


def _login(row: AuditLog) -> str:
    factor = _d(row).get("two_factor")
    return "ログイン" + (f"（二段階認証: {value_text(factor)}）" if factor else "")


def _login_failed(row: AuditLog) -> str:
    known = _d(row).get("known_user")
    return f"ユーザー名「{row.target}」でログインに失敗" + ("" if known else "（登録のないユーザー名）")


def _login_locked(row: AuditLog) -> str:
    step = "（確認コードの段階）" if _d(row).get("step") == "code" else ""
    return f"ユーザー名「{row.target}」のログインを拒否（失敗が続いたため待ち時間中）{step}"


def _user_create(row: AuditLog) -> str:
    detail = _d(row)
    first = "（最初の管理者）" if detail.get("first_admin") else ""
    return f"{_role(detail.get('role', ''))}ユーザー {row.target} を作成{first}"


def _role_change(row: AuditLog) -> str:
    detail = _d(row)
    return f"ユーザー {row.target} の権限を「{_role(detail['old'])}」から「{_role(detail['new'])}」に変更"


def _2fa_disable(row: AuditLog) -> str:
    confirmed = _d(row).get("confirmed_with")
    return f"ユーザー {row.target} の二段階認証を無効化" + (f"（{value_text(confirmed)}で確認）" if confirmed else "")


def _2fa_reset(row: AuditLog) -> str:
    was = _d(row).get("was_enabled")
    return f"ユーザー {row.target} の二段階認証をリセット（{'有効だったもの' if was else 'まだ設定されていなかったもの'}）"


for _action, _text in {
    "login": _login,
    "login_failed": _login_failed,
    "login_locked": _login_locked,
    "logout": lambda row: "ログアウト",
    "user_create": _user_create,
    "user_role_change": _role_change,
    "user_deactivate": lambda row: f"ユーザー {row.target} を無効化（ログインできなくなる）",
    "user_activate": lambda row: f"ユーザー {row.target} を有効化",
    "user_set_password": lambda row: f"ユーザー {row.target} のパスワードを設定",
    "password_change": lambda row: f"ユーザー {row.target} が自分のパスワードを変更",
    "login_2fa_failed": lambda row: f"ユーザー {row.target} の確認コードが違うためログインに失敗",
    "2fa_enable": lambda row: f"ユーザー {row.target} の二段階認証を有効化",
    "2fa_enable_failed": lambda row: f"ユーザー {row.target} の二段階認証の設定に失敗（確認コードが違う）",
    "2fa_disable": _2fa_disable,
    "2fa_disable_failed": lambda row: f"ユーザー {row.target} の二段階認証の無効化に失敗（確認が通らない）",
    "2fa_reset": _2fa_reset,
    "2fa_recovery_code_used": lambda row: f"ユーザー {row.target} が復旧コードでログイン（残り {_d(row)['remaining']} 個）",
    "2fa_recovery_codes_new": lambda row: f"ユーザー {row.target} の復旧コードを再発行（{_d(row)['count']} 個）",
    "2fa_recovery_codes_new_failed": lambda row: f"ユーザー {row.target} の復旧コードの再発行に失敗（確認が通らない）",
}.items():
    register_audit_text(_action, _text)
