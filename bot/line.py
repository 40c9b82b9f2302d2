"""The LINE gateway: the only module that talks to the LINE SDK (linebot.v3).

Messages are plain dicts in LINE's JSON shape (camelCase), built by `handlers.replies` and
`broadcast.messages`. Reply, push and multicast post them as they are through the SDK's
ApiClient (its configuration, bearer auth, HTTP pool and ApiException); the other calls use
the SDK's typed API. Building, validating and re-serialising the SDK's pydantic models for a
message costs about 1 ms of CPU, a sixth of the bot's work per question: the message shapes
are instead checked against LINE's OpenAPI spec by the fake platform in the tests.
Every call has a timeout and no SDK-level retries (callers decide: the inbox and the
dispatcher retry with retry keys); failures map to the small exception hierarchy below.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import urllib3
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    Configuration,
    MessagingApi,
    MessagingApiBlob,
    RichMenuRequest,
    ShowLoadingAnimationRequest,
    TestWebhookEndpointRequest,
)
from linebot.v3.insight import ApiClient as InsightApiClient
from linebot.v3.insight import ApiException as InsightApiException
from linebot.v3.insight import Configuration as InsightConfiguration
from linebot.v3.insight import Insight

from bot import metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_MESSAGES_PER_CALL = 5
MAX_MULTICAST_RECIPIENTS = 500


class LineError(Exception):
    """A LINE API call failed; carries LINE's status and request id (never message content)."""

    def __init__(self, message: str, status: int | None = None, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.args[0]} (status={self.status}, request_id={self.request_id})"


class LineRateLimited(LineError):
    """429: too many requests or the monthly message quota is used up; back off."""


class LineRejected(LineError):
    """4xx other than 429: LINE refused the request (bad token, invalid body, unknown user...)."""


class LineServerError(LineError):
    """5xx, or the connection failed: safe to retry with the same retry key."""


class LineTimeout(LineError):
    """No answer within the timeout: the call may or may not have taken effect."""


@dataclass(frozen=True)
class SendResult:
    """Outcome of a push or multicast: LINE's request id, and whether it was a retry-key repeat."""

    request_id: str | None
    already_accepted: bool = False


def new_retry_key() -> str:
    """A fresh X-Line-Retry-Key (LINE wants a UUID)."""
    return str(uuid.uuid4())


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if key.lower() == name:
            return str(value)
    return None


def _error_message(body: Any) -> str:
    """LINE's error message and its first details (property paths and rules: no message content)."""
    try:
        data = json.loads(body)
        message = str(data.get("message", ""))
        details = [d for d in data.get("details") or [] if isinstance(d, dict)][:3]
    except (ValueError, TypeError, AttributeError):
        return ""
    if details:
        message += ": " + "; ".join(f"{d.get('property', '')} {d.get('message', '')}".strip() for d in details)
    return message[:300]


def _plain(model: Any) -> dict[str, Any]:
    """An SDK response model as LINE's JSON (camelCase keys, enums and dates as strings)."""
    return json.loads(json.dumps(model.to_dict(), default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v)))  # type: ignore[no-any-return]


