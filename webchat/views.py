"""HTTP edges of the homepage channel: the widget script, the chat page and its JSON API, the
public FAQ pages. Parse and check the request, call webchat.conversation or the faq service,
render; every refusal of the API is a JSON {"error": "..."} in Japanese, never a 500."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, render_template, request, url_for
from markupsafe import Markup, escape
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from bot import site
from bot.dates import japanese_date
from bot.i18n import Translator, city_languages
from bot.db import get_db
from faq import service
from faq.models import FaqEntry
from webchat import conversation, texts
from webchat.conversation import ChatError
from webchat.ratelimit import RateLimiter, retry_after

log = logging.getLogger(__name__)

bp = Blueprint("webchat", __name__, template_folder="templates")

STATIC = Path(__file__).resolve().parent / "static"
API_PREFIX = "/chat/api/"
MAX_BODY_BYTES = 64 * 1024
MAX_TEXT_UTF16 = 5000  # what LINE lets a resident type; longer questions are refused, not cut
MAX_SEARCH_CHARS = 200
WIDGET_MAX_BYTES = 30 * 1024
ASSET_CACHE = "public, max-age=300"  # short: a city's new setting or an update shows within minutes; ETag revalidates
ASSET_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
_ORIGIN_RE = re.compile(r"^https?://[^/\s?#]+$")
_URL_RE = re.compile(r"https?://[^\s「」『』（）()<>、。]+")


# --- origins, CORS and framing ---------------------------------------------------------------------


def parse_origins(value: str | None) -> tuple[str, ...]:
    """WEBCHAT_ALLOWED_ORIGINS ("https://www.city.example.jp, https://city.example.jp") as origins;
    ValueError naming an entry that is not scheme://host[:port]."""
    origins = []
    for raw in (value or "").split(","):
        origin = raw.strip().rstrip("/").lower()
        if not origin:
            continue
        if not _ORIGIN_RE.match(origin):
            raise ValueError(f"{raw.strip()!r} is not an origin like https://www.city.example.jp")
        origins.append(origin)
    return tuple(dict.fromkeys(origins))


def own_origin() -> str:
    """This server's origin as the browser sees it (behind a proxy: TRUSTED_PROXIES)."""
    return request.host_url.rstrip("/").lower()


def allowed_origins() -> tuple[str, ...]:
    """The city's homepage origins that may embed the chat and call its API (besides this server)."""
    return current_app.extensions["webchat"]["origins"]


def origin_allowed(origin: str) -> bool:
    """True for this server's own origin and the configured ones."""
    origin = origin.rstrip("/").lower()
    return origin == own_origin() or origin in allowed_origins()


def frame_ancestors() -> str:
    """The CSP frame-ancestors source list: this server and the allowed origins."""
    return " ".join(("'self'", *allowed_origins()))


def _page_csp(script: bool) -> str:
    scripts = "script-src 'self'; connect-src 'self'; " if script else ""
    return (f"default-src 'none'; {scripts}style-src 'self'; img-src 'self' data:; form-action 'self'; "
            f"base-uri 'none'; frame-ancestors {frame_ancestors()}")


