"""`flask line check`: ask LINE itself whether the channel is ready, and say in Japanese what to fix.

Reads the bot's info (the token works), the webhook URL and whether it is on, has LINE send a
test webhook to it (the bot answers), and this month's message quota and what is used of it.
Every call goes through the LINE gateway; the token and the channel secret are never printed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import with_appcontext

from bot.config import LINE_API_DEFAULT
from bot.line import LineError, LineGateway, LineRateLimited, LineServerError, LineTimeout

OK, FIX, NOTE = "ok", "fix", "note"
LABELS = {OK: "[OK]    ", FIX: "[要対応]", NOTE: "[注意]  "}
CONSOLE = "LINE Developers コンソールのチャネルの「Messaging API設定」"


@dataclass
class Finding:
    """One line of the checklist: what was checked, how it stands, and what to do about it."""

    key: str
    status: str  # ok | fix | note
    message: str
    hint: str = ""


@dataclass
class ChannelReport:
    """What LINE said about the channel, and the checklist made from it."""

    api_base_url: str
    findings: list[Finding] = field(default_factory=list)
    bot: dict[str, Any] | None = None
    webhook: dict[str, Any] | None = None
    webhook_test: dict[str, Any] | None = None
    quota: dict[str, Any] | None = None
    quota_used: int | None = None

    @property
    def ok(self) -> bool:
        """True when nothing must be fixed (notes do not count)."""
        return not any(f.status == FIX for f in self.findings)

    def add(self, key: str, status: str, message: str, hint: str = "") -> None:
        """Append one finding."""
        self.findings.append(Finding(key, status, message, hint))

    def as_dict(self) -> dict[str, Any]:
        """The report for --json (the token and secret are not part of it)."""
        return {
            "ok": self.ok, "api_base_url": self.api_base_url, "findings": [asdict(f) for f in self.findings],
            "bot": self.bot, "webhook": self.webhook, "webhook_test": self.webhook_test,
            "quota": self.quota, "quota_used": self.quota_used,
        }


def _line_says(exc: LineError) -> str:
    """LINE's own explanation from the error (after 'LINE <call> failed: ')."""
    text = str(exc.args[0]) if exc.args else ""
    _, _, said = text.partition(" failed: ")
    return said.strip()


def _call_problem(exc: LineError, api_base_url: str, what: str) -> tuple[str, str]:
    """(message, hint) in Japanese for a LINE call that failed."""
    said = _line_says(exc)
    suffix = f"（LINE の説明: {said}）" if said else ""
    if isinstance(exc, LineTimeout):
        return (f"{what}: LINE（{api_base_url}）から時間内に応答がありませんでした。",
                "このサーバーから LINE への通信（プロキシ、ファイアウォール）を確かめ、しばらくしてからもう一度実行してください。"
                " 待ち時間の上限は LINE_TIMEOUT_SECONDS です。")
    if isinstance(exc, LineServerError) and exc.status is None:
        return (f"{what}: LINE（{api_base_url}）に接続できませんでした。",
                "このサーバーから LINE への通信（DNS、プロキシ、ファイアウォール）と LINE_API_BASE_URL を確かめてください。")
    if isinstance(exc, LineServerError):
        return (f"{what}: LINE 側のエラーです（状態コード {exc.status}）{suffix}。", "しばらくしてからもう一度実行してください。")
    if isinstance(exc, LineRateLimited):
        return (f"{what}: LINE の呼び出し回数の上限に達しています（状態コード 429）{suffix}。",
                "しばらくしてからもう一度実行してください。")
    if exc.status == 401:
        return ("チャネルアクセストークンが正しくないか、期限が切れています（LINE の答え: 状態コード 401）。",
                f"{CONSOLE}でチャネルアクセストークン（長期）を発行し、LINE_CHANNEL_ACCESS_TOKEN に設定して、"
                "Web と配信プロセスを再起動してください。")
    if exc.status == 403:
        return (f"{what}: このチャネルでは使えない操作です（状態コード 403）{suffix}。",
                "チャネルの種類（Messaging API）とアクセストークンのチャネルが合っているか確かめてください。")
    return (f"{what}: LINE がエラーを返しました（状態コード {exc.status}）{suffix}。", "")


