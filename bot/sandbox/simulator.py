"""The local chat simulator: a LINE-like page that talks to the bot through the fake LINE platform.

Development only. The page never calls the bot directly: every resident action goes to the fake
platform's control API, which builds the webhook event, signs it and posts it to /callback exactly
as LINE would; the bot's answers are read back from what the fake platform recorded.

The time beside each message is the server's clock in Japan time (「9:05」), sent with every answer
of the page's API: the browser's own clock and time zone (often UTC on a developer's machine) are
never used, so the simulator agrees with the admin pages.
"""

from __future__ import annotations

import base64
import logging
import math
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import requests
from flask import Blueprint, Flask, Response, abort, current_app, jsonify, render_template, request

from bot.dates import jst_clock
from bot.db import utcnow
from bot.sandbox.fake_line import IMAGE_SIGNATURES, MAX_CONTROL_IMAGE_BYTES, MAX_LOCATION_TEXT

log = logging.getLogger(__name__)

bp = Blueprint("simulator", __name__, url_prefix="/simulator")

USER_ID_RE = re.compile(r"^U[0-9a-f]{32}$")
MAX_TEXT_CHARS = 5000  # what LINE lets a resident type
MAX_POSTBACK_DATA = 300  # LINE's limit on postback data
CONTROL_TIMEOUT = 35.0  # the fake waits for the bot's /callback answer before it answers us
POLL_TIMEOUT = 5.0

# Fixed ids so a developer finds the same residents (and their data) after a restart.
SIMULATED_RESIDENTS: tuple[dict[str, str], ...] = (
    {"name": "住民A", "userId": "U5a000000000000000000000000000a01"},
    {"name": "住民B", "userId": "U5a000000000000000000000000000b02"},
    {"name": "住民C", "userId": "U5a000000000000000000000000000c03"},
)

# Shown in the chat header; the official account is named after the city.
MUNICIPALITY_NAMES = {
    "nasukarasuyama": "那須烏山市",
    "nasushiobara": "那須塩原市",
    "joso": "常総市",
    "ohtawara": "大田原市",
}
PICKER_PARAMS = ("date", "time", "datetime")  # what a datetimepicker postback may carry
# A photo the resident sends: JPEG or PNG, at most this size (the page checks it first, the fake again).
MAX_IMAGE_BYTES = MAX_CONTROL_IMAGE_BYTES
MAX_IMAGE_BASE64 = (MAX_IMAGE_BYTES + 2) // 3 * 4
# Preset points of the location panel, generated around the centre of the city's imported shelters
# (app.extensions[CENTRE_HOOK], wired in bot.app): never a real place's name, only the offset.
CENTRE_HOOK = "simulator_centre"
PRESET_OFFSETS: tuple[tuple[str, float, float], ...] = (  # label, km north, km east
    ("登録済み避難所の中心", 0.0, 0.0),
    ("中心から北へ約1km", 1.0, 0.0),
    ("中心から東へ約2km", 0.0, 2.0),
    ("中心から南西へ約3km", -2.1, -2.1),
)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' https: http: data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class SimulatorError(Exception):
    """A resident action could not be passed to the fake platform (message is shown on the page)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@bp.before_request
def development_only() -> None:
    """Never serve the simulator beside real residents, whatever registered it."""
    config = current_app.config
    if config.get("APP_ENV") == "production" or not config.get("SIMULATOR_ENABLED"):
        abort(404)


@bp.after_request
def no_store(response: Response) -> Response:
    """The page and its API answers are live views: never cache them, never frame them."""
    response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    return response


@bp.errorhandler(SimulatorError)
def simulator_error(error: SimulatorError) -> tuple[Response, int]:
    """Answer JSON the page can show."""
    return jsonify({"error": error.message}), error.status


def set_centre_hook(app: Flask, centre: Callable[[Flask], tuple[float, float] | None]) -> None:
    """Where the location panel's preset points are generated around (None: no presets)."""
    app.extensions[CENTRE_HOOK] = centre


def preset_places(centre: tuple[float, float] | None) -> list[dict[str, Any]]:
    """The location panel's preset points around `centre` ({"label", "latitude", "longitude"})."""
    if centre is None:
        return []
    lat, lon = centre
    km_per_degree = 111.32
    return [{"label": label, "latitude": round(lat + north / km_per_degree, 6),
             "longitude": round(lon + east / (km_per_degree * max(math.cos(math.radians(lat)), 0.01)), 6)}
            for label, north, east in PRESET_OFFSETS]


