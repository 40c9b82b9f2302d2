"""Tests for the fake LINE platform, driven through the real line-bot-sdk v3 client wherever possible."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import urllib3
from linebot.v3 import SignatureValidator, WebhookParser
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    ButtonsTemplate,
    Configuration,
    FlexContainer,
    FlexMessage,
    MessageAction,
    MessagingApi,
    MessagingApiBlob,
    MulticastRequest,
    PostbackAction,
    PushMessageRequest,
    QuickReply,
    QuickReplyItem,
    ReplyMessageRequest,
    RichMenuArea,
    RichMenuBounds,
    RichMenuRequest,
    RichMenuSize,
    ShowLoadingAnimationRequest,
    StickerMessage,
    TemplateMessage,
    TextMessage,
    URIAction,
)
from linebot.v3.webhooks import FollowEvent, MessageEvent, PostbackEvent, TextMessageContent, UnfollowEvent
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from bot.sandbox.fake_line import FakeLinePlatform, SpecValidator, check_line_rules

REPO = Path(__file__).resolve().parents[1]
SPEC_DIR = REPO.parent / "shared" / "line-openapi"
PEER_FIXTURES = REPO.parent / "shared" / "line-peer-fixtures" / "webhook.json"
SECRET = "fake-line-test-secret"
ALICE = "U" + "a1" * 16
BOB = "U" + "b2" * 16
CAROL = "U" + "c3" * 16
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
BUBBLE = {
    "type": "bubble",
    "hero": {"type": "image", "url": "https://example.com/hero.png", "size": "full", "aspectRatio": "20:13"},
    "body": {
        "type": "box",
        "layout": "vertical",
        "contents": [
            {"type": "text", "text": "ごみの出し方", "weight": "bold", "size": "xl", "wrap": True},
            {"type": "separator", "margin": "md"},
            {
                "type": "box",
                "layout": "baseline",
                "contents": [
                    {"type": "icon", "url": "https://example.com/i.png"},
                    {"type": "text", "text": "燃えるごみ", "flex": 0, "contents": [{"type": "span", "text": "月・木"}]},
                ],
            },
        ],
    },
    "footer": {
        "type": "box",
        "layout": "vertical",
        "spacing": "sm",
        "contents": [
            {"type": "button", "style": "link", "action": {"type": "uri", "label": "市のページを開く", "uri": "https://example.com"}},
            {"type": "button", "action": {"type": "postback", "label": "この回答は役に立ちましたか？はい", "data": "fb=1"}},
            {"type": "filler"},
        ],
    },
}


# ---- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def fake() -> FakeLinePlatform:
    """A fresh platform validating against the shared spec."""
    platform = FakeLinePlatform(SECRET, spec_dir=SPEC_DIR)
    assert platform.spec is not None, f"spec not found in {SPEC_DIR}"
    return platform


@pytest.fixture
def served(fake: FakeLinePlatform) -> Iterator[Any]:
    """The platform on a loopback port."""
    server = fake.serve()
    yield server
    server.stop()


@pytest.fixture
def api_client(served: Any) -> Iterator[ApiClient]:
    """An SDK client pointed at the fake, as the bot configures it."""
    with ApiClient(Configuration(host=served.url, access_token="test-token")) as client:
        yield client


@pytest.fixture
def api(api_client: ApiClient) -> MessagingApi:
    """The SDK's MessagingApi against the fake."""
    return MessagingApi(api_client)


def raw_post(served: Any, path: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    """POST a raw JSON body, bypassing the SDK's client-side models."""
    sent = {"Authorization": "Bearer test-token", **(headers or {})}
    return requests.post(served.url + path, json=body, headers=sent, timeout=5)


def push_body(*messages: dict[str, Any], to: str = ALICE) -> dict[str, Any]:
    """A push request body."""
    return {"to": to, "messages": list(messages)}


class EchoBot:
    """A minimal bot on loopback: verifies signatures with the SDK and replies to text through the fake."""

    def __init__(self, fake_url: str) -> None:
        """Start serving; the SDK client talks to the fake."""
        self.parser = WebhookParser(SECRET)
        self.received: list[Any] = []
        self.api_client = ApiClient(Configuration(host=fake_url, access_token="bot-token"))
        self.api = MessagingApi(self.api_client)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/callback"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        """The /callback endpoint."""
        request = Request(environ)
        body = request.get_data(as_text=True)
        try:
            events = self.parser.parse(body, request.headers.get("X-Line-Signature", ""))
        except Exception:  # InvalidSignatureError and friends: LINE expects a 400
            return Response("bad signature", status=400)(environ, start_response)
        self.received.extend(events)
        for event in events:
            if isinstance(event, MessageEvent) and isinstance(event.message, TextMessageContent):
                reply = ReplyMessageRequest(reply_token=event.reply_token, messages=[TextMessage(text=f"echo: {event.message.text}")])
                self.api.reply_message(reply)
        return Response("OK")(environ, start_response)

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.api_client.close()


@pytest.fixture
def echo_bot(fake: FakeLinePlatform, served: Any) -> Iterator[EchoBot]:
    """An echo bot wired as the fake's webhook target."""
    bot = EchoBot(served.url)
    fake.webhook_url = bot.url
    yield bot
    bot.stop()


# ---- sending: reply / push / multicast -------------------------------------------------------------


def test_reply_is_delivered_to_the_token_owner(fake: FakeLinePlatform, api: MessagingApi) -> None:
    token = fake.issue_reply_token(ALICE)
    response = api.reply_message(ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="こんにちは"), StickerMessage(package_id="446", sticker_id="1988")]))
    assert len(response.sent_messages) == 2
    assert all(m.id and m.quote_token for m in response.sent_messages)
    assert fake.delivered(ALICE) == [
        {"type": "text", "text": "こんにちは"},
        {"type": "sticker", "packageId": "446", "stickerId": "1988"},
    ]
    assert fake.deliveries[0].kind == "reply" and fake.deliveries[0].to == [ALICE]
    assert fake.invalid == []