@bp.after_request
def _headers(response: Response) -> Response:
    """Framing and CORS for the chat's pages and API; nothing for the widget script (any page may load it)."""
    path = request.path
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if path.startswith("/chat/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
        response.vary.add("Origin")
        origin = request.headers.get("Origin", "")
        if origin and origin.lower() != own_origin() and origin_allowed(origin):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Max-Age"] = "600"
            if request.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = "GET, POST"
                response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    elif response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", _page_csp(script=path == "/chat"))
    return response


# --- the JSON API's guards -------------------------------------------------------------------------


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


@bp.errorhandler(ChatError)
def _chat_error(exc: ChatError) -> Response:
    return _error(exc.status, exc.message)


def _limit(kind: str, key: str) -> None:
    """Count a request against a limit; ChatError-like 429 response raised when it is over."""
    limiter: RateLimiter = current_app.extensions["webchat"][kind]
    wait = limiter.hit(key)
    if wait:
        seconds = retry_after(wait)
        abort(_error(429, texts.ERR_RATE.format(seconds=seconds), {"Retry-After": str(seconds)}))


def _client_address() -> str:
    return (request.remote_addr or "")[:64]


@bp.before_request
def _guard_api() -> Response | None:
    """POSTs of the API: an allowed Origin (when the browser sends one), JSON, a small body, the
    address's rate limit. No cookie carries authority here, so these stop cross-site posts."""
    if request.method != "POST" or not request.path.startswith(API_PREFIX):
        return None
    origin = request.headers.get("Origin")
    if origin is not None and not origin_allowed(origin):
        return _error(403, texts.ERR_ORIGIN)
    if request.mimetype != "application/json":
        return _error(415, texts.ERR_JSON_REQUIRED)
    if (request.content_length or 0) > MAX_BODY_BYTES:
        return _error(413, texts.ERR_BODY_TOO_LARGE)
    request.max_content_length = MAX_BODY_BYTES
    _limit("by_address", _client_address())
    return None


def _body() -> dict[str, Any]:
    data = request.get_data(cache=True)
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ChatError(400, texts.ERR_BAD_JSON) from None
    if not isinstance(body, dict):
        raise ChatError(400, texts.ERR_NOT_OBJECT)
    return body


def _session(body: dict[str, Any]) -> str:
    """The hash of the body's session id, after the session's rate limit."""
    value = body.get("session")
    if not isinstance(value, str) or not conversation.SESSION_RE.match(value):
        raise ChatError(400, texts.ERR_SESSION)
    web_session = conversation.session_hash(value)
    _limit("by_session", web_session)
    return web_session


def _question(body: dict[str, Any]) -> str:
    """The question checked: a string, readable, not empty, at most LINE's 5000 characters."""
    value = body.get("text")
    if value is None:
        raise ChatError(400, texts.ERR_TEXT_MISSING)
    if not isinstance(value, str):
        raise ChatError(400, texts.ERR_TEXT_TYPE)
    try:
        utf16 = len(value.encode("utf-16-le")) // 2  # lone surrogates (\ud800) cannot be encoded
    except UnicodeEncodeError:
        raise ChatError(400, texts.ERR_TEXT_UNREADABLE) from None
    if utf16 > MAX_TEXT_UTF16:
        raise ChatError(400, texts.ERR_TEXT_TOO_LONG.format(limit=MAX_TEXT_UTF16))
    text = value.replace("\x00", "").strip()
    if not text:
        raise ChatError(400, texts.ERR_TEXT_MISSING)
    return text[: int(current_app.config["MAX_TEXT_CHARS"])]  # as LINE questions are cut


def _translator() -> Translator:
    """The language of ?lang= (the one the chat's last answer was in), if the city offers it; else Japanese."""
    language = request.args.get("lang", "")
    return Translator(language if language in city_languages(current_app.config) else None)


def _entry_url(entry_id: str) -> str:
    return url_for("webchat.faq_entry", entry_id=entry_id)


# --- the JSON API ------------------------------------------------------------------------------------


@bp.post("/chat/api/ask")
def api_ask() -> Any:
    """A question: {"text", "session"} -> the decision and the messages to show."""
    body = _body()
    web_session = _session(body)
    text = _question(body)
    config = current_app.config
    prepared = None
    if conversation.parse_choice(text) is None:  # match before the write transaction, as the inbox does
        with get_db().read_session() as session:
            prepared = service.prepare_answer(session, text, config)
    with get_db().session() as session:
        payload = conversation.ask(session, text, config, web_session, _entry_url, prepared)
    return jsonify(payload)


@bp.post("/chat/api/choose")
def api_choose() -> Any:
    """An entry picked after 「もしかして」: {"session", "log_id", "choice"} ("" = どれでもない)."""
    body = _body()
    web_session = _session(body)
    with get_db().session() as session:
        payload = conversation.choose(session, current_app.config, web_session, body.get("log_id"),
                                      body.get("choice"), _entry_url)
    return jsonify(payload)


@bp.post("/chat/api/feedback")
def api_feedback() -> Any:
    """「役に立ちましたか？」: {"session", "log_id", "helpful": true|false}."""
    body = _body()
    web_session = _session(body)
    with get_db().session() as session:
        payload = conversation.feedback(session, current_app.config, web_session, body.get("log_id"), body.get("helpful"))
    return jsonify(payload)


@bp.get("/chat/api/categories")
def api_categories() -> Any:
    """The category menu."""
    with get_db().read_session() as session:
        return jsonify(conversation.menu_payload(session, current_app.config["MUNICIPALITY"], _translator()))


@bp.get("/chat/api/categories/<category>")
def api_category(category: str) -> Any:
    """The entries of one category."""
    with get_db().read_session() as session:
        payload = conversation.category_payload(session, current_app.config["MUNICIPALITY"], category, _translator())
    if payload is None:
        raise ChatError(404, texts.ERR_NOT_FOUND)
    return jsonify(payload)


@bp.get("/chat/api/entries/<path:entry_id>")
def api_entry(entry_id: str) -> Any:
    """An entry chosen from a category: its answer."""
    with get_db().read_session() as session:
        payload = conversation.entry_payload(session, current_app.config["MUNICIPALITY"], entry_id, _entry_url, _translator())
    if payload is None:
        raise ChatError(404, texts.ERR_NOT_FOUND)
    return jsonify(payload)


def api_error(exc: HTTPException) -> Any:
    """Errors under /chat/api/ as {"error": "..."} in Japanese (bot.site calls this for those paths)."""
    code = exc.code or 500
    message = {404: texts.ERR_NOT_FOUND, 405: texts.ERR_METHOD, 413: texts.ERR_BODY_TOO_LARGE,
               400: texts.ERR_BAD_JSON, 415: texts.ERR_JSON_REQUIRED}.get(code)
    if message is None:
        message = texts.ERR_SERVER if code >= 500 else texts.ERR_OTHER
    headers = {k: v for k, v in exc.get_headers() if k.lower() in ("allow", "retry-after")}
    return _error(code, message, headers)


# --- the widget script, the chat page, assets ---------------------------------------------------------


@lru_cache(maxsize=16)
def _asset(name: str) -> tuple[bytes, str]:
    data = (STATIC / name).read_bytes()
    return data, hashlib.sha256(data).hexdigest()[:32]


def _send(data: bytes, etag: str, mimetype: str) -> Response:
    response = Response(data, content_type=mimetype)
    response.set_etag(etag)
    response.headers["Cache-Control"] = ASSET_CACHE
    return response.make_conditional(request)


def widget_script() -> bytes:
    """widget.js with this city's allowed origins built in (so it stays quiet on other sites)."""
    data, _ = _asset("widget.js")
    settings = {"origins": list(allowed_origins()), "title": _chat_title()}
    return data.replace(b"__WEBCHAT_SETTINGS__", json.dumps(settings, ensure_ascii=True).encode("ascii"))


@bp.get("/chat/widget.js")
def widget() -> Response:
    """The one script a city puts on its homepage."""
    data = widget_script()
    response = _send(data, hashlib.sha256(data).hexdigest()[:32], ASSET_TYPES[".js"])
    response.headers["Access-Control-Allow-Origin"] = "*"  # a public script; lets pages use integrity checks
    return response


@bp.get("/chat/assets/<name>")
def asset(name: str) -> Response:
    """The chat page's and FAQ pages' own script and styles."""
    suffix = Path(name).suffix
    if "/" in name or name.startswith(".") or suffix not in ASSET_TYPES or name == "widget.js" or not (STATIC / name).is_file():
        abort(404)
    data, etag = _asset(name)
    return _send(data, etag, ASSET_TYPES[suffix])


def _city() -> str:
    return service.city_name(current_app.config["MUNICIPALITY"]) or texts.CITY_FALLBACK


def _chat_title() -> str:
    return f"{_city()}のチャット（よくある質問）"


def asset_url(name: str) -> str:
    """An asset's address with its content hash, so a changed file is fetched anew."""
    return url_for("webchat.asset", name=name, v=_asset(name)[1][:12])


@bp.get("/chat")
def chat_page() -> str:
    """The conversation, shown in the widget's frame (or opened on its own)."""
    return render_template("webchat/chat.html", city=_city(), title=_chat_title(), asset_url=asset_url,
                           max_chars=MAX_TEXT_UTF16)


# --- the public FAQ pages ------------------------------------------------------------------------------


def linkify(text: str) -> Markup:
    """Text with its http(s) addresses as links, everything else escaped."""
    out, last = [], 0
    for match in _URL_RE.finditer(text):
        out.append(escape(text[last:match.start()]))
        url = match.group(0)
        out.append(Markup('<a href="{0}">{0}</a>').format(url))
        last = match.end()
    out.append(escape(text[last:]))
    return Markup("").join(out)


@bp.get("/faq")
def faq_index() -> Any:
    """The city's published entries by category, and a search that uses the bot's matcher."""
    config = current_app.config
    municipality = config["MUNICIPALITY"]
    query = request.args.get("q", "").strip()
    search: dict[str, Any] | None = None
    status = 200
    with get_db().read_session() as session:
        cats = service.categories(session, municipality)
        groups = [(cat, label, service.entries_in_category(session, municipality, cat)) for cat, label in cats]
        if query:
            search = {"query": query, "error": "", "best": None, "others": [], "contact": ""}
            wait = current_app.extensions["webchat"]["by_address"].hit(_client_address())
            if len(query) > MAX_SEARCH_CHARS:
                search["error"] = f"検索する言葉は{MAX_SEARCH_CHARS}文字以内にしてください。"
                status = 400
            elif wait:
                search["error"] = texts.ERR_RATE.format(seconds=retry_after(wait))
                status = 429
            else:
                decision = service.decide(session, municipality, query, config)
                found = [service.get_entry(session, municipality, c.entry_id) for c in decision.candidates]
                found = [e for e in found if e is not None]
                if decision.kind == "answer" and decision.entry_id:
                    best = service.get_entry(session, municipality, decision.entry_id)
                    search["best"] = best
                    found = [e for e in found if best is None or e.entry_id != best.entry_id]
                search["others"] = found[:5] if decision.kind != "unknown" else []
                if decision.kind == "unknown":
                    search["contact"] = service.main_contact(session, municipality)
    html = render_template("webchat/faq_index.html", city=_city(), groups=groups, search=search, asset_url=asset_url)
    response = Response(html, status=status, mimetype="text/html")
    if status == 429:
        response.headers["Retry-After"] = str(retry_after(wait))
    return response


def faq_jsonld(entry: service.EntryView, question: str, url: str) -> str:
    """schema.org FAQPage of one entry as JSON-LD (safe inside <script>)."""
    data = {
        "@context": "https://schema.org",
        "@type": "FAQPage",
        "url": url,
        "mainEntity": [{
            "@type": "Question",
            "name": question,
            "acceptedAnswer": {"@type": "Answer", "text": entry.answer},
        }],
    }
    text = json.dumps(data, ensure_ascii=False, indent=1)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@bp.get("/faq/<path:entry_id>")
def faq_entry(entry_id: str) -> str:
    """One published entry: its question and answer, the date it was last checked, JSON-LD."""
    municipality = current_app.config["MUNICIPALITY"]
    with get_db().read_session() as session:
        row = session.scalars(select(FaqEntry).where(
            FaqEntry.municipality == municipality, FaqEntry.entry_id == entry_id, FaqEntry.is_published.is_(True))).first()
        entry = service.get_entry(session, municipality, entry_id) if row is not None else None
        if row is None or entry is None:
            abort(404)
        labels = dict(service.categories(session, municipality))
        question, reviewed_at, category = row.question, row.reviewed_at, row.category
    url = url_for("webchat.faq_entry", entry_id=entry_id, _external=True)
    return render_template(
        "webchat/faq_entry.html", city=_city(), entry=entry, question=question, category=category,
        category_label=labels.get(category, service.CATEGORY_LABELS.get(category, category)),
        reviewed=japanese_date(reviewed_at) if reviewed_at else "", reviewed_iso=reviewed_at.isoformat() if reviewed_at else "",
        jsonld=Markup(faq_jsonld(entry, question, url)), asset_url=asset_url,
    )


def init_app(app: Flask) -> None:
    """Register the pages, the API and its limits; read WEBCHAT_ALLOWED_ORIGINS (checked in bot.config)."""
    config = app.config
    window = float(config["WEBCHAT_RATE_WINDOW_SECONDS"])
    app.extensions["webchat"] = {
        "origins": parse_origins(config.get("WEBCHAT_ALLOWED_ORIGINS")),
        "by_address": RateLimiter(int(config["WEBCHAT_RATE_PER_ADDRESS"]), window),
        "by_session": RateLimiter(int(config["WEBCHAT_RATE_PER_SESSION"]), window),
    }
    app.add_template_filter(linkify, "linkify")
    app.register_blueprint(bp)
    site.register_error_renderer(app, API_PREFIX, api_error)