def _centre() -> tuple[float, float] | None:
    hook = current_app.extensions.get(CENTRE_HOOK)
    if hook is None:
        return None
    try:
        return hook(current_app._get_current_object())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - presets are a convenience: the panel works without them
        log.exception("simulator: the preset points could not be made")
        return None


@bp.get("")
def page() -> Response:
    """The chat page."""
    html = render_template(
        "simulator.html",
        residents=SIMULATED_RESIDENTS,
        places=preset_places(_centre()),
        image_max_bytes=MAX_IMAGE_BYTES,
        account_name=MUNICIPALITY_NAMES.get(current_app.config.get("MUNICIPALITY", ""), "市") + "公式LINE",
        fake_configured=bool(current_app.config.get("FAKE_LINE_URL")),
    )
    response = Response(html, content_type="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


# ---- JSON API ------------------------------------------------------------------------------------


def _same_origin_json() -> dict[str, Any]:
    """The JSON body of a same-origin request; refuse anything a cross-site page could send.

    A cross-site HTML form can only send urlencoded, multipart or text/plain bodies, so requiring
    application/json (which needs a CORS preflight this app never grants) shuts forms out; the
    Origin and Sec-Fetch-Site checks refuse cross-site scripts in browsers that send them.
    """
    if request.mimetype != "application/json":
        raise SimulatorError("Content-Type は application/json にしてください。", 415)
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        raise SimulatorError("別のサイトからの操作は受け付けません。", 403)
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:  # also refuses "null"
        raise SimulatorError("別のサイトからの操作は受け付けません。", 403)
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise SimulatorError("JSON オブジェクトを送ってください。", 400)
    return data


def _user_id(value: Any) -> str:
    """A LINE user id as LINE issues them ("U" + 32 lowercase hex digits)."""
    if not isinstance(value, str) or not USER_ID_RE.match(value):
        raise SimulatorError("user は U + 16進32桁の LINE ユーザーIDにしてください。", 400)
    return value


def _string(data: dict[str, Any], key: str, limit: int, *, required: bool = True) -> str | None:
    """A non-empty string field of at most limit characters."""
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SimulatorError(f"{key} を入力してください。", 400)
    if len(value) > limit:
        raise SimulatorError(f"{key} は {limit} 文字以内にしてください。", 400)
    return value


def _fake_url() -> str:
    """The fake platform's control URL, or a clear error when it is not configured."""
    url = current_app.config.get("FAKE_LINE_URL")
    if not url:
        raise SimulatorError(
            "疑似LINEプラットフォームが設定されていません（FAKE_LINE_URL）。make run で起動してください。", 503
        )
    return str(url).rstrip("/")


def _control(
    method: str, path: str, *, timeout: float, json: Any = None, params: dict[str, Any] | None = None
) -> Any:
    """Call the fake platform's control API and return its JSON answer."""
    try:
        answer = requests.request(method, _fake_url() + path, json=json, params=params, timeout=timeout)
    except requests.RequestException as exc:
        log.warning("simulator: fake LINE platform unreachable: %s", type(exc).__name__)
        raise SimulatorError("疑似LINEプラットフォームに接続できません。起動しているか確認してください。") from exc
    try:
        payload = answer.json()
    except ValueError as exc:
        raise SimulatorError(f"疑似LINEプラットフォームの応答が不正です（HTTP {answer.status_code}）。") from exc
    if answer.status_code != 200:
        log.warning("simulator: fake LINE platform answered %s on %s", answer.status_code, path)
        detail = payload.get("message", "") if isinstance(payload, dict) else ""
        if answer.status_code == 502 and path.startswith("/_fake/events/"):
            # The fake could not post the webhook: the bot's /callback is down or not where it posts.
            raise SimulatorError(f"ボットの /callback にイベントを届けられませんでした: {detail}")
        raise SimulatorError(f"疑似LINEプラットフォームがエラーを返しました（HTTP {answer.status_code}）: {detail}")
    return payload


def _post_event(kind: str, body: dict[str, Any]) -> Response:
    """Have the fake platform send one webhook event to the bot; report how the bot answered."""
    payload = _control("POST", f"/_fake/events/{kind}", json=body, timeout=CONTROL_TIMEOUT)
    status = payload.get("status") if isinstance(payload, dict) else None
    return jsonify({"ok": status == 200, "botStatus": status, "time": now_text()})


def now_text() -> str:
    """The time of day in Japan as the chat shows it beside a message: 「9:05」."""
    return jst_clock(utcnow())


@bp.post("/api/send")
def send_text() -> Response:
    """The resident sends a text message."""
    data = _same_origin_json()
    user = _user_id(data.get("user"))
    text = _string(data, "text", MAX_TEXT_CHARS)
    return _post_event("text", {"user": user, "text": text})


@bp.post("/api/postback")
def send_postback() -> Response:
    """The resident taps a postback button (displayText, if any, is shown by the page only, as in LINE)."""
    data = _same_origin_json()
    user = _user_id(data.get("user"))
    postback = _string(data, "data", MAX_POSTBACK_DATA)
    _string(data, "displayText", MAX_POSTBACK_DATA, required=False)
    body: dict[str, Any] = {"user": user, "data": postback}
    params = data.get("params")
    if params is not None:
        # A datetimepicker action: LINE adds the chosen value as postback.params.
        picked = params.items() if isinstance(params, dict) else ()
        if len(picked) != 1 or not all(
            key in PICKER_PARAMS and isinstance(value, str) and len(value) <= 20 for key, value in picked
        ):
            raise SimulatorError("params は date / time / datetime のいずれか1つにしてください。", 400)
        body["params"] = params
    return _post_event("postback", body)


def _coordinate(data: dict[str, Any], key: str, name: str, bound: float) -> float:
    """A latitude or longitude: a finite number within ±bound."""
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not -bound <= value <= bound:
        raise SimulatorError(f"{name}は -{bound:g} から {bound:g} までの数で入力してください。", 400)
    return float(value)


@bp.post("/api/location")
def send_location() -> Response:
    """The resident sends a location (LINE's location picker); title and address are optional."""
    data = _same_origin_json()
    user = _user_id(data.get("user"))
    body: dict[str, Any] = {"user": user, "latitude": _coordinate(data, "latitude", "緯度", 90.0),
                            "longitude": _coordinate(data, "longitude", "経度", 180.0)}
    for key, name in (("title", "名前"), ("address", "住所")):
        value = data.get(key)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > MAX_LOCATION_TEXT:
            raise SimulatorError(f"{name}は {MAX_LOCATION_TEXT} 文字以内の文字で入力してください。", 400)
        body[key] = value.strip() or None
    return _post_event("location", {k: v for k, v in body.items() if v is not None})


@bp.post("/api/image")
def send_image() -> Response:
    """The resident sends a photo (camera or camera roll): JPEG or PNG of at most MAX_IMAGE_BYTES, base64."""
    too_large = SimulatorError(f"画像が大きすぎます。{MAX_IMAGE_BYTES // (1024 * 1024)}MB までの画像を選んでください。", 413)
    if (request.content_length or 0) > MAX_IMAGE_BASE64 + 1024:
        raise too_large
    data = _same_origin_json()
    user = _user_id(data.get("user"))
    content_type = data.get("contentType")
    encoded = data.get("data")
    if content_type not in IMAGE_SIGNATURES:
        raise SimulatorError("送れる画像は JPEG か PNG です。", 400)
    if not isinstance(encoded, str) or not encoded:
        raise SimulatorError("画像のデータがありません。", 400)
    if len(encoded) > MAX_IMAGE_BASE64:
        raise too_large
    try:
        content = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise SimulatorError("画像のデータが読めません（base64 ではありません）。", 400) from None
    if not content.startswith(IMAGE_SIGNATURES[content_type]):
        raise SimulatorError("選んだファイルは JPEG・PNG の画像ではありません。", 400)
    return _post_event("image", {"user": user, "contentType": content_type, "contentBase64": encoded})


@bp.post("/api/follow")
def follow() -> Response:
    """The resident adds the account as a friend (or unblocks it)."""
    data = _same_origin_json()
    return _post_event("follow", {"user": _user_id(data.get("user"))})


@bp.post("/api/unfollow")
def unfollow() -> Response:
    """The resident blocks the account."""
    data = _same_origin_json()
    return _post_event("unfollow", {"user": _user_id(data.get("user"))})


@bp.get("/api/messages")
def messages() -> Response:
    """What the bot has sent this resident from index `since` on, and the index to ask from next."""
    user = _user_id(request.args.get("user"))
    try:
        since = max(int(request.args.get("since", "0")), 0)
    except ValueError:
        raise SimulatorError("since は整数にしてください。", 400) from None
    payload = _control("GET", "/_fake/deliveries", params={"user": user, "since": since}, timeout=POLL_TIMEOUT)
    found = payload.get("messages") if isinstance(payload, dict) else None
    following = payload.get("next") if isinstance(payload, dict) else None
    if not isinstance(found, list) or not isinstance(following, int):
        raise SimulatorError("疑似LINEプラットフォームの応答が不正です。")
    return jsonify({"messages": found, "next": following, "time": now_text()})