def test_reply_token_is_single_use(fake: FakeLinePlatform, api: MessagingApi) -> None:
    token = fake.issue_reply_token(ALICE)
    api.reply_message(ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="1")]))
    with pytest.raises(ApiException) as info:
        api.reply_message(ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="2")]))
    assert info.value.status == 400
    assert json.loads(info.value.body) == {"message": "Invalid reply token"}
    assert info.value.headers["x-line-request-id"]
    assert [m["text"] for m in fake.delivered(ALICE)] == ["1"]
    assert fake.invalid == []  # a token problem is not a malformed body


def test_expired_and_unknown_reply_tokens_are_rejected() -> None:
    fake = FakeLinePlatform(SECRET, spec_dir=SPEC_DIR, reply_token_ttl=0.05)
    expired_server = fake.serve()
    try:
        with ApiClient(Configuration(host=expired_server.url, access_token="x")) as client:
            api = MessagingApi(client)
            token = fake.issue_reply_token(ALICE)
            time.sleep(0.1)
            for candidate in (token, "never-issued"):
                with pytest.raises(ApiException) as info:
                    api.reply_message(ReplyMessageRequest(reply_token=candidate, messages=[TextMessage(text="late")]))
                assert info.value.status == 400
        assert fake.delivered(ALICE) == []
    finally:
        expired_server.stop()


def test_push_repeat_retry_key_gets_409_and_is_not_delivered_twice(fake: FakeLinePlatform, api: MessagingApi) -> None:
    key = str(uuid.uuid4())
    request = PushMessageRequest(to=ALICE, messages=[TextMessage(text="断水のお知らせ")])
    first = api.push_message_with_http_info(request, x_line_retry_key=key)
    assert first.status_code == 200
    with pytest.raises(ApiException) as info:
        api.push_message(request, x_line_retry_key=key)
    assert info.value.status == 409
    assert info.value.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    assert info.value.headers["x-line-request-id"] != first.headers["x-line-request-id"]
    body = json.loads(info.value.body)
    assert body["message"] == "The retry key is already accepted"
    assert body["sentMessages"] == [m.to_dict() for m in first.data.sent_messages]
    assert len(fake.delivered(ALICE)) == 1
    assert fake.deliveries[0].retry_key == key
    # A new key is a new message.
    api.push_message(request, x_line_retry_key=str(uuid.uuid4()))
    assert len(fake.delivered(ALICE)) == 2


def test_multicast_delivers_to_each_and_honours_retry_key(fake: FakeLinePlatform, api: MessagingApi) -> None:
    key = str(uuid.uuid4())
    request = MulticastRequest(to=[ALICE, BOB], messages=[TextMessage(text="防災訓練")])
    assert api.multicast(request, x_line_retry_key=key) == {}
    with pytest.raises(ApiException) as info:
        api.multicast(request, x_line_retry_key=key)
    assert info.value.status == 409
    assert info.value.headers["x-line-accepted-request-id"] == fake.deliveries[0].request_id
    assert fake.delivered(ALICE) == fake.delivered(BOB) == [{"type": "text", "text": "防災訓練"}]
    assert fake.delivered(CAROL) == []


def test_delivered_keeps_order_across_reply_push_and_multicast(fake: FakeLinePlatform, api: MessagingApi) -> None:
    api.push_message(PushMessageRequest(to=ALICE, messages=[TextMessage(text="1")]))
    api.reply_message(ReplyMessageRequest(reply_token=fake.issue_reply_token(ALICE), messages=[TextMessage(text="2")]))
    api.multicast(MulticastRequest(to=[BOB, ALICE], messages=[TextMessage(text="3"), TextMessage(text="4")]))
    assert [m["text"] for m in fake.delivered(ALICE)] == ["1", "2", "3", "4"]
    assert [d.kind for d in fake.deliveries] == ["push", "reply", "multicast"]


def test_wait_for_delivery_blocks_until_messages_arrive(fake: FakeLinePlatform, api: MessagingApi) -> None:
    timer = threading.Timer(0.1, lambda: api.push_message(PushMessageRequest(to=ALICE, messages=[TextMessage(text="later")])))
    timer.start()
    assert fake.wait_for_delivery(ALICE, 1, timeout=5) == [{"type": "text", "text": "later"}]
    with pytest.raises(AssertionError, match="later"):
        fake.wait_for_delivery(ALICE, 2, timeout=0.1)


def test_concurrent_pushes_are_all_recorded(fake: FakeLinePlatform, served: Any) -> None:
    def worker(n: int) -> None:
        with ApiClient(Configuration(host=served.url, access_token="x")) as client:
            api = MessagingApi(client)
            for i in range(25):
                api.push_message(PushMessageRequest(to=ALICE, messages=[TextMessage(text=f"{n}-{i}")]), x_line_retry_key=str(uuid.uuid4()))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    texts = [m["text"] for m in fake.delivered(ALICE)]
    assert len(texts) == len(set(texts)) == 200
    assert len(fake.requests) == 200


