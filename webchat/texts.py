"""Every text residents read in the homepage chat and the public FAQ pages, in one module.

Japanese, worded as the LINE replies are (handlers/faq_replies.py) so both channels say the same;
kept together so they can move to the message catalogs (bot/i18n) with the LINE texts.
"""

from __future__ import annotations

# --- the conversation ---------------------------------------------------------------------------
ASK_FEEDBACK = "この回答は役に立ちましたか？"
YES = "はい"
NO = "いいえ"
THANKS_HELPFUL = "ご回答ありがとうございます。お役に立ててうれしいです。"
THANKS_NOT_HELPFUL = ("ご回答ありがとうございます。職員が内容を見直します。"
                      "言い方を変えて質問していただくと、見つかることもあります。")
CLARIFY = ("もしかして、次のどれかについてのご質問ですか？\n{lines}\n"
           "番号（{numbers}）を送るか、下のボタンから選んでください。当てはまらないときは「0」を送ってください。")
NONE_OF_THESE = "どれでもない"
CHOICE_OUT_OF_RANGE = "申し訳ありません。その番号は選べません。{numbers}を送るか、当てはまるものがないときは「0」を送ってください。"
UNKNOWN = ("申し訳ありません。そのご質問にはまだお答えできません。"
           "いただいた質問は職員が確認し、今後の回答づくりに役立てます。{contact}\n下の分類から探すこともできます。")
UNKNOWN_CONTACT = "\nお急ぎの場合のお問い合わせ先：{contact}"
MENU = "知りたいことの分類を選んでください。"
CATEGORY = "「{label}」のよくある質問です。知りたいものを選んでください。"
CATEGORY_EMPTY = "この分類の質問はまだありません。"
HELP = ("{city}ホームページのチャットの使い方\n"
        "・知りたいことを文章で送ってください（例：「マイナンバーカードの暗証番号を忘れた」）。\n"
        "・「メニュー」で分類から探せます。\n"
        "・答えが合っていなかったら「いいえ」を押してください。職員が改善します。")
SMALLTALK = {
    "greeting": "こんにちは。{city}のチャットです。手続きや暮らしのことを、文章で気軽に質問してください。",
    "thanks": "どういたしまして。ほかにも知りたいことがあれば、いつでも送ってください。",
    "chat": "お話ししてくれてありがとうございます。このチャットでは{city}の手続きや暮らしの情報にお答えしています。"
            "知りたいことを文章で送ってください（例：住民票をコンビニで取りたい）。",
}
CITY_FALLBACK = "市"

# --- errors of the JSON API ({"error": ...}) ---------------------------------------------------------
ERR_JSON_REQUIRED = "JSON（Content-Type: application/json）で送ってください。"
ERR_BAD_JSON = "送信された内容を読み取れませんでした（JSONの形式が正しくありません）。"
ERR_NOT_OBJECT = "送信する内容は {\"text\": …, \"session\": …} の形のJSONにしてください。"
ERR_SESSION = "会話のID（session）が正しくありません。ページを読み込み直してください。"
ERR_TEXT_MISSING = "質問を文章で入力してください。"
ERR_TEXT_TYPE = "質問（text）は文字列で送ってください。"
ERR_TEXT_TOO_LONG = "質問が長すぎます。{limit}文字以内で送ってください。"
ERR_TEXT_UNREADABLE = "読み取れない文字が含まれています。入力し直してください。"
ERR_LOG_ID = "質問の番号（log_id）が正しくありません。"
ERR_LOG_NOT_FOUND = "その質問は見つかりません。もう一度質問を送ってください。"
ERR_CHOICE_TYPE = "選んだ項目（choice）は文字列で送ってください（「どれでもない」は空の文字列）。"
ERR_CHOICE_NOT_OFFERED = "その項目はこの「もしかして」では選べません。もう一度質問を送ってください。"
ERR_HELPFUL_TYPE = "評価（helpful）は true か false で送ってください。"
ERR_NO_FEEDBACK = "この質問には評価をつけられません。"
ERR_ORIGIN = "このサイトからはチャットを利用できません。"
ERR_RATE = "短い時間に多くの質問が送られました。{seconds}秒ほど待ってから、もう一度送ってください。"
ERR_BODY_TOO_LARGE = "送信された内容が大きすぎます。"
ERR_NOT_FOUND = "見つかりません。アドレスを確認してください。"
ERR_METHOD = "この操作はできません。"
ERR_SERVER = "申し訳ありません。エラーが発生しました。しばらくしてから、もう一度お試しください。"
ERR_OTHER = "リクエストを受け付けられませんでした。"
