"""What garbage says to residents, as Japanese msgids sent through bot.i18n in the resident's
language (the chat in handlers/garbage_chat.py and the reminders)."""

from __future__ import annotations

import datetime as dt

from bot.i18n import DEFAULT_LANGUAGE, N_, label, normalize, translate
from garbage.calendar import weekday_label

ITEM_ANSWER = N_("「{item}」は「{category}」です。")
NOTES = N_("注意点：{notes}")
REMARKS = N_("備考：{remarks}")
NEXT_DAY = N_("{area}の次の「{kind}」の収集日は {date} です。")
NO_NEXT_DAY = N_("「{kind}」の収集日は、{area}のカレンダーでは近くにありません。")
NOT_ON_CALENDAR = N_("「{category}」は収集日が決まっている区分ではありません。出し方は市の案内をご確認ください。")
ASK_AREA = N_("お住まいの地区を選ぶと、次の収集日もお知らせします。\n"
              "（保存するのは選んだ地区と選んだ日時だけです。「登録情報を削除」でいつでも削除できます）")
ASK_AREA_AGAIN = N_("ごみの収集の地区を選んでください。")
AREA_SET = N_("地区を「{area}」にしました。")
UNKNOWN_ITEM = N_("「{item}」は、ごみ分別の一覧に見つかりませんでした。市の担当者が一覧を見直します。\n"
                  "品目名を短く（例：「電池」「ふとん」）送っていただくと、見つかることもあります。")
MAYBE = N_("もしかして：{items}")
NEXT_DAYS_TITLE = N_("{area}のこれからのごみの日です。")
NO_DAYS = N_("{area}では、これから2週間に収集日がありません（年末年始などの休止期間を含みます）。")
NO_CALENDAR = N_("ごみの収集日の情報がまだ登録されていません。市の案内をご確認ください。")
REMINDER_OFFER = N_("収集日の前の晩に通知を受け取る")
REMINDER_ON = N_("収集日の前の晩（{time}ごろ）に、{area}のごみの日をお知らせします。やめるときは「ごみの通知」と送ってください。")
REMINDER_OFF = N_("ごみの日の通知を止めました。")
REMINDER_STATUS = N_("ごみの日の通知：{state}（地区：{area}）")
REMINDER_NEEDS_AREA = N_("通知を受け取るには、先にお住まいの地区を選んでください。")
TURN_ON = N_("通知を受け取る")
TURN_OFF = N_("通知を止める")
CHANGE_AREA = N_("地区を変更")
NEXT_DAYS_BUTTON = N_("次のごみの日")
ON = N_("受け取る")
OFF = N_("止めている")
MORE = N_("次へ")
STALE = N_("このボタンは使えなくなっています。お手数ですが、もう一度質問を送ってください。")
REMINDER = N_("【ごみの日のお知らせ】\n明日 {date} は、{area}の「{kinds}」の収集日です。\n"
              "通知を止めるときは「ごみの通知」と送ってください。")
# The command word of the reminder settings (「ごみの通知」), recognised in every catalog's words too.
REMINDER_COMMAND = N_("ごみの通知")
# A collection day in a resident's language other than Japanese (Japanese: calendar.weekday_label).
DATE = N_("{month}月{day}日（{weekday}）")
WEEKDAYS = (N_("月曜日"), N_("火曜日"), N_("水曜日"), N_("木曜日"), N_("金曜日"), N_("土曜日"), N_("日曜日"))


def date_label(day: dt.date, language: str | None) -> str:
    """「12月4日（金）」 in Japanese; the catalog's form of the date elsewhere (「sexta-feira, 4/12」)."""
    if normalize(language) == DEFAULT_LANGUAGE:
        return weekday_label(day)
    return translate(DATE, language, month=day.month, day=day.day, weekday=label(WEEKDAYS[day.weekday()], language))