def test_same_retry_key_raced_from_many_threads_is_delivered_once(fake: FakeLinePlatform, served: Any) -> None:
    key = str(uuid.uuid4())
    statuses: list[int] = []

    def worker() -> None:
        answer = raw_post(served, "/v2/bot/message/push", push_body({"type": "text", "text": "once"}), {"X-Line-Retry-Key": key})
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=worker) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] + [409] * 9
    assert len(fake.delivered(ALICE)) == 1


# ---- faults ----------------------------------------------------------------------------------------


def test_500_fault_does_not_consume_the_retry_key(fake: FakeLinePlatform, api: MessagingApi) -> None:
    fake.fail("push", 500)
    key = str(uuid.uuid4())
    request = PushMessageRequest(to=ALICE, messages=[TextMessage(text="retry me")])
    with pytest.raises(ApiException) as info:
        api.push_message(request, x_line_retry_key=key)
    assert info.value.status == 500
    assert info.value.headers["x-line-request-id"]
    api.push_message(request, x_line_retry_key=key)  # the retry is accepted
    assert len(fake.delivered(ALICE)) == 1
    with pytest.raises(ApiException) as again:
        api.push_message(request, x_line_retry_key=key)
    assert again.value.status == 409


def test_429_fault_counts_down_then_recovers(fake: FakeLinePlatform, api: MessagingApi) -> None:
    fake.fail("multicast", 429, times=2)
    request = MulticastRequest(to=[ALICE], messages=[TextMessage(text="x")])
    for _ in range(2):
        with pytest.raises(ApiException) as info:
            api.multicast(request)
        assert info.value.status == 429
        assert "rate limit" in json.loads(info.value.body)["message"]
    api.multicast(request)
    assert len(fake.delivered(ALICE)) == 1


def test_endless_and_wildcard_faults_until_cleared(fake: FakeLinePlatform, api: MessagingApi) -> None:
    fake.fail("*", 503, times=-1)
    for _ in range(3):
        with pytest.raises(ApiException) as info:
            api.get_profile(ALICE)
        assert info.value.status == 503
    with pytest.raises(ApiException):
        api.show_loading_animation(ShowLoadingAnimationRequest(chat_id=ALICE))
    fake.clear_faults()
    assert api.get_profile(ALICE).user_id == ALICE


def test_fault_on_one_endpoint_leaves_others_alone(fake: FakeLinePlatform, api: MessagingApi) -> None:
    fake.fail("reply", 500)
    api.push_message(PushMessageRequest(to=ALICE, messages=[TextMessage(text="ok")]))
    with pytest.raises(ApiException):
        api.reply_message(ReplyMessageRequest(reply_token=fake.issue_reply_token(ALICE), messages=[TextMessage(text="no")]))
    assert [m["text"] for m in fake.delivered(ALICE)] == ["ok"]


def test_hang_times_out_the_client_and_keeps_the_retry_key(fake: FakeLinePlatform, api: MessagingApi) -> None:
    fake.fail("push", "hang", hang_seconds=5)
    key = str(uuid.uuid4())
    request = PushMessageRequest(to=ALICE, messages=[TextMessage(text="slow")])
    started = time.monotonic()
    with pytest.raises(urllib3.exceptions.TimeoutError):
        api.push_message(request, x_line_retry_key=key, _request_timeout=0.3)
    assert time.monotonic() - started < 2
    fake.clear_faults()  # also releases the hanging server thread
    api.push_message(request, x_line_retry_key=key)
    assert len(fake.delivered(ALICE)) == 1


def test_hang_ends_with_500_after_hang_seconds(fake: FakeLinePlatform, served: Any) -> None:
    fake.fail("profile", "hang", hang_seconds=0.2)
    started = time.monotonic()
    answer = requests.get(served.url + f"/v2/bot/profile/{ALICE}", headers={"Authorization": "Bearer x"}, timeout=5)
    assert answer.status_code == 500
    assert time.monotonic() - started >= 0.2


def test_fail_rejects_unknown_endpoints_and_statuses(fake: FakeLinePlatform) -> None:
    with pytest.raises(ValueError):
        fake.fail("broadcast", 500)
    with pytest.raises(ValueError):
        fake.fail("push", "explode")


# ---- other endpoints -------------------------------------------------------------------------------


def test_profile_for_well_formed_ids_and_404_otherwise(api: MessagingApi) -> None:
    profile = api.get_profile(ALICE)
    assert profile.display_name == f"テスト住民 {ALICE[-4:]}"
    assert profile.language == "ja"
    with pytest.raises(ApiException) as info:
        api.get_profile("Ushort")
    assert info.value.status == 404


def test_loading_animation(fake: FakeLinePlatform, api: MessagingApi, served: Any) -> None:
    api.show_loading_animation(ShowLoadingAnimationRequest(chat_id=ALICE, loading_seconds=10))
    assert fake.requests[-1].status == 202
    assert raw_post(served, "/v2/bot/chat/loading/start", {"chatId": ALICE, "loadingSeconds": 7}).status_code == 400
    assert raw_post(served, "/v2/bot/chat/loading/start", {"loadingSeconds": 5}).status_code == 400
    assert len(fake.invalid) == 2


