"""The KPIs: ids, Japanese names, units and definitions (shown on the dashboard and in the report)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Unit = Literal["people", "count", "percent"]

UNIT_SUFFIX: dict[str, str] = {"people": "人", "count": "件", "percent": "%"}


@dataclass(frozen=True)
class KpiDefinition:
    """One KPI: how it is named, counted and shown."""

    id: str
    name: str
    unit: Unit
    definition: str
    decimals: int = 1  # percentages: the usage rate keeps the plan's two decimals (59.29%)


# In display order. The wording is the README's (kpi/README.md) and the dashboard's.
KPIS: tuple[KpiDefinition, ...] = (
    KpiDefinition("friends", "友だち数（月末）", "people",
                  "月末時点で友だち（ブロックしていない）の利用者数。友だち追加・ブロックの記録から、利用者ごとに"
                  "最後の操作が友だち追加である人を数える。当月は現在時点。"),
    KpiDefinition("new_friends", "新規友だち", "people",
                  "その月に友だち追加（ブロック解除を含む）した利用者の数（同じ人は1回）。"),
    KpiDefinition("blocked", "ブロック", "people",
                  "その月にブロックした利用者の数（同じ人は1回）。"),
    KpiDefinition("active_residents", "アクティブ利用者", "people",
                  "その月にメッセージを送ったかボタンを押した利用者の数（同じ人は1回）。"),
    KpiDefinition("line_usage_rate", "LINE利用率", "percent",
                  "友だち数（月末）÷ 設定された分母（人口または世帯数、出典・時点つき）× 100。"
                  "LINE公式アカウントの集計値が記録された月はその値を友だち数に使う。分母が未設定なら「未設定」。",
                  decimals=2),
    KpiDefinition("questions", "質問数", "count",
                  "その月に受けた質問（文章のメッセージのうち、あいさつ・メニュー等と設定コマンドを除くもの）の数。"),
    KpiDefinition("answered", "直接回答", "count", "質問のうち、FAQの回答をそのまま返したもの。"),
    KpiDefinition("clarified", "「もしかして」提示", "count", "質問のうち、候補（最大3件）をボタンで示したもの。"),
    KpiDefinition("unknown", "回答できず", "count", "質問のうち、該当する回答が見つからなかったもの（職員の確認用に記録）。"),
    KpiDefinition("answer_rate", "直接回答率", "percent", "直接回答 ÷ 質問数 × 100。"),
    KpiDefinition("precision", "直接回答の正答率（評価）", "percent",
                  "その月の直接回答のうち「役に立ちましたか？」に回答があったものについて、「はい」の割合。"
                  "同じ回答への評価は最後のものを数える。"),
    KpiDefinition("notices_sent", "お知らせ送信数", "count", "その月に送信したお知らせの数（配信1回を1件）。"),
    KpiDefinition("notices_delivered", "お知らせ配信数", "people",
                  "その月に送信したお知らせがLINEに受け付けられた宛先の数の合計。"),
    KpiDefinition("notice_block_rate", "お知らせ後のブロック率", "percent",
                  "お知らせの送信から24時間以内のブロック数 ÷ 配信数 × 100（月合計では、同じブロックは1回）。"),
)

KPI_BY_ID: dict[str, KpiDefinition] = {kpi.id: kpi for kpi in KPIS}

# Japanese names of usage-event kinds, for the table of every recorded kind.
USAGE_KIND_LABELS: dict[str, str] = {
    "follow": "友だち追加",
    "unfollow": "ブロック",
    "message": "メッセージ受信",
    "decision": "質問への応答",
    "feedback": "「役に立ちましたか？」への回答",
    "clarify_choice": "「もしかして」の選択",
    "postback": "ボタン操作",
    "menu_choice": "メニューからの項目選択",
    "command": "コマンド（設定など）",
    "ignored_event": "対象外のイベント",
    "notice_sent": "お知らせ送信",
    "notice_delivered": "お知らせ配信",
    "friends_snapshot": "友だち数（LINE集計値）の記録",
    "notice_block": "お知らせ受信後24時間以内のブロック",
    "consent": "登録情報の利用への同意",
    "registration_skipped": "登録情報の入力をスキップ",
    "settings_change": "登録情報の変更",
    "attributes_deleted": "登録情報の削除",
    "notices_stopped": "お知らせの受信停止",
    "notices_resumed": "お知らせの受信再開",
}

DECISION_LABELS: dict[str, str] = {
    "answer": "直接回答",
    "clarify": "「もしかして」提示",
    "unknown": "回答できず",
    "smalltalk": "あいさつ・メニュー等",
}


def format_value(value: float | int | None, unit: str, decimals: int = 1) -> str:
    """A KPI value as staff read it: 1,234人 / 56.7% / 「—」 when there is none."""
    if value is None:
        return "—"
    if unit == "percent":
        return f"{value:.{decimals}f}%"
    return f"{int(value):,}{UNIT_SUFFIX.get(unit, '')}"
