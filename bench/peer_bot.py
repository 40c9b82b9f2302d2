"""The peer of the webhook benchmark: a FAQ bot written as the LINE SDK's Flask sample has it.

line-bot-sdk v3's flask-echo sample, with the echo replaced by a fuzzy lookup: the webhook
handler verifies the signature, parses the events and, inside the request, answers each text
message by reply with the answer of the knowledge-base entry whose question is closest to the
text (rapidfuzz's `process.extractOne`, default scorer). No database, no queue: an event is
answered before LINE gets its 200, and an event whose reply fails is lost.

The knowledge base is the one shipped in faq/kb for MUNICIPALITY, read by faq.kb.load_kb as
`flask faq load` reads it (answers filled in with the city's facts).

    LINE_CHANNEL_SECRET=... LINE_CHANNEL_ACCESS_TOKEN=... LINE_API_BASE_URL=http://127.0.0.1:8081 \\
        gunicorn -c gunicorn.conf.py bench.peer_bot:app
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from flask import Flask, abort, request
from linebot.v3 import WebhookHandler
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.messaging import ApiClient, Configuration, MessagingApi, ReplyMessageRequest, TextMessage
from linebot.v3.webhooks import MessageEvent, TextMessageContent
from rapidfuzz import process

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from faq.kb import load_kb  # noqa: E402 - after the path: the repo's loader of the shipped knowledge base

app = Flask(__name__)
configuration = Configuration(
    host=os.environ.get("LINE_API_BASE_URL", "https://api.line.me"),
    access_token=os.environ["LINE_CHANNEL_ACCESS_TOKEN"],
)
handler = WebhookHandler(os.environ["LINE_CHANNEL_SECRET"])

ENTRIES = load_kb(os.environ.get("MUNICIPALITY", "nasukarasuyama"))
QUESTIONS = [entry.question for entry in ENTRIES]


@app.route("/healthz")
def healthz() -> str:
    return "ok"


@app.route("/callback", methods=["POST"])
def callback() -> str:
    signature = request.headers["X-Line-Signature"]
    body = request.get_data(as_text=True)
    try:
        handler.handle(body, signature)
    except InvalidSignatureError:
        abort(400)
    return "OK"


@handler.add(MessageEvent, message=TextMessageContent)
def handle_message(event: MessageEvent) -> None:
    _question, _score, index = process.extractOne(event.message.text, QUESTIONS)
    with ApiClient(configuration) as api_client:
        line_bot_api = MessagingApi(api_client)
        line_bot_api.reply_message(
            ReplyMessageRequest(reply_token=event.reply_token, messages=[TextMessage(text=ENTRIES[index].answer)])
        )