def test_rich_menu_lifecycle(fake: FakeLinePlatform, api: MessagingApi, api_client: ApiClient, served: Any) -> None:
    menu = RichMenuRequest(
        size=RichMenuSize(width=2500, height=843),
        selected=True,
        name="main",
        chat_bar_text="メニュー",
        areas=[
            RichMenuArea(bounds=RichMenuBounds(x=0, y=0, width=1250, height=843), action=PostbackAction(label="ごみ", data="menu=gomi")),
            RichMenuArea(bounds=RichMenuBounds(x=1250, y=0, width=1250, height=843), action=URIAction(label="市HP", uri="https://example.com")),
        ],
    )
    api.validate_rich_menu_object(menu)
    rich_menu_id = api.create_rich_menu(menu).rich_menu_id
    assert rich_menu_id.startswith("richmenu-")
    assert api.get_rich_menu(rich_menu_id).chat_bar_text == "メニュー"
    assert [m.rich_menu_id for m in api.get_rich_menu_list().richmenus] == [rich_menu_id]
    with pytest.raises(ApiException) as no_image:
        api.set_default_rich_menu(rich_menu_id)
    assert no_image.value.status == 400

    # The blob API is api-data.line.me in reality; Configuration.host redirects it here too.
    MessagingApiBlob(api_client).set_rich_menu_image(rich_menu_id, body=PNG, _headers={"Content-Type": "image/png"})
    api.set_default_rich_menu(rich_menu_id)
    assert api.get_default_rich_menu_id().rich_menu_id == rich_menu_id
    api.cancel_default_rich_menu()
    with pytest.raises(ApiException) as no_default:
        api.get_default_rich_menu_id()
    assert no_default.value.status == 404
    api.delete_rich_menu(rich_menu_id)
    with pytest.raises(ApiException) as gone:
        api.get_rich_menu(rich_menu_id)
    assert gone.value.status == 404
    assert fake.invalid == []


def test_rich_menu_image_upload_checks(fake: FakeLinePlatform, api: MessagingApi, served: Any) -> None:
    menu = {"size": {"width": 2500, "height": 843}, "selected": False, "name": "m", "chatBarText": "menu", "areas": []}
    rich_menu_id = raw_post(served, "/v2/bot/richmenu", menu).json()["richMenuId"]
    url = served.url + f"/v2/bot/richmenu/{rich_menu_id}/content"
    auth = {"Authorization": "Bearer x"}
    assert requests.post(url, data=PNG, headers={**auth, "Content-Type": "image/gif"}, timeout=5).status_code == 415
    assert requests.post(url, data=b"not a png", headers={**auth, "Content-Type": "image/png"}, timeout=5).status_code == 400
    unknown = served.url + "/v2/bot/richmenu/richmenu-unknown/content"
    assert requests.post(unknown, data=PNG, headers={**auth, "Content-Type": "image/png"}, timeout=5).status_code == 404
    jpeg = b"\xff\xd8\xff\xe0" + b"\x00" * 32
    assert requests.post(url, data=jpeg, headers={**auth, "Content-Type": "image/jpeg"}, timeout=5).status_code == 200
    assert requests.get(url, headers=auth, timeout=5).content == jpeg
    assert len(fake.invalid) == 2  # wrong type and wrong bytes; the 404 is not a body problem


def test_rich_menu_without_required_fields_is_invalid(fake: FakeLinePlatform, served: Any) -> None:
    answer = raw_post(served, "/v2/bot/richmenu", {"name": "m"})
    assert answer.status_code == 400
    assert {d["property"] for d in answer.json()["details"]} == {"size", "selected", "chatBarText", "areas"}


def test_missing_token_unknown_path_and_wrong_method(fake: FakeLinePlatform, served: Any) -> None:
    no_auth = requests.post(served.url + "/v2/bot/message/push", json=push_body({"type": "text", "text": "x"}), timeout=5)
    assert no_auth.status_code == 401
    assert no_auth.headers["x-line-request-id"]
    empty = requests.get(served.url + f"/v2/bot/profile/{ALICE}", headers={"Authorization": "Bearer "}, timeout=5)
    assert empty.status_code == 401
    unknown = requests.get(served.url + "/v2/bot/nothing/here", headers={"Authorization": "Bearer x"}, timeout=5)
    assert unknown.status_code == 404 and unknown.json() == {"message": "Not found"}
    assert fake.requests[-1].path == "/v2/bot/nothing/here" and fake.requests[-1].status == 404
    assert requests.get(served.url + "/v2/bot/message/push", timeout=5).status_code == 405


# ---- validation ------------------------------------------------------------------------------------


def error_properties(answer: requests.Response) -> set[str]:
    """The `property` of each detail in LINE's 400 body (asserting its shape on the way)."""
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert body["message"] == f"The request body has {len(body['details'])} error(s)"
    return {detail["property"] for detail in body["details"]}


