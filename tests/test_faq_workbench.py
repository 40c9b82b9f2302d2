"""The FAQ workbench: staff turn unanswered questions into answers, and the bot answers next time.

Residents talk through the signed webhook (tests/conftest.py: Chat); staff use the admin pages
with CSRF tokens as a browser would; the CLI through Flask's runner.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from werkzeug.security import generate_password_hash

from bot import auth
from bot.db import get_db
from bot.models import AuditLog
from faq import review, whatif, workbench
from faq.directory import read_repo_directory
from faq.embed import package_version
from faq.models import FaqEntry, FaqRevision, QuestionLog, ReviewDecision, ReviewMark
from faq.normalize import normalize
from faq.store import load_repo_kb
from tests.conftest import SHARED, Chat

PASSWORD = "correct-horse-battery"
RESIDENT = "U" + "7" * 32
OTHER_RESIDENT = "U" + "8" * 32
CITY = "joso"

# Questions the shipped knowledge base cannot answer: one topic, several phrasings.
DRONE = ("ドローンを飛ばす許可は必要ですか", "ドローンの飛行許可について教えて", "公園でドローンを飛ばしてもいい？")
CAT = ("迷子の猫を探しています", "猫が迷子になった", "うちの猫がいなくなりました")
ALIEN = ("宇宙人っているの？", "宇宙人に会いたい")
DONT_KNOW = "お答えできません"


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheap password hashes keep the many logins quick."""
    monkeypatch.setattr(auth, "hash_password", lambda password: generate_password_hash(password, "pbkdf2:sha256:1000"))


@pytest.fixture
def kb_app(make_app: Callable[..., Flask]) -> Flask:
    """常総市 with the shipped knowledge base."""
    app = make_app(MUNICIPALITY=CITY, FAQ_WHATIF_RECENT=50)
    with get_db(app).session() as s:
        load_repo_kb(s, CITY)
    return app