def _webhook_url_problems(endpoint: str, is_line: bool) -> list[tuple[str, str, str]]:
    """(status, message, hint) for a webhook URL that is not https://…/callback."""
    found = []
    parts = urlsplit(endpoint)
    if parts.scheme != "https":
        if is_line:
            found.append((FIX, "Webhook URL が HTTPS ではありません。LINE は HTTPS の URL にしか送りません。",
                          "TLS の証明書を設定した名前で https://（このサーバーの名前）/callback にしてください。"))
        else:
            found.append((NOTE, "Webhook URL が HTTPS ではありません（LINE の代わりの接続先なので、このまま確かめます）。",
                          "本番の LINE では https:// の URL が必要です。"))
    if not parts.path.endswith("/callback"):
        found.append((FIX, f"Webhook URL のパスが /callback で終わっていません（{parts.path or '/'}）。",
                      "このボットは /callback で Webhook を受けます。URL を https://（このサーバーの名前）/callback にしてください。"))
    return found


TEST_HINTS = {
    "COULD_NOT_CONNECT": "LINE からこのサーバーに接続できません。サーバーの名前（DNS）、ポート 443、ファイアウォール、"
                         "nginx と Web（gunicorn）が動いているかを確かめてください。",
    "REQUEST_TIMEOUT": "ボットの応答が遅すぎます。Web（gunicorn）が動いているか、混み合っていないかを確かめてください。",
}


def _test_hint(result: dict[str, Any]) -> str:
    """What to look at when LINE's test webhook did not get a 200."""
    reason = str(result.get("reason", ""))
    if reason in TEST_HINTS:
        return TEST_HINTS[reason]
    status = int(result.get("statusCode") or 0)
    if status == 400:
        return ("ボットが署名を確かめられなかった可能性があります。LINE_CHANNEL_SECRET がこのチャネルの"
                "チャネルシークレットか確かめてください。")
    if status == 404:
        return "その URL にボットがいません。nginx の転送先と、URL のパス（/callback）を確かめてください。"
    if status >= 500:
        return "ボットか nginx がエラーを返しました。Web のログ（journalctl -u linebot-web）を確かめてください。"
    if reason == "ERROR_STATUS_CODE":
        return "ボットが 200 以外で答えました。nginx の設定と Web のログを確かめてください。"
    return ""


def check_channel(gateway: LineGateway, api_base_url: str, quota_warn_percent: float) -> ChannelReport:
    """Ask LINE about the channel with the configured token; the checklist of what is right and what to fix."""
    report = ChannelReport(api_base_url=api_base_url)
    is_line = api_base_url.rstrip("/") == LINE_API_DEFAULT

    try:
        report.bot = gateway.bot_info()
    except LineError as exc:
        # The token or the connection: every other call would fail the same way.
        report.add("token", FIX, *_call_problem(exc, api_base_url, "アカウント情報の取得"))
        return report
    name, basic_id = report.bot.get("displayName", ""), report.bot.get("basicId", "")
    premium = report.bot.get("premiumId")
    report.add("token", OK, f"チャネルアクセストークンは有効です。アカウント: {name}（ベーシックID {basic_id}"
               + (f"、プレミアムID {premium}" if premium else "") + "）")

    try:
        report.webhook = gateway.webhook_endpoint()
    except LineError as exc:
        report.add("webhook_url", FIX, *_call_problem(exc, api_base_url, "Webhook URL の取得"))
    else:
        endpoint = str(report.webhook.get("endpoint") or "")
        if not endpoint:
            report.add("webhook_url", FIX, "Webhook URL が設定されていません。",
                       f"{CONSOLE}で Webhook URL を https://（このサーバーの名前）/callback にしてください。")
        else:
            problems = _webhook_url_problems(endpoint, is_line)
            if not any(status == FIX for status, _, _ in problems):
                report.add("webhook_url", OK, f"Webhook URL: {endpoint}")
            for status, message, hint in problems:
                report.add("webhook_url", status, message + f"（{endpoint}）", hint)
            if report.webhook.get("active"):
                report.add("webhook_active", OK, "Webhook の利用: オン")
            else:
                report.add("webhook_active", FIX, "Webhook の利用がオフです。LINE は住民のメッセージをボットに送りません。",
                           f"{CONSOLE}で「Webhookの利用」をオンにしてください。")
            _test_webhook(gateway, report, api_base_url)

    _check_quota(gateway, report, api_base_url, quota_warn_percent)
    return report


