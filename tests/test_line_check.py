"""`flask line check` against the fake platform: a ready channel, and each thing an operator must fix."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
import pytest
from flask import Flask

from bot.line import LineGateway, LineRateLimited
from bot.sandbox.fake_line import FakeLinePlatform
from tests.conftest import CHANNEL_SECRET, free_port, webhook_served
from tests.test_broadcast import add_residents, run_dispatcher, schedule_notice

TOKEN = "test-access-token"


@pytest.fixture(autouse=True)
def channel_settings_restored(fake_line: FakeLinePlatform) -> Iterator[None]:
    """The webhook URL is the platform's, kept across resets (as webhook_served relies on): put it back."""
    before = fake_line.webhook_url
    yield
    fake_line.set_webhook_endpoint(before)


def run_check(app: Flask, *args: str) -> tuple[int, str]:
    """`bin/flask line check ARGS`: exit code and output."""
    result = app.test_cli_runner().invoke(args=["line", "check", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def lines_with(output: str, marker: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(marker)]


def assert_no_secrets(output: str) -> None:
    assert TOKEN not in output and CHANNEL_SECRET not in output


def test_a_ready_channel_passes_and_line_really_posts_the_test_webhook(app: Flask, fake_line: FakeLinePlatform) -> None:
    with webhook_served(app, fake_line) as url:
        code, output = run_check(app)
        assert code == 0, output
        assert "[OK]     チャネルアクセストークンは有効です。アカウント: 疑似LINE（テスト用）（ベーシックID @fakeline）" in output
        assert f"[OK]     Webhook URL: {url}/callback" in output
        assert "[OK]     Webhook の利用: オン" in output
        assert "[OK]     Webhook の試験送信: LINE から届き、ボットが状態コード 200 で答えました。" in output
        assert "[OK]     今月のメッセージ: 0通（上限なし）" in output
        # Served over http on loopback: fine for the fake, said so, not a failure.
        assert lines_with(output, "[注意]") == [
            f"[注意]   Webhook URL が HTTPS ではありません（LINE の代わりの接続先なので、このまま確かめます）。（{url}/callback）"]
        assert output.rstrip().endswith("結果: 問題はありません。")
        assert_no_secrets(output)

        code, text = run_check(app, "--json")
    report = json.loads(text)
    assert code == 0 and report["ok"] is True
    assert report["bot"]["basicId"] == "@fakeline" and report["webhook"] == {"endpoint": f"{url}/callback", "active": True}
    assert report["webhook_test"]["success"] is True and report["webhook_test"]["statusCode"] == 200
    assert report["quota"] == {"type": "none"} and report["quota_used"] == 0
    assert_no_secrets(text)
    tests = [r for r in fake_line.requests if r.path == "/v2/bot/channel/webhook/test"]
    assert len(tests) == 2 and all(r.status == 200 for r in tests)


def test_the_fakes_answers_follow_the_spec(app: Flask, fake_line: FakeLinePlatform) -> None:
    """What the check reads is shaped as messaging-api.yml says (field names, required fields, enums)."""
    gateway: LineGateway = app.extensions["line"]
    assert fake_line.spec is not None
    fake_line.set_quota(500, used=20)
    fake_line.set_webhook_endpoint("https://city.example.jp/callback", active=False)
    for schema, answer in (
        ("BotInfoResponse", gateway.bot_info()),
        ("GetWebhookEndpointResponse", gateway.webhook_endpoint()),
        ("TestWebhookEndpointResponse", gateway.test_webhook(endpoint=f"http://127.0.0.1:{free_port()}/callback")),
        ("MessageQuotaResponse", gateway.message_quota()),
        ("QuotaConsumptionResponse", gateway.message_quota_consumption()),
    ):
        assert fake_line.spec.errors(schema, answer) == [], schema
    assert gateway.webhook_endpoint() == {"endpoint": "https://city.example.jp/callback", "active": False}
    assert gateway.message_quota() == {"type": "limited", "value": 500}


def test_the_webhook_url_is_set_as_line_does_https_only(app: Flask, fake_line: FakeLinePlatform) -> None:
    gateway: LineGateway = app.extensions["line"]
    api = gateway._api  # the SDK client the gateway wraps: setting the URL is the console's job, not the bot's
    from linebot.v3.messaging import ApiException, SetWebhookEndpointRequest

    api.set_webhook_endpoint(SetWebhookEndpointRequest(endpoint="https://city.example.jp/callback"))
    assert gateway.webhook_endpoint()["endpoint"] == "https://city.example.jp/callback"
    with pytest.raises(ApiException) as refused:
        api.set_webhook_endpoint(SetWebhookEndpointRequest(endpoint="http://city.example.jp/callback"))
    assert refused.value.status == 400
    assert gateway.webhook_endpoint()["endpoint"] == "https://city.example.jp/callback"


def test_a_wrong_or_expired_token_is_named_and_nothing_else_is_asked(make_app: Callable[..., Flask], fake_line: FakeLinePlatform) -> None:
    fake_line.revoke_token("expired-token")
    app = make_app(LINE_CHANNEL_ACCESS_TOKEN="expired-token")
    code, output = run_check(app)
    assert code == 1
    (fix,) = lines_with(output, "[要対応]")
    assert fix == "[要対応] チャネルアクセストークンが正しくないか、期限が切れています（LINE の答え: 状態コード 401）。"
    assert "LINE_CHANNEL_ACCESS_TOKEN に設定して" in output and "結果: 直すところが 1 件あります。" in output
    assert "expired-token" not in output and CHANNEL_SECRET not in output
    assert [r.path for r in fake_line.requests] == ["/v2/bot/info"]


def test_no_webhook_url(app: Flask, fake_line: FakeLinePlatform) -> None:
    code, output = run_check(app)
    assert code == 1
    assert lines_with(output, "[要対応]") == ["[要対応] Webhook URL が設定されていません。"]
    assert "Webhook URL を https://（このサーバーの名前）/callback にしてください" in output
    assert not [r for r in fake_line.requests if r.path.endswith("/webhook/test")]  # nothing to test


def test_webhook_off_and_a_url_that_is_not_the_bots(app: Flask, fake_line: FakeLinePlatform) -> None:
    with webhook_served(app, fake_line) as url:
        fake_line.set_webhook_endpoint(f"{url}/webhook", active=False)
        code, output = run_check(app)
    assert code == 1
    fixes = lines_with(output, "[要対応]")
    assert f"[要対応] Webhook URL のパスが /callback で終わっていません（/webhook）。（{url}/webhook）" in fixes
    assert "[要対応] Webhook の利用がオフです。LINE は住民のメッセージをボットに送りません。" in fixes
    # The bot has no /webhook: LINE's test gets a 404, shown with LINE's reason and status code.
    assert "[要対応] Webhook の試験送信に失敗しました: ERROR_STATUS_CODE（状態コード 404、404 Not Found）。" in fixes
    assert len(fixes) == 3


def test_an_unreachable_webhook(app: Flask, fake_line: FakeLinePlatform) -> None:
    port = free_port()
    fake_line.set_webhook_endpoint(f"http://127.0.0.1:{port}/callback")
    code, output = run_check(app, "--json")
    assert code == 1
    report = json.loads(output)
    assert report["webhook_test"]["success"] is False and report["webhook_test"]["statusCode"] == 0
    (test,) = [f for f in report["findings"] if f["key"] == "webhook_test"]
    assert test["status"] == "fix"
    assert test["message"] == "Webhook の試験送信に失敗しました: COULD_NOT_CONNECT（状態コード 0、Connection refused）。"
    assert "LINE からこのサーバーに接続できません" in test["hint"]


def test_a_bot_with_another_channel_secret_fails_the_test_webhook(make_app: Callable[..., Flask], fake_line: FakeLinePlatform) -> None:
    app = make_app(LINE_CHANNEL_SECRET="the-secret-of-another-channel")
    with webhook_served(app, fake_line):
        code, output = run_check(app)
    assert code == 1
    assert "[要対応] Webhook の試験送信に失敗しました: ERROR_STATUS_CODE（状態コード 400、400 Bad Request）。" in output
    assert "LINE_CHANNEL_SECRET がこのチャネルの" in output and "the-secret-of-another-channel" not in output


def test_quota_90_percent_used_is_to_fix(app: Flask, fake_line: FakeLinePlatform) -> None:
    """Consumption counts what the fake delivered: 10 residents got a notice on top of 890 before."""
    add_residents(app, 10)
    schedule_notice(app, "【お知らせ】検診の日程")
    run_dispatcher(app)
    assert fake_line.quota_consumption() == 10
    fake_line.set_quota(1000, used=890)
    with webhook_served(app, fake_line):
        code, output = run_check(app)
    assert code == 1
    assert lines_with(output, "[要対応]") == ["[要対応] 今月のメッセージ: 900通 / 上限 1,000通（90%）。80% を超えました。"]
    assert "料金プランを見直す" in output

    app.config["LINE_QUOTA_WARN_PERCENT"] = 95.0
    with webhook_served(app, fake_line):
        code, output = run_check(app)
    assert code == 0 and "[OK]     今月のメッセージ: 900通 / 上限 1,000通（90%）" in output


def test_the_quota_is_enforced_as_line_does(app: Flask, fake_line: FakeLinePlatform) -> None:
    """Over the month's limit LINE answers a multicast with 429; what it took counts."""
    fake_line.set_quota(5)
    gateway: LineGateway = app.extensions["line"]
    message = [{"type": "text", "text": "上限の確認"}]
    with pytest.raises(LineRateLimited):
        gateway.multicast([f"U{n:032x}" for n in range(8)], message)
    gateway.multicast([f"U{n:032x}" for n in range(5)], message)
    assert fake_line.quota_consumption() == 5
    gateway.reply(fake_line.issue_reply_token("U" + "1" * 32), message)  # replies are free
    assert fake_line.quota_consumption() == 5


def test_line_timing_out_gives_one_clear_line(make_app: Callable[..., Flask], fake_line: FakeLinePlatform) -> None:
    app = make_app(LINE_TIMEOUT_SECONDS=0.5)
    fake_line.fail("info", "hang", times=1, hang_seconds=5)
    code, output = run_check(app)
    assert code == 1
    (fix,) = lines_with(output, "[要対応]")
    assert fix == f"[要対応] アカウント情報の取得: LINE（{app.config['LINE_API_BASE_URL']}）から時間内に応答がありませんでした。"
    assert "LINE_TIMEOUT_SECONDS" in output


def test_line_unreachable_and_line_errors_later_in_the_check(make_app: Callable[..., Flask], fake_line: FakeLinePlatform) -> None:
    app = make_app(LINE_API_BASE_URL=f"http://127.0.0.1:{free_port()}")
    code, output = run_check(app)
    assert code == 1 and "に接続できませんでした。" in output

    app = make_app()
    fake_line.set_webhook_endpoint("https://city.example.jp/callback")
    fake_line.fail("webhook", 503, times=1)
    fake_line.fail("quota", 500, times=1)
    code, output = run_check(app)
    assert code == 1
    assert "[要対応] Webhook URL の取得: LINE 側のエラーです（状態コード 503）（LINE の説明: Internal server error）。" in output
    assert "[要対応] メッセージの送信数の取得: LINE 側のエラーです（状態コード 500）（LINE の説明: Internal server error）。" in output


def test_the_channel_controls_over_http(fake_line_server: Any, fake_line: FakeLinePlatform) -> None:
    """Out-of-process users (make run, CI's production-like stack) set the channel through /_fake/channel."""
    import requests

    _fake, served = fake_line_server
    state = requests.post(f"{served.url}/_fake/channel", json={
        "webhookEndpoint": "https://city.example.jp/callback", "quota": 200, "quotaUsed": 150, "revokeToken": "old-token",
    }, timeout=5).json()
    assert state == {"webhookEndpoint": "https://city.example.jp/callback", "webhookActive": True, "quota": 200,
                     "revokedTokens": 1, "quotaUsed": 150}
    refused = requests.get(f"{served.url}/v2/bot/info", headers={"Authorization": "Bearer old-token"}, timeout=5)
    assert refused.status_code == 401
    assert requests.get(f"{served.url}/_fake/channel", timeout=5).json()["quotaUsed"] == 150
    assert requests.post(f"{served.url}/_fake/channel", json={"quota": -1}, timeout=5).status_code == 400


def test_an_answer_the_sdk_cannot_read_is_one_clear_line(make_app: Callable[..., Flask], fake_line: FakeLinePlatform) -> None:
    from werkzeug.serving import make_server
    import threading

    def not_line(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"hello": "world"}']

    server = make_server("127.0.0.1", 0, not_line)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        app = make_app(LINE_API_BASE_URL=f"http://127.0.0.1:{server.server_port}")
        code, output = run_check(app)
    finally:
        server.shutdown()
    assert code == 1 and "の答えを読めませんでした" in output and "LINE_API_BASE_URL" in output
