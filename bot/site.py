"""The site outside the staff admin: the landing page at /, Japanese error pages (JSON for the
webhook and the other machine endpoints), and addresses typed with a trailing slash.

Error pages chain with the admin's: its handlers answer under /admin and hand everything else
back (they return the exception itself); what they hand back, and every error they have no
handler for, is answered here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, current_app, jsonify, redirect, render_template, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RoutingException

bp = Blueprint("site", __name__)

# Machine endpoints: their errors are JSON like the webhook's own {"message": ...} answers.
JSON_PATHS = ("/callback", "/healthz")
JSON_PREFIXES = ("/simulator/api/",)

ERROR_TEXTS: dict[int, tuple[str, str]] = {
    400: ("リクエストが正しくありません", "送信された内容を受け付けられませんでした。ページを読み込み直してから、もう一度お試しください。"),
    403: ("このページは表示できません", "このページを開く権限がありません。"),
    404: ("ページが見つかりません", "お探しのページは存在しないか、移動した可能性があります。アドレスをご確認ください。"),
    405: ("この操作はできません", "このページではその操作を受け付けていません。"),
    500: ("サーバーでエラーが発生しました", "申し訳ありません。しばらくしてから、もう一度お試しください。問題が続く場合は、市の担当課にお知らせください。"),
}
OTHER_ERROR = ("エラーが発生しました", "申し訳ありません。このページを表示できませんでした。")

ErrorHandler = Callable[[Any], Any]


@bp.get("/")
def index() -> str:
    """What someone who opens the bare address sees: what this is and where staff go."""
    config = current_app.config
    city = current_app.extensions["site"]["city_name"](config["MUNICIPALITY"]) or "市"
    return render_template("site/index.html", city=city, simulator=bool(config.get("SIMULATOR_ENABLED")))


def wants_json() -> bool:
    """True for the webhook and the other machine endpoints, and for clients that ask for JSON."""
    path = request.path.rstrip("/") or "/"
    if path in JSON_PATHS or request.path.startswith(JSON_PREFIXES) or request.is_json:
        return True
    return request.accept_mimetypes.best_match(("text/html", "application/json")) == "application/json"


def slash_redirect_target() -> str | None:
    """For /admin/faq/ the address /admin/faq, when that one exists (else None)."""
    path = request.path
    if len(path) < 2 or not path.endswith("/") or path.startswith("//"):
        return None
    target = path.rstrip("/")
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        adapter.match(target, method=request.method)
    except HTTPException:  # no such page, another method only, or a redirect of its own
        return None
    query = request.query_string.decode("latin-1")
    return request.script_root + target + (f"?{query}" if query else "")


def register_error_renderer(app: Flask, prefix: str, render: ErrorHandler) -> None:
    """Let a package answer the errors under `prefix` its own way (e.g. a JSON API's {"error": ...})."""
    app.extensions.setdefault("site_error_renderers", []).append((prefix, render))


def error_response(exc: HTTPException) -> Any:
    """The Japanese page, or JSON for machine endpoints, for an error nobody else answered."""
    for prefix, render in current_app.extensions.get("site_error_renderers", ()):
        if request.path.startswith(prefix):
            return render(exc)
    code = exc.code or 500
    # Allow (405), Retry-After (429) and the like stay; the body is ours.
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    if wants_json():
        return jsonify({"message": exc.name.lower()}), code, headers
    title, message = ERROR_TEXTS.get(code, OTHER_ERROR)
    return render_template("site/error.html", code=code, title=title, message=message), code, headers


def _handle(exc: HTTPException, previous: ErrorHandler | None = None) -> Any:
    if isinstance(exc, RoutingException) or exc.code is None or exc.code < 400:
        return exc  # Flask's own routing redirects, not errors
    if exc.code == 404:
        target = slash_redirect_target()
        if target is not None:
            return redirect(target, 308)  # 308 keeps the method and body of a form post
    if previous is not None:
        result = previous(exc)
        if not isinstance(result, HTTPException):  # answered (an admin page)
            return result
    return error_response(exc)


def _chained(previous: ErrorHandler) -> ErrorHandler:
    return lambda exc: _handle(exc, previous)


def init_app(app: Flask, city_name: Callable[[str], str]) -> None:
    """Register the landing page and the error handling; call after every package that registers
    error handlers of its own (bot.admin), so theirs are chained rather than replaced."""
    app.extensions["site"] = {"city_name": city_name}
    app.register_blueprint(bp)
    for code, by_class in list(app.error_handler_spec[None].items()):
        if code is None:
            continue
        for exc_class, previous in list(by_class.items()):
            app.register_error_handler(exc_class, _chained(previous))
    app.register_error_handler(HTTPException, _handle)