def test_unknown_message_type_is_rejected_and_recorded(fake: FakeLinePlatform, served: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.sandbox.fake_line"):
        answer = raw_post(served, "/v2/bot/message/push", push_body({"type": "txt", "text": "hi"}))
    assert error_properties(answer) == {"messages[0].type"}
    assert answer.headers["x-line-request-id"]
    assert len(fake.invalid) == 1 and fake.invalid[0].body["messages"][0]["type"] == "txt"
    assert fake.invalid[0].errors[0]["property"] == "messages[0].type"
    assert fake.delivered(ALICE) == []
    assert "rejected" in caplog.text


def test_text_limit_counts_utf16_code_units(fake: FakeLinePlatform, served: Any) -> None:
    emoji = "\U0001f5d1"  # one code point, two UTF-16 code units
    at_limit = raw_post(served, "/v2/bot/message/push", push_body({"type": "text", "text": emoji * 2500}))
    assert at_limit.status_code == 200
    over = raw_post(served, "/v2/bot/message/push", push_body({"type": "text", "text": emoji * 2500 + "x"}))
    assert error_properties(over) == {"messages[0].text"}
    assert raw_post(served, "/v2/bot/message/push", push_body({"type": "text", "text": "あ" * 5001})).status_code == 400
    assert len(fake.invalid) == 2


def test_message_count_limits(served: Any) -> None:
    six = [{"type": "text", "text": str(i)} for i in range(6)]
    assert error_properties(raw_post(served, "/v2/bot/message/push", push_body(*six))) == {"messages"}
    assert error_properties(raw_post(served, "/v2/bot/message/push", push_body())) == {"messages"}
    token_body = {"replyToken": "t", "messages": six}
    assert error_properties(raw_post(served, "/v2/bot/message/reply", token_body)) == {"messages"}


def test_multicast_recipient_limits(served: Any) -> None:
    ids = [f"U{i:032x}" for i in range(501)]
    message = {"type": "text", "text": "x"}
    assert error_properties(raw_post(served, "/v2/bot/message/multicast", {"to": ids, "messages": [message]})) == {"to"}
    assert error_properties(raw_post(served, "/v2/bot/message/multicast", {"to": [], "messages": [message]})) == {"to"}
    assert raw_post(served, "/v2/bot/message/multicast", {"to": ids[:500], "messages": [message]}).status_code == 200


def test_quick_reply_rules(served: Any) -> None:
    def with_items(items: list[dict[str, Any]]) -> dict[str, Any]:
        return push_body({"type": "text", "text": "どれ？", "quickReply": {"items": items}})

    def item(action: dict[str, Any]) -> dict[str, Any]:
        return {"type": "action", "action": action}

    good = item({"type": "message", "label": "はい", "text": "はい"})
    assert raw_post(served, "/v2/bot/message/push", with_items([good])).status_code == 200
    wrong_type = with_items([good, item({"type": "messages", "label": "x", "text": "x"})])
    assert error_properties(raw_post(served, "/v2/bot/message/push", wrong_type)) == {"messages[0].quickReply.items[1].action.type"}
    too_many = with_items([good] * 14)
    assert error_properties(raw_post(served, "/v2/bot/message/push", too_many)) == {"messages[0].quickReply.items"}
    long_label = with_items([item({"type": "message", "label": "あ" * 21, "text": "x"})])
    assert error_properties(raw_post(served, "/v2/bot/message/push", long_label)) == {"messages[0].quickReply.items[0].action.label"}
    no_label = with_items([item({"type": "message", "text": "x"})])
    assert error_properties(raw_post(served, "/v2/bot/message/push", no_label)) == {"messages[0].quickReply.items[0].action.label"}


def test_sdk_quick_reply_and_template_are_accepted(fake: FakeLinePlatform, api: MessagingApi) -> None:
    quick = QuickReply(items=[QuickReplyItem(action=MessageAction(label=f"選択肢{i}", text=str(i))) for i in range(13)])
    template = TemplateMessage(
        alt_text="手続き",
        template=ButtonsTemplate(
            title="転入",
            text="必要なものを確認しますか？",
            actions=[PostbackAction(label="確認する", data="step=1"), URIAction(label="市HP", uri="https://example.com")],
        ),
    )
    api.push_message(PushMessageRequest(to=ALICE, messages=[TextMessage(text="q", quick_reply=quick), template]))
    assert fake.invalid == []
    assert fake.delivered(ALICE)[1]["template"]["actions"][0]["type"] == "postback"


def test_valid_flex_bubble_is_accepted(fake: FakeLinePlatform, api: MessagingApi) -> None:
    message = FlexMessage(alt_text="ごみの出し方", contents=FlexContainer.from_dict(BUBBLE))
    api.push_message(PushMessageRequest(to=ALICE, messages=[message]))
    assert fake.invalid == []
    assert fake.delivered(ALICE)[0]["contents"]["footer"]["contents"][0]["action"]["uri"] == "https://example.com"


def test_flex_errors_are_found_deep_inside(served: Any) -> None:
    bubble = json.loads(json.dumps(BUBBLE))
    bubble["body"]["contents"][2]["contents"].append({"type": "textbox", "text": "?"})
    bubble["footer"]["contents"][0]["action"]["type"] = "link"
    bubble["body"]["layout"] = "diagonal"
    answer = raw_post(served, "/v2/bot/message/push", push_body({"type": "flex", "altText": "x", "contents": bubble}))
    assert error_properties(answer) == {
        "messages[0].contents.body.contents[2].contents[2].type",
        "messages[0].contents.footer.contents[0].action.type",
        "messages[0].contents.body.layout",
    }
    carousel = {"type": "carousel", "contents": [{"type": "box"}]}
    answer = raw_post(served, "/v2/bot/message/push", push_body({"type": "flex", "altText": "x", "contents": carousel}))
    assert "messages[0].contents.contents[0].type" in error_properties(answer)


def test_spec_required_fields_and_types(served: Any) -> None:
    answer = raw_post(served, "/v2/bot/message/push", push_body({"type": "sticker", "packageId": 446}, {"type": "image"}))
    assert error_properties(answer) == {
        "messages[0].packageId",
        "messages[0].stickerId",
        "messages[1].originalContentUrl",
        "messages[1].previewImageUrl",
    }


def test_bad_retry_key_and_bad_json(fake: FakeLinePlatform, served: Any) -> None:
    answer = raw_post(served, "/v2/bot/message/push", push_body({"type": "text", "text": "x"}), {"X-Line-Retry-Key": "not-a-uuid"})
    assert error_properties(answer) == {"X-Line-Retry-Key"}
    broken = requests.post(
        served.url + "/v2/bot/message/push", data=b"{not json", headers={"Authorization": "Bearer x", "Content-Type": "application/json"}, timeout=5
    )
    assert broken.status_code == 400
    assert len(fake.invalid) == 2


def test_without_spec_the_line_rules_still_apply(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.sandbox.fake_line"):
        fake = FakeLinePlatform(SECRET, spec_dir=tmp_path)
    assert fake.spec is None and "not found" in caplog.text
    server = fake.serve()
    try:
        assert raw_post(server, "/v2/bot/message/push", push_body({"type": "text", "text": "ok"})).status_code == 200
        assert error_properties(raw_post(server, "/v2/bot/message/push", push_body({"type": "txt"}))) == {"messages[0].type"}
        six = [{"type": "text", "text": "x"}] * 6
        assert error_properties(raw_post(server, "/v2/bot/message/push", push_body(*six))) == {"messages"}
    finally:
        server.stop()


def test_line_rules_action_label_limits_depend_on_the_container() -> None:
    flex_button = {"type": "button", "action": {"type": "postback", "data": "x", "label": "あ" * 40}}
    flex = {"type": "flex", "altText": "x", "contents": {"type": "bubble", "footer": {"type": "box", "layout": "vertical", "contents": [flex_button]}}}
    assert check_line_rules("push", push_body(flex)) == []
    buttons = {"type": "template", "altText": "x", "template": {"type": "buttons", "text": "t", "actions": [{"type": "message", "label": "あ" * 21, "text": "x"}]}}
    assert check_line_rules("push", push_body(buttons)) == [("messages[0].template.actions[0].label", "Length must be between 1 and 20")]
    image_carousel = {
        "type": "template",
        "altText": "x",
        "template": {"type": "image_carousel", "columns": [{"imageUrl": "https://example.com/a.png", "action": {"type": "uri", "label": "あ" * 13, "uri": "https://example.com"}}]},
    }
    assert check_line_rules("push", push_body(image_carousel)) == [("messages[0].template.columns[0].action.label", "Length must be between 1 and 12")]


# ---- the compiled validator agrees with jsonschema -------------------------------------------------


def corpus() -> list[tuple[str, Any]]:
    """Valid and invalid bodies for the cross-check."""
    text = {"type": "text", "text": "x"}
    bodies: list[tuple[str, Any]] = [
        ("PushMessageRequest", push_body(text)),
        ("PushMessageRequest", push_body({"type": "flex", "altText": "x", "contents": BUBBLE})),
        ("PushMessageRequest", push_body({"type": "flex", "altText": "x", "contents": {"type": "carousel", "contents": [BUBBLE, BUBBLE]}})),
        ("PushMessageRequest", push_body({"type": "txt"}, {"type": "text"}, {"type": "sticker", "packageId": 1})),
        ("PushMessageRequest", push_body({"type": "flex", "altText": "x", "contents": {"type": "bubble", "body": {"type": "box", "layout": "x", "contents": [{"type": "nope"}]}}})),
        ("PushMessageRequest", push_body({"type": "text", "text": "x", "quickReply": {"items": [{"type": "action", "action": {"type": "bogus"}}] * 14}})),
        ("PushMessageRequest", {"messages": "nope"}),
        ("PushMessageRequest", []),
        ("ReplyMessageRequest", {"replyToken": 5, "messages": [text], "notificationDisabled": "yes"}),
        ("MulticastRequest", {"to": ["U1"] * 501, "messages": [text] * 6}),
        ("ShowLoadingAnimationRequest", {"chatId": ALICE, "loadingSeconds": 100}),
        ("RichMenuRequest", {"size": {"width": 0, "height": 843}, "chatBarText": "x" * 15, "areas": [{"bounds": {"x": -1}, "action": {"type": "richmenuswitch"}}]}),
        ("PushMessageRequest", push_body({"type": "imagemap", "baseUrl": "https://e.com", "altText": "a", "baseSize": {"width": 1040, "height": 1040}, "actions": [{"type": "message", "text": "x", "area": {"x": 0, "y": 0, "width": 10, "height": 10}}, {"type": "bad"}]})),
        ("PushMessageRequest", push_body({"type": "template", "altText": "a", "template": {"type": "confirm", "text": "?", "actions": [{"type": "message", "label": "y", "text": "y"}, {"type": "postback", "data": "x" * 301}]}})),
    ]
    return bodies


@pytest.mark.parametrize(("schema", "body"), corpus())
def test_compiled_validator_matches_jsonschema(fake: FakeLinePlatform, schema: str, body: Any) -> None:
    assert fake.spec is not None
    fast = {prop for prop, _ in fake.spec.errors(schema, body)}
    reference = {prop for prop, _ in fake.spec.reference_errors(schema, body)}
    assert fast == reference


# ---- webhook side ----------------------------------------------------------------------------------


def test_sign_matches_hmac_and_the_sdk_vector() -> None:
    fake = FakeLinePlatform(SECRET, spec_dir=SPEC_DIR)
    body = '{"destination":"x","events":[]}'.encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert fake.sign(body) == expected
    assert SignatureValidator(SECRET).validate(body.decode(), fake.sign(body))
    # The (secret, body, signature) triple from line-bot-sdk-python's tests/v3/test_webhook.py.
    vector = FakeLinePlatform("channel_secret", spec_dir=SPEC_DIR)
    assert vector.sign(b"bodybodybodybody") == "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="


def test_event_builders_match_the_webhook_spec_and_the_sdk(fake: FakeLinePlatform) -> None:
    webhook_spec = SpecValidator.from_file(SPEC_DIR / "webhook.yml")
    events = [
        fake.text_event(ALICE, "住民票はどこで？"),
        fake.postback_event(ALICE, "topic=gomi", {"date": "2026-01-01"}),
        fake.follow_event(ALICE),
        fake.unfollow_event(ALICE),
    ]
    for event in events:
        assert webhook_spec.errors("Event", event) == []
        assert len(event["webhookEventId"]) == 26
    payload = json.loads(fake.webhook_body(events))
    assert webhook_spec.errors("CallbackRequest", payload) == []
    assert "replyToken" not in events[3]
    assert events[2]["follow"] == {"isUnblocked": False}
    assert events[0]["replyToken"] != events[1]["replyToken"]
    body = fake.webhook_body(events).decode()
    parsed = WebhookParser(SECRET).parse(body, fake.sign(body.encode()))
    assert [type(e) for e in parsed] == [MessageEvent, PostbackEvent, FollowEvent, UnfollowEvent]
    assert parsed[0].message.text == "住民票はどこで？"
    assert parsed[1].postback.params == {"date": "2026-01-01"}


def test_webhook_spec_accepts_the_sdk_peer_fixtures() -> None:
    # Cross-checks the discriminator handling on 28 real events of many types.
    webhook_spec = SpecValidator.from_file(SPEC_DIR / "webhook.yml")
    events = json.loads(PEER_FIXTURES.read_text(encoding="utf-8"))["events"]
    failures = {e["type"]: webhook_spec.errors("Event", e) for e in events}
    # The SDK's fixtures deliberately include two event types the spec does not know (forward compatibility).
    assert {kind for kind, errs in failures.items() if errs} == {"messageEdited", "undefined"}
    assert failures["undefined"] == [("type", failures["undefined"][0][1])]
    assert webhook_spec.errors("Event", {**events[0], "type": "poke"})[0][0] == "type"


def test_event_reply_tokens_deliver_to_their_user(fake: FakeLinePlatform, api: MessagingApi) -> None:
    event = fake.text_event(BOB, "hi")
    api.reply_message(ReplyMessageRequest(reply_token=event["replyToken"], messages=[TextMessage(text="hello Bob")]))
    assert fake.delivered(BOB) == [{"type": "text", "text": "hello Bob"}]


def test_send_webhook_signs_and_bot_replies(fake: FakeLinePlatform, echo_bot: EchoBot) -> None:
    answer = fake.send_webhook([fake.text_event(ALICE, "ごみ")])
    assert answer.status_code == 200
    assert fake.delivered(ALICE) == [{"type": "text", "text": "echo: ごみ"}]
    assert echo_bot.received[0].source.user_id == ALICE
    assert fake.send_webhook([fake.follow_event(ALICE)], signature="wrong").status_code == 400
    raw = b'{"destination":"x","events":[]}'
    assert fake.send_webhook([], raw_body=raw).status_code == 200
    assert fake.send_webhook([], raw_body=raw, signature=fake.sign(b"other")).status_code == 400


def test_send_webhook_needs_a_url(fake: FakeLinePlatform) -> None:
    with pytest.raises(ValueError):
        fake.send_webhook([fake.unfollow_event(ALICE)])


# ---- control API -----------------------------------------------------------------------------------


def test_control_events_and_deliveries(fake: FakeLinePlatform, served: Any, echo_bot: EchoBot) -> None:
    answer = requests.post(served.url + "/_fake/events/text", json={"user": ALICE, "text": "こんにちは"}, timeout=10).json()
    assert answer["status"] == 200 and answer["event"]["message"]["text"] == "こんにちは"
    for kind, body in (("postback", {"user": ALICE, "data": "a=1"}), ("follow", {"user": BOB}), ("unfollow", {"user": BOB})):
        result = requests.post(served.url + f"/_fake/events/{kind}", json=body, timeout=10).json()
        assert result["status"] == 200 and result["event"]["type"] == kind
    assert [type(e) for e in echo_bot.received] == [MessageEvent, PostbackEvent, FollowEvent, UnfollowEvent]

    mine = requests.get(served.url + "/_fake/deliveries", params={"user": ALICE}, timeout=5).json()
    assert mine == {"messages": [{"type": "text", "text": "echo: こんにちは"}], "next": 1}
    assert requests.get(served.url + "/_fake/deliveries", params={"user": ALICE, "since": 1}, timeout=5).json() == {"messages": [], "next": 1}
    everything = requests.get(served.url + "/_fake/deliveries", timeout=5).json()
    assert everything["next"] == 1
    assert everything["deliveries"][0]["kind"] == "reply" and everything["deliveries"][0]["to"] == [ALICE]
    assert set(everything["deliveries"][0]) >= {"kind", "to", "messages", "retry_key", "request_id", "at"}


def test_control_long_poll_returns_when_a_message_arrives(fake: FakeLinePlatform, served: Any, api: MessagingApi) -> None:
    threading.Timer(0.2, lambda: api.push_message(PushMessageRequest(to=ALICE, messages=[TextMessage(text="x")]))).start()
    started = time.monotonic()
    answer = requests.get(served.url + "/_fake/deliveries", params={"user": ALICE, "wait": 5}, timeout=10).json()
    assert answer["next"] == 1 and time.monotonic() - started < 4


def test_control_event_without_webhook_url_or_with_bot_down(fake: FakeLinePlatform, served: Any) -> None:
    assert requests.post(served.url + "/_fake/events/text", json={"user": ALICE, "text": "x"}, timeout=5).status_code == 502
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    fake.webhook_url = f"http://127.0.0.1:{dead_port}/callback"
    answer = requests.post(served.url + "/_fake/events/follow", json={"user": ALICE}, timeout=5)
    assert answer.status_code == 502 and answer.json()["status"] is None
    assert requests.post(served.url + "/_fake/events/poke", json={"user": ALICE}, timeout=5).status_code == 404
    assert requests.post(served.url + "/_fake/events/text", json={"text": "no user"}, timeout=5).status_code == 400


def test_control_faults_invalid_stats_and_reset(fake: FakeLinePlatform, served: Any, api: MessagingApi) -> None:
    faults = requests.post(served.url + "/_fake/faults", json={"endpoint": "push", "status": 429, "times": 1}, timeout=5).json()
    assert faults["faults"][0]["status"] == 429
    with pytest.raises(ApiException) as info:
        api.push_message(PushMessageRequest(to=ALICE, messages=[TextMessage(text="x")]))
    assert info.value.status == 429
    requests.post(served.url + "/_fake/faults", json={"endpoint": "*", "status": 500, "times": -1}, timeout=5)
    assert requests.delete(served.url + "/_fake/faults", timeout=5).json() == {"faults": []}
    assert requests.post(served.url + "/_fake/faults", json={"endpoint": "nope", "status": 500}, timeout=5).status_code == 400
    api.push_message(PushMessageRequest(to=ALICE, messages=[TextMessage(text="x")]))
    raw_post(served, "/v2/bot/message/push", push_body({"type": "txt"}))

    invalid = requests.get(served.url + "/_fake/invalid", timeout=5).json()["invalid"]
    assert len(invalid) == 1 and invalid[0]["errors"][0]["property"] == "messages[0].type"
    stats = requests.get(served.url + "/_fake/stats", timeout=5).json()
    assert stats["endpoints"]["push"] == {"429": 1, "200": 1, "400": 1}
    assert stats["deliveries"] == 1 and stats["invalid"] == 1

    assert requests.post(served.url + "/_fake/reset", timeout=5).json() == {"ok": True}
    assert fake.deliveries == [] and fake.invalid == [] and fake.requests == []
    assert requests.get(served.url + "/_fake/stats", timeout=5).json()["endpoints"] == {}


def test_requests_are_recorded_with_headers_and_body(fake: FakeLinePlatform, api: MessagingApi) -> None:
    key = str(uuid.uuid4())
    api.push_message(PushMessageRequest(to=ALICE, messages=[TextMessage(text="x")]), x_line_retry_key=key)
    recorded = fake.requests[-1]
    assert (recorded.method, recorded.path, recorded.status) == ("POST", "/v2/bot/message/push", 200)
    assert recorded.headers["X-Line-Retry-Key"] == key
    assert recorded.body == {"to": ALICE, "messages": [{"type": "text", "text": "x"}], "notificationDisabled": False}


def test_cli_serves_the_fake(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "bot.sandbox.fake_line", "--port", str(port), "--channel-secret", "S", "--spec-dir", str(SPEC_DIR)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 15
        while True:
            try:
                requests.get(url + "/_fake/stats", timeout=1)
                break
            except requests.ConnectionError:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                assert time.monotonic() < deadline, "CLI did not start"
                time.sleep(0.1)
        with ApiClient(Configuration(host=url, access_token="x")) as client:
            MessagingApi(client).push_message(PushMessageRequest(to=ALICE, messages=[TextMessage(text="cli")]))
        answer = requests.get(url + "/_fake/deliveries", params={"user": ALICE}, timeout=5).json()
        assert answer["messages"] == [{"type": "text", "text": "cli"}]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_control_reply_tokens_are_issued_for_benchmarks(fake: FakeLinePlatform, served: Any, api: MessagingApi) -> None:
    tokens = requests.post(served.url + "/_fake/reply-tokens", json={"users": [ALICE, BOB]}, timeout=5).json()["tokens"]
    assert len(set(tokens)) == 2
    api.reply_message(ReplyMessageRequest(reply_token=tokens[1], messages=[TextMessage(text="for Bob")]))
    assert fake.delivered(BOB) == [{"type": "text", "text": "for Bob"}]
    bad = requests.post(served.url + "/_fake/reply-tokens", json={"users": "U1"}, timeout=5)
    assert bad.status_code == 400
