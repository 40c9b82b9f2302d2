"""The LINE gateway against the fake platform: calls, timeouts, retry keys, error mapping."""

from __future__ import annotations

import socket
import time

import pytest

from bot.line import (
    LineGateway,
    LineRateLimited,
    LineRejected,
    LineServerError,
    LineTimeout,
    new_retry_key,
)

USER = "U" + "4" * 32


@pytest.fixture
def gateway(fake_line_server, fake_line):
    _fake, served = fake_line_server
    gw = LineGateway("test-token", served.url, timeout=0.5)
    yield gw
    gw.close()


def test_reply_push_and_multicast_are_delivered(gateway, fake_line) -> None:
    token = fake_line.issue_reply_token(USER)
    assert gateway.reply(token, [{"type": "text", "text": "こんにちは"}])
    gateway.push(USER, [{"type": "text", "text": "お知らせ"}], retry_key=new_retry_key())
    others = ["U" + f"{i:032x}" for i in range(3)]
    gateway.multicast([USER, *others], [{"type": "text", "text": "全員へ"}], retry_key=new_retry_key())
    assert [m["text"] for m in fake_line.delivered(USER)] == ["こんにちは", "お知らせ", "全員へ"]
    assert [m["text"] for m in fake_line.delivered(others[2])] == ["全員へ"]


def test_repeated_retry_key_is_reported_as_already_accepted_and_not_resent(gateway, fake_line) -> None:
    key = new_retry_key()
    first = gateway.push(USER, [{"type": "text", "text": "一度だけ"}], retry_key=key)
    second = gateway.push(USER, [{"type": "text", "text": "一度だけ"}], retry_key=key)
    assert not first.already_accepted
    assert second.already_accepted and second.request_id
    assert len(fake_line.delivered(USER)) == 1


def test_errors_map_to_the_hierarchy_with_request_id(gateway, fake_line) -> None:
    fake_line.fail("push", 429)
    with pytest.raises(LineRateLimited) as rate:
        gateway.push(USER, [{"type": "text", "text": "x"}])
    assert rate.value.status == 429 and rate.value.request_id
    fake_line.fail("push", 500)
    with pytest.raises(LineServerError) as server:
        gateway.push(USER, [{"type": "text", "text": "x"}])
    assert server.value.status == 500 and server.value.request_id
    with pytest.raises(LineRejected) as rejected:
        gateway.reply("never-issued", [{"type": "text", "text": "x"}])
    assert rejected.value.status == 400
    assert fake_line.delivered(USER) == []
    fake_line.invalid.clear()


def test_a_hanging_call_times_out_without_sdk_retries(gateway, fake_line) -> None:
    fake_line.fail("push", "hang", hang_seconds=2.0)
    started = time.monotonic()
    with pytest.raises(LineTimeout):
        gateway.push(USER, [{"type": "text", "text": "x"}])
    assert time.monotonic() - started < 1.5
    push_calls = [r for r in fake_line.requests if r.path.endswith("/push")]
    assert len(push_calls) <= 1  # one attempt: the SDK did not retry behind our back


def test_connection_refused_is_a_server_error() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gw = LineGateway("t", f"http://127.0.0.1:{port}", timeout=0.5)
    with pytest.raises(LineServerError):
        gw.push(USER, [{"type": "text", "text": "x"}])


def test_limits_are_checked_before_calling_line(gateway, fake_line) -> None:
    with pytest.raises(ValueError):
        gateway.multicast(["U" + f"{i:032x}" for i in range(501)], [{"type": "text", "text": "x"}])
    with pytest.raises(ValueError):
        gateway.push(USER, [{"type": "text", "text": str(i)} for i in range(6)])
    assert fake_line.requests == []



def test_a_message_line_would_refuse_is_rejected_with_lines_reason(gateway, fake_line) -> None:
    # Messages go out as JSON without the SDK's models: LINE's own validation is the check.
    token = fake_line.issue_reply_token(USER)
    with pytest.raises(LineRejected) as rejected:
        gateway.reply(token, [{"type": "text", "text": "x" * 5001}])
    fake_line.invalid.clear()  # expected here: the fixture fails tests that send invalid requests
    assert rejected.value.status == 400 and rejected.value.request_id
    assert "messages[0].text" in str(rejected.value)  # LINE's details say which property
    assert "x" * 20 not in str(rejected.value)  # and never the message itself
    assert fake_line.delivered(USER) == []

def test_profile_loading_and_rich_menu_calls(gateway, fake_line) -> None:
    assert gateway.get_profile(USER)["userId"] == USER
    gateway.show_loading(USER, 5)
    menu = {
        "size": {"width": 2500, "height": 843},
        "selected": True,
        "name": "main",
        "chatBarText": "メニュー",
        "areas": [{"bounds": {"x": 0, "y": 0, "width": 2500, "height": 843},
                   "action": {"type": "message", "label": "メニュー", "text": "メニュー"}}],
    }
    menu_id = gateway.create_rich_menu(menu)
    gateway.set_rich_menu_image(menu_id, b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    gateway.set_default_rich_menu(menu_id)
    assert [m["richMenuId"] for m in gateway.list_rich_menus()] == [menu_id]
    gateway.delete_rich_menu(menu_id)
    assert gateway.list_rich_menus() == []
