"""The rich menu in the repo and `flask line setup-richmenu`, against the fake LINE platform; every
tile does what its label says in the chat."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bot.db import get_db
from bot.line import LineGateway, LineServerError
from faq.store import load_repo_kb
from handlers.richmenu import (
    DEFINITION_PATH,
    IMAGE_PATH,
    RichMenuError,
    check_definition,
    check_image,
    draw_image,
    image_size,
    line_cli,
    load_definition,
    setup_rich_menu,
)
from tests.conftest import Chat

RESIDENT = "U" + "8" * 32


def richmenu_calls(fake_line) -> list[tuple[str, str, int]]:
    return [(r.method, r.path, r.status) for r in fake_line.requests if "/richmenu" in r.path]


def default_menu(app) -> str | None:
    import requests

    answer = requests.get(app.config["LINE_API_BASE_URL"] + "/v2/bot/user/all/richmenu",
                          headers={"Authorization": "Bearer test"}, timeout=5)
    return answer.json().get("richMenuId") if answer.status_code == 200 else None


@pytest.fixture
def joso(make_app):
    """常総市 with its knowledge base loaded (the category tiles open its categories)."""
    app = make_app(MUNICIPALITY="joso")
    with get_db(app).session() as s:
        load_repo_kb(s, "joso")
    return app


def test_the_committed_definition_and_image_fit_together() -> None:
    definition = load_definition()
    size = definition["size"]
    assert (size["width"], size["height"]) in ((2500, 1686), (2500, 843))
    assert check_image(IMAGE_PATH.read_bytes(), definition) == "image/png"
    # The tiles cover the whole menu without overlapping.
    covered = sum(a["bounds"]["width"] * a["bounds"]["height"] for a in definition["areas"])
    assert covered == size["width"] * size["height"]
    cells = {(x, y) for a in definition["areas"] for x in range(a["bounds"]["x"], a["bounds"]["x"] + a["bounds"]["width"], 100)
             for y in range(a["bounds"]["y"], a["bounds"]["y"] + a["bounds"]["height"], 100)}
    assert len(cells) == sum(len(range(0, a["bounds"]["width"], 100)) * len(range(0, a["bounds"]["height"], 100))
                             for a in definition["areas"])
    labels = [a["action"]["label"] for a in definition["areas"]]
    assert {"設定", "よくある質問", "お問い合わせ"} <= set(labels) and all(len(label) <= 20 for label in labels)
    assert len(definition["chatBarText"]) <= 14


def test_setup_creates_the_menu_uploads_its_image_and_makes_it_the_default(joso, fake_line) -> None:
    result = joso.test_cli_runner().invoke(line_cli, ["setup-richmenu"])
    assert result.exit_code == 0, result.output
    assert "既定のメニューにしました" in result.output and "注意" not in result.output
    calls = richmenu_calls(fake_line)
    assert [(m, p.split("/richmenu")[0]) for m, p, _ in calls][:3] == [("POST", "/v2/bot"), ("POST", "/v2/bot"), ("POST", "/v2/bot")]
    assert all(status == 200 for _m, _p, status in calls), calls
    created = next(r for r in fake_line.requests if r.path == "/v2/bot/richmenu")
    assert "style" not in json.dumps(created.body)  # our drawing hints are not sent to LINE
    assert created.body["chatBarText"] == "メニュー" and len(created.body["areas"]) == 6
    menu_id = default_menu(joso)
    assert menu_id and menu_id in result.output
    upload = next(r for r in fake_line.requests if r.path.endswith("/content"))
    assert upload.headers.get("Content-Type") == "image/png" and menu_id in upload.path


def test_setting_up_again_replaces_the_old_menu_unless_told_to_keep_it(joso, fake_line) -> None:
    runner = joso.test_cli_runner()
    gateway: LineGateway = joso.extensions["line"]
    assert runner.invoke(line_cli, ["setup-richmenu"]).exit_code == 0
    first = default_menu(joso)
    result = runner.invoke(line_cli, ["setup-richmenu"])
    assert "古いリッチメニューを 1 件削除しました" in result.output
    menus = [m["richMenuId"] for m in gateway.list_rich_menus()]
    assert first not in menus and menus == [default_menu(joso)]
    assert runner.invoke(line_cli, ["setup-richmenu", "--keep-old"]).exit_code == 0
    assert len(gateway.list_rich_menus()) == 2


def test_a_failed_image_upload_leaves_no_half_made_menu(joso, fake_line) -> None:
    class UploadFails(LineGateway):
        def set_rich_menu_image(self, *args, **kwargs):
            fake_line.fail("richmenu", 500)
            return super().set_rich_menu_image(*args, **kwargs)

    gateway = UploadFails("test-token", joso.config["LINE_API_BASE_URL"], timeout=2.0)
    try:
        with pytest.raises(LineServerError):
            setup_rich_menu(gateway, load_definition(), IMAGE_PATH.read_bytes())
        assert gateway.list_rich_menus() == [] and default_menu(joso) is None
    finally:
        gateway.close()


def test_every_tile_does_what_its_label_says(joso, fake_line) -> None:
    resident = Chat(joso.test_client(), fake_line, RESIDENT)
    replies = {}
    for area in load_definition()["areas"]:
        action = area["action"]
        expect = 2 if action["label"] == "設定" else 1  # not registered yet: a note, then the privacy notice
        sent = resident.says(action["text"], expect) if action["type"] == "message" else resident.taps(action["data"], expect)
        assert len(sent) == expect, action
        replies[action["label"]] = sent[0]
    for label, reply in replies.items():
        assert "使えなくなっています" not in reply["text"], label
    assert "分類を選んでください" in replies["よくある質問"]["text"]
    for category_tile in ("証明書", "子育て・教育", "防災・防犯"):
        assert replies[category_tile].get("quickReply"), category_tile  # the entries of that category
    assert "まだ登録されていません" in replies["設定"]["text"]
    assert "常総市役所" in replies["お問い合わせ"]["text"]


def test_setup_warns_when_the_knowledge_base_lacks_a_tiles_category(make_app, fake_line) -> None:
    app = make_app(MUNICIPALITY="joso")  # knowledge base not loaded
    result = app.test_cli_runner().invoke(line_cli, ["setup-richmenu"])
    assert result.exit_code == 0
    assert "知識ベースにない分野のボタンがあります: 証明書、子育て・教育、防災・防犯" in result.output


def test_setup_refuses_an_image_that_does_not_fit(joso, fake_line, tmp_path) -> None:
    small = tmp_path / "small.png"
    data = bytearray(IMAGE_PATH.read_bytes())
    data[16:24] = (1200).to_bytes(4, "big") + (405).to_bytes(4, "big")
    small.write_bytes(bytes(data))
    result = joso.test_cli_runner().invoke(line_cli, ["setup-richmenu", "--image", str(small)])
    assert result.exit_code != 0 and "1200x405 が定義の 2500x1686 と違います" in result.output
    gif = tmp_path / "menu.gif"
    gif.write_bytes(b"GIF89a" + b"\0" * 20)
    result = joso.test_cli_runner().invoke(line_cli, ["setup-richmenu", "--image", str(gif)])
    assert "PNGかJPEG" in result.output
    assert richmenu_calls(fake_line) == []


@pytest.mark.parametrize("broken", [
    {"size": {"width": 2500, "height": 2500}, "areas": []},
    {"size": {"width": 2500, "height": 843}, "areas": [{"bounds": {"x": 0, "y": 0, "width": 2600, "height": 843},
                                                        "action": {"type": "message", "text": "x"}}]},
    {"size": {"width": 2500, "height": 843}, "areas": [{"bounds": {"x": 0, "y": 0, "width": 100, "height": 100}}]},
    {"size": {"width": 2500, "height": 843}, "areas": ["tile"]},
    [],
])
def test_broken_definitions_are_refused(broken) -> None:
    with pytest.raises(RichMenuError):
        check_definition(broken)


def test_jpeg_sizes_are_read() -> None:
    # SOI, APP0 (length 16), SOF0: precision 8, height 843, width 2500
    jpeg = b"\xff\xd8" + b"\xff\xe0\x00\x10" + b"\0" * 14 + b"\xff\xc0\x00\x11\x08" + (843).to_bytes(2, "big") + (2500).to_bytes(2, "big")
    assert image_size(jpeg) == ("image/jpeg", 2500, 843)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="drawing the image needs Chromium")
def test_the_image_can_be_drawn_again_from_the_definition(tmp_path: Path) -> None:
    image = draw_image(load_definition(DEFINITION_PATH), tmp_path / "menu.png")
    assert image_size(image) == ("image/png", 2500, 1686) and len(image) < 1024 * 1024