class LineGateway:
    """Reply, push, multicast, profiles, loading animation and rich menus through the SDK."""

    def __init__(self, access_token: str, base_url: str, data_base_url: str | None = None, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._api = MessagingApi(ApiClient(self._configuration(access_token, base_url)))
        self._blob = MessagingApiBlob(ApiClient(self._configuration(access_token, data_base_url or base_url)))
        insight_conf = InsightConfiguration(host=base_url.rstrip("/"), access_token=access_token)
        insight_conf.retries = False
        self._insight = Insight(InsightApiClient(insight_conf))

    @staticmethod
    def _configuration(access_token: str, host: str) -> Configuration:
        conf = Configuration(host=host.rstrip("/"), access_token=access_token)
        conf.retries = False  # no hidden SDK/urllib3 retries: a retry must reuse the retry key
        return conf

    def _call(self, what: str, fn: Callable[..., T], *args: Any, timeout_: float | None = None, **kwargs: Any) -> T:
        """Run one SDK call with the timeout (or `timeout_`), mapping failures to LineError subclasses."""
        timeout = timeout_ or self.timeout
        try:
            result = fn(*args, _request_timeout=timeout, **kwargs)
        except (ApiException, InsightApiException) as exc:
            status = exc.status
            metrics.line_call(what, status)
            request_id = _header(exc.headers, "x-line-request-id")
            message = f"LINE {what} failed: {_error_message(exc.body)}"
            if status == 429:
                raise LineRateLimited(message, status, request_id) from None
            if status is not None and status >= 500:
                raise LineServerError(message, status, request_id) from None
            raise LineRejected(message, status, request_id) from None
        except urllib3.exceptions.NewConnectionError as exc:
            # Checked first: urllib3 makes it a subclass of ConnectTimeoutError, but nothing was sent.
            metrics.line_call(what, "connection_error")
            raise LineServerError(f"LINE {what} connection failed", None, None) from exc
        except (urllib3.exceptions.TimeoutError, TimeoutError) as exc:
            metrics.line_call(what, "timeout")
            raise LineTimeout(f"LINE {what} timed out after {timeout}s", None, None) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            metrics.line_call(what, "connection_error")
            raise LineServerError(f"LINE {what} connection failed: {type(exc).__name__}", None, None) from exc
        metrics.line_call(what, getattr(result, "status_code", None) or 200)
        return result

    @staticmethod
    def _check_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if not 1 <= len(messages) <= MAX_MESSAGES_PER_CALL:
            raise ValueError(f"1 to {MAX_MESSAGES_PER_CALL} messages per call, got {len(messages)}")
        return list(messages)

    def _post(self, what: str, path: str, body: dict[str, Any], retry_key: str | None = None) -> Any:
        """POST a JSON body to the Messaging API through the SDK's client; the SDK's ApiResponse."""
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if retry_key:
            headers["X-Line-Retry-Key"] = retry_key
        return self._call(
            what, self._api.api_client.call_api, path, "POST",
            header_params=headers, body=body, response_types_map={}, auth_settings=["Bearer"],
        )

    def reply(self, reply_token: str, messages: Sequence[dict[str, Any]]) -> str | None:
        """Reply with up to 5 messages; returns LINE's request id."""
        body = {"replyToken": reply_token, "messages": self._check_messages(messages)}
        response = self._post("reply", "/v2/bot/message/reply", body)
        return _header(response.headers, "x-line-request-id")

    def _send(self, what: str, path: str, body: dict[str, Any], retry_key: str | None) -> SendResult:
        try:
            response = self._post(what, path, body, retry_key)
        except LineRejected as exc:
            if exc.status == 409 and retry_key:
                # LINE already accepted a request with this retry key: it was delivered once.
                return SendResult(exc.request_id, already_accepted=True)
            raise
        return SendResult(_header(response.headers, "x-line-request-id"))

    def push(self, to: str, messages: Sequence[dict[str, Any]], retry_key: str | None = None) -> SendResult:
        """Push up to 5 messages to one user; a repeated retry key is reported, not re-sent."""
        body = {"to": to, "messages": self._check_messages(messages)}
        return self._send("push", "/v2/bot/message/push", body, retry_key)

    def multicast(
        self, to: Sequence[str], messages: Sequence[dict[str, Any]], retry_key: str | None = None,
        aggregation_unit: str | None = None,
    ) -> SendResult:
        """Send up to 5 messages to at most 500 users in one call; `aggregation_unit` names the
        statistics unit LINE counts the messages under (one per request)."""
        if not 1 <= len(to) <= MAX_MULTICAST_RECIPIENTS:
            raise ValueError(f"1 to {MAX_MULTICAST_RECIPIENTS} recipients per multicast, got {len(to)}")
        body: dict[str, Any] = {"to": list(to), "messages": self._check_messages(messages)}
        if aggregation_unit:
            body["customAggregationUnits"] = [aggregation_unit]
        return self._send("multicast", "/v2/bot/message/multicast", body, retry_key)

    def get_profile(self, user_id: str) -> dict[str, Any]:
        """The user's LINE profile (display name, language...)."""
        profile = self._call("get_profile", self._api.get_profile, user_id)
        return profile.to_dict()  # type: ignore[no-any-return]

    def show_loading(self, chat_id: str, seconds: int = 5) -> None:
        """Show the typing animation while an answer is prepared (5-60 s, multiples of 5)."""
        request = ShowLoadingAnimationRequest(chatId=chat_id, loadingSeconds=seconds)
        self._call("show_loading", self._api.show_loading_animation, request)

    def create_rich_menu(self, definition: dict[str, Any]) -> str:
        """Validate and create a rich menu; returns its id."""
        request = RichMenuRequest.from_dict(definition)
        self._call("validate_rich_menu", self._api.validate_rich_menu_object, request)
        return str(self._call("create_rich_menu", self._api.create_rich_menu, request).rich_menu_id)

    def set_rich_menu_image(self, rich_menu_id: str, image: bytes, content_type: str = "image/png") -> None:
        """Upload the rich menu's image (data host)."""
        self._call(
            "set_rich_menu_image", self._blob.set_rich_menu_image, rich_menu_id, image, _headers={"Content-Type": content_type}
        )

    def set_default_rich_menu(self, rich_menu_id: str) -> None:
        """Show this rich menu to every user without a per-user menu."""
        self._call("set_default_rich_menu", self._api.set_default_rich_menu, rich_menu_id)

    def get_default_rich_menu(self) -> str | None:
        """The id of the menu every user without a per-user menu sees; None when there is none (404)."""
        try:
            response = self._call("get_default_rich_menu", self._api.get_default_rich_menu_id)
        except LineRejected as exc:
            if exc.status == 404:
                return None
            raise
        return str(response.rich_menu_id)

    def cancel_default_rich_menu(self) -> None:
        """Leave users without a default rich menu."""
        self._call("cancel_default_rich_menu", self._api.cancel_default_rich_menu)

    def list_rich_menus(self) -> list[dict[str, Any]]:
        """The channel's rich menus."""
        response = self._call("list_rich_menus", self._api.get_rich_menu_list)
        return [menu.to_dict() for menu in response.richmenus]

    def delete_rich_menu(self, rich_menu_id: str) -> None:
        """Delete a rich menu."""
        self._call("delete_rich_menu", self._api.delete_rich_menu, rich_menu_id)

    # ---- the channel's own state (flask line check) ----------------------------------------------

    def bot_info(self) -> dict[str, Any]:
        """The bot's user id, basic id, display name, chat mode (GET /v2/bot/info)."""
        return _plain(self._call("bot_info", self._api.get_bot_info))

    def webhook_endpoint(self) -> dict[str, Any]:
        """The webhook URL LINE posts to and whether webhooks are on (`endpoint`, `active`)."""
        return _plain(self._call("webhook_endpoint", self._api.get_webhook_endpoint))

    def test_webhook(self, endpoint: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        """Ask LINE to post a test webhook (to the configured URL, or `endpoint`); LINE's verdict.

        `success`, `statusCode` (0 or less: no answer), `reason`, `detail`, `timestamp`. LINE waits
        for the bot's answer before it answers, so this call gets a longer timeout than the others.
        """
        request = TestWebhookEndpointRequest(endpoint=endpoint) if endpoint else None
        wait = timeout or self.timeout + 20.0
        return _plain(self._call("test_webhook", self._api.test_webhook_endpoint, request, timeout_=wait))

    def message_quota(self) -> dict[str, Any]:
        """This month's message limit: `type` none | limited, and `value` when limited."""
        return _plain(self._call("message_quota", self._api.get_message_quota))

    def message_quota_consumption(self) -> dict[str, Any]:
        """Messages counted against the quota this month (`totalUsage`)."""
        return _plain(self._call("message_quota_consumption", self._api.get_message_quota_consumption))

    # ---- message content (api-data host) ---------------------------------------------------------

    def get_message_content(self, message_id: str, attempts: int = 3, backoff_seconds: float = 0.5) -> bytes:
        """The bytes of an image (video, audio, file) a user sent: GET /v2/bot/message/{id}/content.

        A GET changes nothing, so 429, 5xx, connection failures and timeouts are retried here (up to
        `attempts` calls, the wait doubling from `backoff_seconds`); a 4xx (404: the content is gone
        or the id is unknown) is not. The last failure is raised.
        """
        for attempt in range(1, max(1, attempts) + 1):
            try:
                response = self._call("get_message_content", self._blob.get_message_content_with_http_info, message_id)
                return bytes(response.raw_data or b"")
            except (LineServerError, LineTimeout, LineRateLimited):
                if attempt >= attempts:
                    raise
                time.sleep(backoff_seconds * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    # ---- statistics (broadcast.insights) --------------------------------------------------------

    def unit_statistics(self, unit: str, date_from: str, date_to: str) -> dict[str, Any]:
        """How residents interacted with the messages sent under an aggregation unit between two
        JST dates (yyyyMMdd, at most 30 days apart): `overview`, `messages`, `clicks`; LINE gives
        null for values under 20."""
        return _plain(self._call("unit_statistics", self._insight.get_statistics_per_unit, unit, date_from, date_to))

    def followers(self, date: str) -> dict[str, Any]:
        """Friends, targeted reaches and blocks as of a JST date (yyyyMMdd); `status` ready | unready | out_of_service."""
        return _plain(self._call("followers", self._insight.get_number_of_followers, date))

    def close(self) -> None:
        """Release HTTP connections."""
        self._api.api_client.close()
        self._blob.api_client.close()
        self._insight.api_client.close()