def staff(app: Flask, username: str, role: str) -> FlaskClient:
    """A test client logged in as a new staff member with this role."""
    with get_db(app).session() as session:
        auth.create_user(session, username, PASSWORD, role)
    client = app.test_client()
    token = csrf_token(client, "/admin/login")
    response = client.post("/admin/login", data={"username": username, "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def csrf_token(client: FlaskClient, page: str) -> str:
    html = client.get(page).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {page}"
    return match.group(1)


def post(client: FlaskClient, path: str, data: dict[str, Any], page: str = "/admin/faq") -> Any:
    """Submit a staff form with the CSRF token of the page that shows it."""
    return client.post(path, data={**data, "csrf_token": csrf_token(client, page)})


def html_of(response: Any) -> str:
    return response.get_data(as_text=True)


def resident(app: Flask, fake_line: Any, user: str = RESIDENT) -> Chat:
    return Chat(app.test_client(), fake_line, user)


def ask(chat: Chat, text: str) -> str:
    """The resident asks; the text of the bot's first message."""
    messages = chat.says(text, expect=1)
    return str(messages[0].get("text", ""))


def received(row: FaqEntry) -> str:
    """An entry's answer as residents receive it: ending with its section's お問い合わせ line."""
    return read_repo_directory(CITY).finish_answer(row.answer, row.section, row.category)


def ask_unanswered(chat: Chat, text: str) -> None:
    """The resident asks something the bot cannot answer (after 「もしかして」 they tap 「どれでもない」)."""
    (reply,) = chat.says(text, expect=1)
    if reply["text"].startswith("もしかして"):
        none_of_these = reply["quickReply"]["items"][-1]["action"]
        assert none_of_these["label"] == "どれでもない"
        (reply,) = chat.taps(none_of_these["data"])
    assert DONT_KNOW in reply["text"], reply["text"]


def entry_row(app: Flask, entry_id: str) -> FaqEntry:
    with get_db(app).session() as s:
        row = s.scalar(select(FaqEntry).where(FaqEntry.municipality == CITY, FaqEntry.entry_id == entry_id))
        assert row is not None
        return row


def revisions(app: Flask, entry_id: str) -> list[FaqRevision]:
    with get_db(app).session() as s:
        return list(s.scalars(select(FaqRevision).where(FaqRevision.entry_id == entry_id).order_by(FaqRevision.id)))


def audit_actions(app: Flask) -> list[str]:
    with get_db(app).session() as s:
        return list(s.scalars(select(AuditLog.action).order_by(AuditLog.id)))


def log_question(app: Flask, text: str, *, decision: str = "unknown", topic: str | None = None,
                 is_helpful: bool | None = None, chosen: str | None = None, at: dt.datetime | None = None) -> int:
    """A logged question as faq.service would store it (for tests of the queue itself)."""
    with get_db(app).session() as s:
        row = QuestionLog(municipality=CITY, masked_text=text, decision=decision, topic=topic, score=0.1,
                          candidates=[], is_helpful=is_helpful, chosen_topic=chosen,
                          asked_at=at or dt.datetime.now(dt.UTC))
        s.add(row)
        s.flush()
        return row.id


def listing(page: str) -> str:
    """The review page below its header and flash messages."""
    return page.split('id="review-summary"', 1)[1]


def cluster_keys(html: str) -> list[str]:
    return re.findall(r'<li class="card cluster" data-key="([0-9a-f]{12})"', html)


def queue(app: Flask, **kwargs: Any) -> review.ReviewQueue:
    with app.app_context(), get_db(app).session() as s:
        return review.review_queue(s, CITY, **kwargs)


# --- clustering -------------------------------------------------------------------------------------

EMBEDDING_MODES = [False] + ([None] if package_version() else [])


@pytest.mark.parametrize("use_embeddings", EMBEDDING_MODES, ids=lambda m: "lexical" if m is False else "embeddings")
def test_clustering_groups_paraphrases_and_separates_topics(use_embeddings: bool | None) -> None:
    now = dt.datetime.now(dt.UTC)
    texts = [*DRONE, *CAT, "プールの営業時間を知りたい", "市民プールは何時まで開いてる？", "プール何時まで",
             "猫について教えてください", "犬について教えてください"]
    phrasings = [review.Phrasing(norm=normalize(t), text=t, count=1, first_seen=now, last_seen=now) for t in texts]
    clusters, _ = review.group_phrasings(phrasings, use_embeddings=use_embeddings)
    groups = [{p.text for p in c.phrasings} for c in clusters]

    def group_of(text: str) -> set[str]:
        return next(g for g in groups if text in g)

    assert set(DRONE) <= group_of(DRONE[0])
    assert {"迷子の猫を探しています", "猫が迷子になった"} <= group_of(CAT[0])
    assert {"市民プールは何時まで開いてる？", "プール何時まで"} <= group_of("プール何時まで")
    # Different topics stay apart, even when their sentences look alike.
    assert group_of(DRONE[0]).isdisjoint(group_of(CAT[0]))
    assert group_of("犬について教えてください") != group_of("猫について教えてください")
    assert not any(DRONE[0] in g and "プール何時まで" in g for g in groups)
    # Deterministic: the same input gives the same clusters and keys.
    again, _ = review.group_phrasings(list(reversed(phrasings)), use_embeddings=use_embeddings)
    assert sorted(c.key for c in again) == sorted(c.key for c in clusters)


def test_queue_counts_reasons_and_lists_biggest_then_newest(kb_app: Flask) -> None:
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=3)
    for text in DRONE:
        log_question(kb_app, text, at=old)
    log_question(kb_app, DRONE[0])  # the same question again, today
    log_question(kb_app, CAT[0], decision="answer", topic="pet-registration", is_helpful=False)
    log_question(kb_app, CAT[1], decision="clarify", chosen="")
    log_question(kb_app, ALIEN[0])
    log_question(kb_app, "住民票をコンビニで取りたい", decision="answer", topic="konbini-certificates", is_helpful=True)
    log_question(kb_app, "ずっと前の質問", at=dt.datetime.now(dt.UTC) - dt.timedelta(days=400))

    q = queue(kb_app)
    assert q.questions == 7  # the helpful answer and the year-old question are not there
    first = q.clusters[0]
    assert first.count == 4 and {p.text for p in first.phrasings} == set(DRONE)
    assert first.representative.text == DRONE[0]
    assert first.first_seen == old and first.last_seen > old
    assert first.reasons == {"unknown": 4}
    cat = next(c for c in q.clusters if c.has(review.cluster_key(normalize(CAT[0]))))
    assert cat.count == 2 and cat.reasons == {"not_helpful": 1, "none_of_these": 1}
    assert cat.answered == {"pet-registration": 1}
    # Same size: the newest first. Sorted by recency: the newest question's cluster first.
    assert [c.count for c in q.clusters] == sorted((c.count for c in q.clusters), reverse=True)
    assert queue(kb_app, sort="recent").clusters[0].last_seen == max(c.last_seen for c in q.clusters)
    assert len(queue(kb_app, days=500).clusters) == len(q.clusters) + 1


def test_suggestions_rank_the_likely_entry_first(kb_app: Flask) -> None:
    for text in ("マイナンバーカードの暗証番号わすれちゃった", "マイナカードのパスワードがわからない"):
        log_question(kb_app, text)
    q = queue(kb_app)
    with kb_app.app_context(), get_db(kb_app).session() as s:
        suggestions = review.suggest_entries(s, CITY, q.clusters[0])
    assert suggestions[0].entry_id == "mynumber-pin"
    assert [x.score for x in suggestions] == sorted((x.score for x in suggestions), reverse=True)


# --- the loop: unanswered -> attached -> answered ----------------------------------------------------


def test_attaching_a_cluster_makes_the_bot_answer_next_time(kb_app: Flask, make_app: Callable[..., Flask],
                                                             fake_line: Any) -> None:
    chat = resident(kb_app, fake_line)
    for text in DRONE[:2]:
        ask_unanswered(chat, text)
    # A second process ("worker") that has already built its index.
    other_worker = make_app(empty=False, MUNICIPALITY=CITY)
    other_chat = resident(other_worker, fake_line, OTHER_RESIDENT)
    ask_unanswered(other_chat, DRONE[1])

    faq = staff(kb_app, "yamada", "faq")
    page = html_of(faq.get("/admin/faq/review"))
    keys = cluster_keys(page)
    assert len(keys) == 1 and DRONE[0] in page and "<strong>3</strong> 件" in page
    key = keys[0]
    detail = html_of(faq.get(f"/admin/faq/review/{key}"))
    assert DRONE[1] in detail and "影響を確認" in detail and 'id="suggestions"' in detail

    target = "facility-reservation"  # parks are booked there; flying a drone in one needs that desk
    texts = [DRONE[0], DRONE[1]]
    form = {"entry_id": target, "texts": texts, "replay_form": "1", "replay_recent": "50"}

    preview = post(faq, f"/admin/faq/review/{key}/attach", {**form, "intent": "preview"}, f"/admin/faq/review/{key}")
    assert preview.status_code == 200
    body = html_of(preview)
    assert "影響の確認（まだ保存していません）" in body
    gained = int(re.search(r'id="whatif-gained">(\d+)<', body).group(1))
    assert gained >= 2, "the cluster's own questions become answerable"
    assert DRONE[0] not in entry_row(kb_app, target).alternates and revisions(kb_app, target) == []  # nothing saved

    saved = post(faq, f"/admin/faq/review/{key}/attach", {**form, "intent": "save"}, f"/admin/faq/review/{key}")
    assert saved.status_code == 302
    flashed = html_of(faq.get(saved.location))
    assert "言い換えを 2 件追加しました" in flashed
    row = entry_row(kb_app, target)
    assert DRONE[0] in row.alternates and DRONE[1] in row.alternates and row.is_staff_edited
    (rev,) = revisions(kb_app, target)
    assert rev.action == "attach" and rev.username == "yamada"
    assert DRONE[0] not in rev.before["alternates"] and DRONE[0] in rev.after["alternates"]
    assert "faq_attach" in audit_actions(kb_app)

    # The next resident message, in this process and in the other worker, gets the entry's answer.
    answer = ask(chat, DRONE[0])
    assert DONT_KNOW not in answer and answer == received(row)
    assert ask(other_chat, DRONE[1]) == received(row)

    # The attached questions left the queue.
    assert queue(kb_app).clusters == []
    with get_db(kb_app).session() as s:
        decision = s.scalar(select(ReviewDecision))
        assert decision.kind == "attached" and decision.entry_id == target and decision.question_count == 3


def test_out_of_scope_clusters_stop_appearing(kb_app: Flask, fake_line: Any) -> None:
    chat = resident(kb_app, fake_line)
    for text in (*ALIEN, DRONE[0]):
        ask_unanswered(chat, text)
    faq = staff(kb_app, "yamada", "faq")
    (aliens,) = [c for c in queue(kb_app).clusters if c.has(review.cluster_key(normalize(ALIEN[0])))]
    assert {p.norm for p in aliens.phrasings} == {normalize(t) for t in ALIEN}
    alien_key = aliens.key
    assert alien_key in cluster_keys(html_of(faq.get("/admin/faq/review")))

    refused = post(faq, f"/admin/faq/review/{alien_key}/out-of-scope", {"reason": "  "}, f"/admin/faq/review/{alien_key}")
    assert refused.status_code == 400 and "対象外にする理由を入力してください。" in html_of(refused)

    done = post(faq, f"/admin/faq/review/{alien_key}/out-of-scope", {"reason": "市の業務ではない"}, f"/admin/faq/review/{alien_key}")
    assert done.status_code == 302
    page = html_of(faq.get("/admin/faq/review"))
    assert "対象外にしました" in page  # the flash message
    assert "宇宙人" not in listing(page) and alien_key not in cluster_keys(page)
    assert review.cluster_key(normalize(DRONE[0])) in cluster_keys(page)

    # A new, similar question joins the out-of-scope cluster instead of reappearing.
    ask_unanswered(chat, "宇宙人はどこにいる")
    page = html_of(faq.get("/admin/faq/review"))
    assert "宇宙人" not in listing(page) and cluster_keys(page) == [review.cluster_key(normalize(DRONE[0]))]
    q = queue(kb_app)
    assert sum(q.joined_out_of_scope.values()) == 1
    decisions_page = html_of(faq.get("/admin/faq/review/decisions"))
    assert "市の業務ではない" in decisions_page and "その後 +1" in decisions_page
    assert "faq_out_of_scope" in audit_actions(kb_app)

    # Reopening brings the questions back.
    with get_db(kb_app).session() as s:
        decision_id = s.scalar(select(ReviewDecision.id).where(ReviewDecision.kind == "out_of_scope"))
    post(faq, f"/admin/faq/review/decisions/{decision_id}/reopen", {}, "/admin/faq/review/decisions")
    aliens = [c for c in queue(kb_app).clusters if any("宇宙人" in p.text for p in c.phrasings)]
    assert len(aliens) == 1 and aliens[0].count == 3


def test_new_entry_from_a_cluster_is_prefilled_and_answers(kb_app: Flask, fake_line: Any) -> None:
    chat = resident(kb_app, fake_line)
    for text in CAT:
        ask_unanswered(chat, text)
    faq = staff(kb_app, "yamada", "faq")
    key = queue(kb_app).clusters[0].key
    form_page = html_of(faq.get(f"/admin/faq/entries/new?cluster={key}"))
    assert 'name="cluster" value="' + key in form_page
    prefilled_alternates = re.search(r'<textarea id="alternates" name="alternates"[^>]*>([^<]*)</textarea>', form_page).group(1)
    question = re.search(r'<textarea id="question" name="question"[^>]*>([^<]*)</textarea>', form_page).group(1)
    assert {question, *prefilled_alternates.splitlines()} >= set(CAT[:2])

    answer = "迷子のペットは、保健所と警察署に届け出てください。"
    form = {"entry_id": "lost-pet", "title": "迷子のペット", "category": "community", "question": question,
            "alternates": prefilled_alternates, "keywords": "迷子\n猫", "answer": answer, "source": "test",
            "is_published": "1", "cluster": key}
    created = post(faq, "/admin/faq/entries/new", {**form, "intent": "save"}, f"/admin/faq/entries/new?cluster={key}")
    assert created.status_code == 302, html_of(created)
    assert ask(chat, CAT[0]) == received(entry_row(kb_app, "lost-pet"))
    assert queue(kb_app).clusters == []
    (rev,) = revisions(kb_app, "lost-pet")
    assert rev.action == "create" and rev.before is None and rev.after["answer"] == answer
    with get_db(kb_app).session() as s:
        assert s.scalar(select(ReviewDecision.kind)) == "created"
        assert s.scalar(select(func.count()).select_from(ReviewMark)) == 3


# --- what-if ----------------------------------------------------------------------------------------


def test_what_if_shows_answers_gained_lost_and_changed_without_saving(kb_app: Flask, fake_line: Any) -> None:
    chat = resident(kb_app, fake_line)
    pin_question = "マイナンバーカードの暗証番号を忘れた"
    moving_question = "引っ越しの手続きを知りたい"
    assert DONT_KNOW not in ask(chat, pin_question)
    assert DONT_KNOW not in ask(chat, moving_question)
    ask_unanswered(chat, DRONE[0])
    pin = entry_row(kb_app, "mynumber-pin")
    with kb_app.app_context(), get_db(kb_app).session() as s:
        # Withdraw the PIN entry, teach another entry the drone question, and claim the moving question
        # for the 書かない窓口 entry.
        target = entry_row(kb_app, "konbini-certificates")
        taught = dataclasses.replace(workbench.EntryDraft.from_row(target), alternates=(*target.alternates, DRONE[0]))
        counter = entry_row(kb_app, "kakanai-madoguchi")
        claimed = dataclasses.replace(workbench.EntryDraft.from_row(counter), alternates=(*counter.alternates, moving_question))
        changes = {"mynumber-pin": None, target.entry_id: taught.to_kb_entry(CITY), counter.entry_id: claimed.to_kb_entry(CITY)}
        report = whatif.what_if(s, CITY, changes, kb_app.config, recent=10)
    (asked,) = [o for o in report.outcomes if o.question.text == pin_question]
    assert asked.before.entry_id == "mynumber-pin" and asked.kind in ("lost", "changed")
    assert report.lost and any(o.before.entry_id == "mynumber-pin" for o in report.lost)
    assert DRONE[0] in [o.question.text for o in report.gained]
    (moved,) = [o for o in report.changed if o.question.text == moving_question]
    assert (moved.before.entry_id, moved.after.entry_id) == ("moving", "kakanai-madoguchi")
    assert report.eval_cases > 0 and report.eval_before is not None and report.eval_after is not None
    assert report.eval_after.top1 < report.eval_before.top1  # the eval set asks about the PIN too
    # Nothing was saved: the bot still answers as before.
    assert entry_row(kb_app, "mynumber-pin").is_published
    assert ask(chat, pin_question) == received(pin)

    # The same through the edit form's 「影響を確認」 button.
    faq = staff(kb_app, "yamada", "faq")
    page = f"/admin/faq/entries/{pin.entry_id}"
    form = {**form_of(pin), "intent": "preview", "replay_form": "1", "replay_recent": "10", "replay_eval": "1"}
    form.pop("is_published")  # unticked: the preview withdraws the entry
    shown = post(faq, page, form, page)
    body = html_of(shown)
    assert shown.status_code == 200 and "影響の確認（まだ保存していません）" in body
    assert int(re.search(r'id="whatif-lost">(\d+)<', body).group(1)) >= 1
    assert "暗証番号" in body.split('data-kind="lost"')[1]
    assert entry_row(kb_app, "mynumber-pin").is_published and revisions(kb_app, "mynumber-pin") == []


def form_of(row: FaqEntry) -> dict[str, str]:
    """The edit form's fields for an entry, as the page fills them in."""
    return {"title": row.title, "category": row.category, "question": row.question,
            "alternates": "\n".join(row.alternates), "keywords": "\n".join(row.keywords), "answer": row.answer,
            "source": row.source, "is_published": "1" if row.is_published else "", "version": workbench.version_of(row)}


# --- entries: edit, validate, publish, history, revert ------------------------------------------------


def test_edit_history_and_revert(kb_app: Flask, fake_line: Any) -> None:
    faq = staff(kb_app, "yamada", "faq")
    row = entry_row(kb_app, "mynumber-pin")
    page = f"/admin/faq/entries/{row.entry_id}"
    original = row.answer
    new_answer = "暗証番号の再設定は、市民課の窓口で受け付けています（本人確認書類が必要です）。"
    saved = post(faq, page, {**form_of(row), "answer": new_answer, "intent": "save"}, page)
    assert saved.status_code == 302
    edited = entry_row(kb_app, row.entry_id)
    assert edited.answer == new_answer and edited.is_staff_edited
    chat = resident(kb_app, fake_line)
    assert ask(chat, "マイナンバーカードの暗証番号を忘れた") == received(edited)

    history = html_of(faq.get(page))
    assert "変更履歴" in history and "yamada" in history and "編集" in history and new_answer[:20] in history
    (rev,) = revisions(kb_app, row.entry_id)
    assert (rev.action, rev.before["answer"], rev.after["answer"]) == ("edit", original, new_answer)

    # `faq load` keeps the staff member's version.
    result = kb_app.test_cli_runner().invoke(args=["faq", "load"])
    assert result.exit_code == 0
    assert entry_row(kb_app, row.entry_id).answer == new_answer

    reverted = post(faq, f"{page}/revert/{rev.id}", {"which": "before"}, page)
    assert reverted.status_code == 302
    assert entry_row(kb_app, row.entry_id).answer == original
    revs = revisions(kb_app, row.entry_id)
    assert [r.action for r in revs] == ["edit", "revert"] and revs[1].after["answer"] == original
    assert ask(chat, "マイナンバーカードの暗証番号を忘れた") == received(entry_row(kb_app, row.entry_id))
    # And forward again to the edited version.
    post(faq, f"{page}/revert/{rev.id}", {"which": "after"}, page)
    assert entry_row(kb_app, row.entry_id).answer == new_answer
    assert audit_actions(kb_app).count("faq_entry_revert") == 2


def test_stale_edit_is_refused(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    row = entry_row(kb_app, "mynumber-pin")
    page = f"/admin/faq/entries/{row.entry_id}"
    form = form_of(row)
    post(faq, page, {**form, "title": "暗証番号を忘れた", "intent": "save"}, page)
    late = post(faq, page, {**form, "answer": "古い画面からの保存", "intent": "save"}, page)
    assert late.status_code == 409 and "他の操作で更新されました" in html_of(late)
    assert entry_row(kb_app, row.entry_id).answer == row.answer


def test_edits_are_validated_with_japanese_messages(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    row = entry_row(kb_app, "mynumber-pin")
    page = f"/admin/faq/entries/{row.entry_id}"
    bad = post(faq, page, {**form_of(row), "title": "あ" * 21, "answer": "", "intent": "save"}, page)
    body = html_of(bad)
    assert bad.status_code == 400
    assert "タイトルは20文字以内にしてください（現在21文字）" in body and "回答を入力してください。" in body
    assert entry_row(kb_app, row.entry_id).title == row.title and revisions(kb_app, row.entry_id) == []
    new = post(faq, "/admin/faq/entries/new", {"entry_id": "mynumber-pin", "title": "", "category": "x", "question": "",
                                               "answer": "a", "intent": "save"}, "/admin/faq/entries/new")
    body = html_of(new)
    assert new.status_code == 400
    for message in ("ID「mynumber-pin」は既に使われています。", "タイトルを入力してください。", "質問を入力してください。"):
        assert message in body


def test_unpublish_and_publish(kb_app: Flask, fake_line: Any) -> None:
    faq = staff(kb_app, "yamada", "faq")
    chat = resident(kb_app, fake_line)
    row = entry_row(kb_app, "mynumber-pin")
    assert ask(chat, "マイナンバーカードの暗証番号を忘れた") == received(row)
    page = f"/admin/faq/entries/{row.entry_id}"
    post(faq, f"{page}/publish", {"published": "0"}, page)
    assert not entry_row(kb_app, row.entry_id).is_published
    assert ask(chat, "マイナンバーカードの暗証番号を忘れた") != received(row)
    listing = html_of(faq.get("/admin/faq?status=unpublished"))
    assert 'data-entry-id="mynumber-pin"' in listing and listing.count("data-entry-id=") == 1
    post(faq, f"{page}/publish", {"published": "1"}, page)
    assert ask(chat, "マイナンバーカードの暗証番号を忘れた") == received(row)
    assert [r.action for r in revisions(kb_app, row.entry_id)] == ["unpublish", "publish"]
    assert {"faq_entry_unpublish", "faq_entry_publish"} <= set(audit_actions(kb_app))


def test_list_search_and_filters(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    everything = html_of(faq.get("/admin/faq"))
    assert "<h1>FAQ管理</h1>" in everything and "全63件中 63件・1 / 2 ページ" in everything
    assert everything.count("data-entry-id=") == 50
    found = html_of(faq.get("/admin/faq?q=暗証番号"))
    assert 'data-entry-id="mynumber-pin"' in found and found.count("data-entry-id=") < 10
    certificates = html_of(faq.get("/admin/faq?category=certificates"))
    with get_db(kb_app).session() as s:
        n = s.scalar(select(func.count()).select_from(FaqEntry).where(FaqEntry.category == "certificates"))
    assert certificates.count("data-entry-id=") == n
    assert html_of(faq.get("/admin/faq?q=ＭＹＮＵＭＢＥＲ-ＰＩＮ")).count('data-entry-id="mynumber-pin"') == 1  # width-insensitive


def test_overlapping_entries_and_colliding_alternates_are_flagged(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    pin = entry_row(kb_app, "mynumber-pin")
    form = {"entry_id": "pin-copy", "title": "暗証番号の再設定", "category": "mynumber",
            "question": pin.question, "alternates": pin.alternates[0] + "\nまったく別の言い方をしてみる",
            "keywords": "", "answer": "写しです。", "source": "", "is_published": "1"}
    preview = post(faq, "/admin/faq/entries/new", {**form, "intent": "preview", "replay_recent": "0"}, "/admin/faq/entries/new")
    assert "変更後の内容がほかの項目と重なります" in html_of(preview) and "重複の疑い" in html_of(preview)
    post(faq, "/admin/faq/entries/new", {**form, "intent": "save"}, "/admin/faq/entries/new")
    flagged = html_of(faq.get("/admin/faq?flagged=1"))
    assert 'data-entry-id="pin-copy"' in flagged and 'data-entry-id="mynumber-pin"' in flagged
    assert "重複の疑い" in flagged and "言い換えの衝突" in flagged
    page = html_of(faq.get("/admin/faq/entries/pin-copy"))
    assert "ほかの項目と重なっています" in page and pin.alternates[0] in page


# --- import / export ----------------------------------------------------------------------------------

PROJECT_HEADER = "id,category,title,question,alternates,keywords,answer,source,reviewed_at\n"


def upload(client: FlaskClient, body: str, name: str = "faq.csv", encoding: str = "utf-8") -> Any:
    token = csrf_token(client, "/admin/faq/import")
    return client.post("/admin/faq/import", data={"csrf_token": token, "file": (io.BytesIO(body.encode(encoding)), name)},
                       content_type="multipart/form-data")


def test_import_shows_errors_by_line_and_changes_nothing(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    bad = (PROJECT_HEADER
           + "ok-1,garbage,ごみ,ごみの日は？,ゴミの日|収集日,ごみ,収集日は地区ごとです。,test,2026-01-01\n"
           + ",garbage,タイトル,質問,,,回答,test,2026-01-01\n"
           + "ok-2,garbage,とても長いタイトルでボタンに入りきらないものです,質問,,,回答,test,2026-01-01\n"
           + "ok-1,garbage,重複,質問,,,回答,test,2026-01-01\n")
    response = upload(faq, bad)
    body = html_of(response)
    assert response.status_code == 400 and "データは変更していません" in body
    assert [int(n) for n in re.findall(r'<tr data-line="(\d+)">', body)] == [3, 4, 5]
    assert "必須項目が空です: ID" in body and "タイトルは20文字以内です" in body and "重複しています" in body
    assert 'id="import-confirm"' not in body
    with get_db(kb_app).session() as s:
        assert s.scalar(select(func.count()).select_from(FaqEntry)) == 63
    wrong_header = upload(faq, "質問,回答\na,b\n")
    assert '<tr data-line="1">' in html_of(wrong_header) and "見出し行が不正です" in html_of(wrong_header)


def test_import_preview_then_confirm(kb_app: Flask, fake_line: Any) -> None:
    faq = staff(kb_app, "yamada", "faq")
    pin = entry_row(kb_app, "mynumber-pin")
    rows = list(csv.DictReader(io.StringIO(faq.get("/admin/faq/export").get_data(as_text=True).lstrip("\ufeff"))))
    for row in rows:
        if row["id"] == "mynumber-pin":
            row["answer"] = "【更新】" + row["answer"]
    rows.append({"id": "lost-pet", "category": "community", "title": "迷子のペット", "question": "迷子の猫を探しています",
                 "alternates": "猫が迷子|犬が迷子", "keywords": "迷子", "answer": "保健所へ。", "source": "test",
                 "reviewed_at": "2026-01-01"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)

    preview = upload(faq, out.getvalue())
    page = html_of(preview)
    assert preview.status_code == 200
    assert re.search(r'id="preview-added">1<', page) and re.search(r'id="preview-updated">1<', page)
    assert re.search(r'id="preview-unchanged">62<', page)
    assert "lost-pet" in page and "回答" in page.split('id="preview-updated-table"')[1]
    with get_db(kb_app).session() as s:
        assert s.scalar(select(func.count()).select_from(FaqEntry)) == 63  # only a preview
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    other = staff(kb_app, "sato", "faq")  # a draft is only its uploader's to confirm
    refused = post(other, "/admin/faq/import/confirm", {"token": token}, "/admin/faq/import")
    assert "取り込む内容が見つかりません" in html_of(other.get(refused.location))

    done = post(faq, "/admin/faq/import/confirm", {"token": token}, "/admin/faq/import")
    assert done.status_code == 302
    assert "追加 1 件、更新 1 件" in html_of(faq.get(done.location))
    assert entry_row(kb_app, "mynumber-pin").answer == "【更新】" + pin.answer
    assert [r.action for r in revisions(kb_app, "lost-pet")] == ["import"]
    assert revisions(kb_app, "mynumber-pin")[0].before["answer"] == pin.answer
    assert ask(resident(kb_app, fake_line), "迷子の猫を探しています") == received(entry_row(kb_app, "lost-pet"))
    assert "faq_import" in audit_actions(kb_app)


def test_the_kosodate_sample_imports_through_the_ui(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    sample = (SHARED / "samples" / "kosodate-faq.csv").read_text(encoding="utf-8-sig")
    page = html_of(upload(faq, sample, name="kosodate-faq.csv"))
    assert re.search(r'id="preview-added">661<', page)
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    done = post(faq, "/admin/faq/import/confirm", {"token": token}, "/admin/faq/import")
    assert "追加 661 件" in html_of(faq.get(done.location))
    with get_db(kb_app).session() as s:
        assert s.scalar(select(func.count()).select_from(FaqEntry)) == 63 + 661
        assert s.scalar(select(func.count()).select_from(FaqRevision).where(FaqRevision.action == "import")) == 661


def test_shift_jis_upload_is_read(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    body = "ID,問い合わせ文,応答文,カテゴリ\nk-1,保育園の申し込みはいつですか,毎年10月です。,子育て\n"
    page = html_of(upload(faq, body, encoding="cp932"))
    assert re.search(r'id="preview-added">1<', page) and "保育園の申し込みはいつですか" in page


def test_export_in_both_formats(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    project = faq.get("/admin/faq/export?format=project")
    assert project.status_code == 200 and project.mimetype == "text/csv"
    assert "attachment" in project.headers["Content-Disposition"]
    text = project.get_data(as_text=True)
    assert text.startswith("\ufeffid,category,title,question,alternates")
    assert len(list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))) == 63
    kosodate = faq.get("/admin/faq/export?format=kosodate").get_data(as_text=True)
    assert kosodate.startswith("\ufeffID,問い合わせ文,応答文,カテゴリ")
    assert audit_actions(kb_app).count("faq_export") == 2


# --- roles ----------------------------------------------------------------------------------------------

GET_PAGES = ("/admin/faq", "/admin/faq/review", "/admin/faq/review/decisions", "/admin/faq/import",
             "/admin/faq/entries/mynumber-pin", "/admin/faq/entries/new", "/admin/faq/export")


@pytest.mark.parametrize("role,allowed", [("faq", True), ("admin", True), ("viewer", False), ("pr", False)])
def test_role_matrix(kb_app: Flask, role: str, allowed: bool) -> None:
    log_question(kb_app, ALIEN[0])
    key = queue(kb_app).clusters[0].key
    client = staff(kb_app, f"user-{role}", role)
    for page in (*GET_PAGES, f"/admin/faq/review/{key}"):
        response = client.get(page)
        assert response.status_code == (200 if allowed else 403), (role, page)
        if not allowed:
            assert "アクセス権限がありません" in html_of(response)
    # Writes: the CSRF token comes from a page every staff member can open.
    token = csrf_token(client, "/admin/password")
    row = entry_row(kb_app, "mynumber-pin")
    writes = [
        ("/admin/faq/entries/mynumber-pin", {**form_of(row), "title": "変更", "intent": "save"}),
        ("/admin/faq/entries/mynumber-pin/publish", {"published": "0"}),
        ("/admin/faq/entries/new", {"entry_id": "x-1", "title": "t", "category": "c", "question": "q", "answer": "a",
                                    "is_published": "1", "intent": "save"}),
        (f"/admin/faq/review/{key}/out-of-scope", {"reason": "対象外"}),
        (f"/admin/faq/review/{key}/attach", {"entry_id": "mynumber-pin", "texts": ALIEN[0], "intent": "save"}),
    ]
    for path, data in writes:
        response = client.post(path, data={**data, "csrf_token": token})
        assert response.status_code == (302 if allowed else 403), (role, path, html_of(response)[:300])
    if not allowed:
        after = entry_row(kb_app, "mynumber-pin")
        assert (after.title, after.is_published) == (row.title, True)
        assert revisions(kb_app, "mynumber-pin") == []
        with get_db(kb_app).session() as s:
            assert s.scalar(select(func.count()).select_from(ReviewDecision)) == 0
            assert s.scalar(select(FaqEntry).where(FaqEntry.entry_id == "x-1")) is None


def test_logged_out_staff_are_sent_to_login(kb_app: Flask) -> None:
    client = kb_app.test_client()
    for page in GET_PAGES:
        response = client.get(page)
        assert response.status_code == 302 and response.location.startswith("/admin/login?next=")


def test_pages_show_in_the_navigation_for_faq_staff_only(kb_app: Flask) -> None:
    faq = staff(kb_app, "yamada", "faq")
    assert "FAQ管理" in html_of(faq.get("/admin/"))
    viewer = staff(kb_app, "tanaka", "viewer")
    assert "FAQ管理" not in html_of(viewer.get("/admin/"))


# --- CLI ----------------------------------------------------------------------------------------------


def test_flask_faq_review_lists_the_top_clusters(kb_app: Flask) -> None:
    runner = kb_app.test_cli_runner()
    for text in DRONE:
        log_question(kb_app, text)
    log_question(kb_app, DRONE[0])
    log_question(kb_app, CAT[0], decision="answer", topic="konbini-certificates", is_helpful=False)
    result = runner.invoke(args=["faq", "review"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("joso: 未対応の質問 5 件 → 2 のまとまり")
    assert lines[1].startswith(f"1. 4件「{DRONE[0]}」") and "回答できなかった 4" in lines[1]
    assert "key=" + review.cluster_key(normalize(DRONE[0])) in lines[1]
    assert any(line.strip().startswith("- ") and "ドローン" in line for line in lines)
    assert any(line.startswith(f"2. 1件「{CAT[0]}」") and "「役に立たなかった」 1" in line for line in lines)
    assert any("候補:" in line for line in lines)

    as_json = runner.invoke(args=["faq", "review", "--json", "--limit", "1", "--no-suggest"])
    (only,) = [json.loads(line) for line in as_json.output.strip().splitlines()]
    assert only["count"] == 4 and only["representative"] == DRONE[0] and only["reasons"] == {"unknown": 4}
    assert {e["text"] for e in only["examples"]} == set(DRONE) and only["suggestions"] == []


def test_flask_faq_review_with_nothing_to_review(kb_app: Flask) -> None:
    result = kb_app.test_cli_runner().invoke(args=["faq", "review"])
    assert result.exit_code == 0 and "未対応の質問はありません。" in result.output


def test_changed_part_shows_where_long_texts_differ() -> None:
    old = "マイナンバーカードの暗証番号は、続けて間違えるとロックされます。窓口で再設定できます。"
    new = "マイナンバーカードの暗証番号は、続けて間違えるとロックされます。市民課の窓口で再設定できます。"
    before, after = workbench.changed_part(old, new, context=5)
    assert before == "…されます。窓口で再設…" and after == "…されます。市民課の窓口で再設…"
    assert workbench.changed_part("", "新しい回答") == ("", "新しい回答")
