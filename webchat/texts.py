"""Every text residents read in the homepage chat and the public FAQ pages, in one module.

Japanese, worded as the LINE replies are so both channels say the same; residents' texts are msgids
of bot.i18n, translated where they are sent (webchat.conversation). The API's errors stay Japanese.
"""

from __future__ import annotations

from bot.i18n import N_

# --- the conversation ---------------------------------------------------------------------------
# The same msgids as the LINE replies (handlers/faq_replies.py, handlers/postback.py), so bot.i18n's
# catalogs translate them for a question written in another language; the few texts of the web
# alone (HELP, SMALLTALK) are sent in Japanese with bot.i18n's one-line note until catalogs have them.
ASK_FEEDBACK = N_("この回答は役に立ちましたか？")
YES = N_("はい")
NO = N_("いいえ")
THANKS_HELPFUL = N_("ご回答ありがとうございます。お役に立ててうれしいです。")
THANKS_NOT_HELPFUL = N_("ご回答ありがとうございます。職員が内容を見直します。"
                        "言い方を変えて質問していただくと、見つかることもあります。")
CLARIFY = N_("もしかして、次のどれかについてのご質問ですか？\n{lines}\n"
             "番号（{numbers}）を送るか、下のボタンから選んでください。当てはまらないときは「0」を送ってください。")
NONE_OF_THESE = N_("どれでもない")
CHOICE_OUT_OF_RANGE_ONE = N_("申し訳ありません。その番号は選べません。「1」を送るか、"
                             "当てはまるものがないときは「0」を送ってください。")
CHOICE_OUT_OF_RANGE = N_("申し訳ありません。その番号は選べません。{numbers}の番号を送るか、"
                         "当てはまるものがないときは「0」を送ってください。")
UNKNOWN = N_("申し訳ありません。そのご質問にはまだお答えできません。"
             "いただいた質問は職員が確認し、今後の回答づくりに役立てます。")
UNKNOWN_CONTACT = N_("お急ぎの場合のお問い合わせ先：{contact}")
UNKNOWN_MENU = N_("下の分類から探すこともできます。")
MENU = N_("知りたいことの分類を選んでください。")
CATEGORY = N_("「{label}」のよくある質問です{where}。知りたいものを選んでください。")
CATEGORY_EMPTY = N_("この分類の質問はまだありません。")
HELP = N_("{city}ホームページのチャットの使い方\n"
          "・知りたいことを文章で送ってください（例：「マイナンバーカードの暗証番号を忘れた」）。\n"
          "・「メニュー」で分類から探せます。\n"
          "・答えが合っていなかったら「いいえ」を押してください。職員が改善します。")
SMALLTALK = {
    "greeting": N_("こんにちは。{city}のチャットです。手続きや暮らしのことを、文章で気軽に質問してください。"),
    "thanks": N_("どういたしまして。ほかにも知りたいことがあれば、いつでも送ってください。"),
    "chat": N_("お話ししてくれてありがとうございます。このチャットでは{city}の手続きや暮らしの情報にお答えしています。"
               "知りたいことを文章で送ってください（例：住民票をコンビニで取りたい）。"),
}
CITY_FALLBACK = N_("市")

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