def _test_webhook(gateway: LineGateway, report: ChannelReport, api_base_url: str) -> None:
    """LINE posts a test webhook to the URL; its verdict."""
    try:
        result = report.webhook_test = gateway.test_webhook()
    except LineError as exc:
        report.add("webhook_test", FIX, *_call_problem(exc, api_base_url, "Webhook の試験送信"))
        return
    status = result.get("statusCode")
    if result.get("success"):
        report.add("webhook_test", OK, f"Webhook の試験送信: LINE から届き、ボットが状態コード {status} で答えました。")
        return
    detail = str(result.get("detail") or "")
    report.add("webhook_test", FIX,
               f"Webhook の試験送信に失敗しました: {result.get('reason', '')}（状態コード {status}"
               + (f"、{detail}" if detail else "") + "）。", _test_hint(result))


def _check_quota(gateway: LineGateway, report: ChannelReport, api_base_url: str, warn_percent: float) -> None:
    """This month's message quota and how much of it is used."""
    try:
        report.quota = gateway.message_quota()
        report.quota_used = int(gateway.message_quota_consumption().get("totalUsage", 0))
    except LineError as exc:
        report.add("quota", FIX, *_call_problem(exc, api_base_url, "メッセージの送信数の取得"))
        return
    used = report.quota_used
    if report.quota.get("type") != "limited":
        report.add("quota", OK, f"今月のメッセージ: {used:,}通（上限なし）")
        return
    limit = int(report.quota.get("value") or 0)
    percent = 100.0 * used / limit if limit else 100.0
    text = f"今月のメッセージ: {used:,}通 / 上限 {limit:,}通（{percent:.0f}%）"
    if percent >= warn_percent:
        report.add("quota", FIX, text + f"。{warn_percent:g}% を超えました。",
                   "上限に達すると、お知らせ（一斉送信）が届かなくなります（住民の質問への応答は数えません）。"
                   "LINE Official Account Manager で料金プランを見直すか、今月のお知らせを減らしてください。"
                   " 目安は LINE_QUOTA_WARN_PERCENT で変えられます。")
    else:
        report.add("quota", OK, text)


def render_text(report: ChannelReport) -> str:
    """The checklist as lines for a terminal."""
    lines = [f"LINE チャネルの確認（接続先: {report.api_base_url}）"]
    for finding in report.findings:
        lines.append(f"{LABELS[finding.status]} {finding.message}")
        if finding.hint and finding.status != OK:
            lines.append(f"          → {finding.hint}")
    fixes = sum(f.status == FIX for f in report.findings)
    lines.append("結果: 問題はありません。" if not fixes else f"結果: 直すところが {fixes} 件あります。")
    return "\n".join(lines)


@click.command("check")
@click.option("--json", "as_json", is_flag=True, help="print the report as one JSON object")
@with_appcontext
def line_check_command(as_json: bool) -> None:
    """Ask LINE whether the channel is ready: token, webhook URL and test, message quota (exit 1 if something must be fixed)."""
    config = current_app.config
    try:
        report = check_channel(
            current_app.extensions["line"], str(config["LINE_API_BASE_URL"]), float(config["LINE_QUOTA_WARN_PERCENT"])
        )
    except (ValueError, TypeError) as exc:
        # The SDK could not read an answer (not LINE's documented shape): say so, without a traceback.
        raise click.ClickException(
            f"LINE（{config['LINE_API_BASE_URL']}）の答えを読めませんでした（{type(exc).__name__}）。"
            "LINE_API_BASE_URL が LINE の Messaging API を指しているか確かめてください。"
        ) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        click.echo(render_text(report))
    if not report.ok:
        raise SystemExit(1)
