"""The rich menu: its definition in the repo, and `flask line setup-richmenu` to put it on LINE.

The definition (handlers/richmenu.json) is LINE's rich-menu object plus a `style` per area
(background colour and a caption) that only the image uses. The image (handlers/richmenu.png)
is committed: it is drawn once from the definition by `flask line draw-richmenu-image`, which
renders the labels with headless Chromium and a Japanese font. Drawing Japanese text needs a
font rasteriser, and none is needed at setup time this way: setup only uploads bytes, so it
runs on any server with no image library. A city with its own design passes `--image`.
"""

from __future__ import annotations

import html
import json
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from bot.db import get_db
from bot.line import LineError, LineGateway
from faq.service import categories

HERE = Path(__file__).resolve().parent
DEFINITION_PATH = HERE / "richmenu.json"
IMAGE_PATH = HERE / "richmenu.png"
MAX_IMAGE_BYTES = 1024 * 1024  # LINE's limit for a rich-menu image
# Sizes LINE documents for rich-menu images (width 800-2500, height >= 250, width/height >= 1.45).
MIN_WIDTH, MAX_WIDTH, MIN_HEIGHT, MIN_RATIO = 800, 2500, 250, 1.45

line_cli = AppGroup("line", help="LINE channel setup (rich menu).")


class RichMenuError(ValueError):
    """The definition or the image is not one LINE would accept (message in Japanese)."""


@dataclass(frozen=True)
class SetupResult:
    """What `setup_rich_menu` did."""

    rich_menu_id: str
    deleted: tuple[str, ...]


# --- definition and image -----------------------------------------------------------------------


def load_definition(path: Path = DEFINITION_PATH) -> dict[str, Any]:
    """Read and check a rich-menu definition."""
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RichMenuError(f"リッチメニューの定義を読めません: {path}: {exc}") from None
    check_definition(definition)
    return definition  # type: ignore[no-any-return]


def check_definition(definition: Any) -> None:
    """Raise RichMenuError unless every area lies inside the menu and has an action."""
    if not isinstance(definition, dict):
        raise RichMenuError("リッチメニューの定義はJSONオブジェクトにしてください。")
    size = definition.get("size") or {}
    width, height = size.get("width"), size.get("height")
    if not (isinstance(width, int) and isinstance(height, int)):
        raise RichMenuError("size.width と size.height を整数で指定してください。")
    if not (MIN_WIDTH <= width <= MAX_WIDTH and height >= MIN_HEIGHT and width / height >= MIN_RATIO):
        raise RichMenuError(f"大きさ {width}x{height} はLINEで使えません（幅800〜2500、高さ250以上、幅÷高さ1.45以上）。")
    areas = definition.get("areas")
    if not isinstance(areas, list) or not 1 <= len(areas) <= 20:
        raise RichMenuError("areas に1〜20個の領域を指定してください。")
    for index, area in enumerate(areas):
        bounds = (area.get("bounds") or {}) if isinstance(area, dict) else {}
        x, y, w, h = (bounds.get(k) for k in ("x", "y", "width", "height"))
        if not all(isinstance(v, int) for v in (x, y, w, h)) or x < 0 or y < 0 or w <= 0 or h <= 0 \
                or x + w > width or y + h > height:
            raise RichMenuError(f"areas[{index}] の bounds がメニューの外にはみ出しているか、正しくありません。")
        if not isinstance(area.get("action"), dict) or "type" not in area["action"]:
            raise RichMenuError(f"areas[{index}] に action を指定してください。")


def line_request(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition as LINE's rich-menu object (our `style` keys removed)."""
    request = {k: v for k, v in definition.items() if k != "areas"}
    request["areas"] = [{k: v for k, v in area.items() if k != "style"} for area in definition["areas"]]
    return request


def image_size(image: bytes) -> tuple[str, int, int]:
    """(content type, width, height) of a PNG or JPEG; RichMenuError for anything else."""
    if image.startswith(b"\x89PNG\r\n\x1a\n") and image[12:16] == b"IHDR":
        width, height = struct.unpack(">II", image[16:24])
        return "image/png", width, height
    if image.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 9 <= len(image) and image[pos] == 0xFF:
            marker = image[pos + 1]
            length = struct.unpack(">H", image[pos + 2 : pos + 4])[0]
            if marker in (0xC0, 0xC1, 0xC2):  # start of frame: height, then width
                height, width = struct.unpack(">HH", image[pos + 5 : pos + 9])
                return "image/jpeg", width, height
            pos += 2 + length
    raise RichMenuError("画像はPNGかJPEGにしてください。")


def check_image(image: bytes, definition: dict[str, Any]) -> str:
    """Check the image against LINE's limits and the menu's size; returns its content type."""
    content_type, width, height = image_size(image)
    if len(image) > MAX_IMAGE_BYTES:
        raise RichMenuError(f"画像が大きすぎます（{len(image)} バイト、上限 1MB）。")
    size = definition["size"]
    if (width, height) != (size["width"], size["height"]):
        raise RichMenuError(f"画像の大きさ {width}x{height} が定義の {size['width']}x{size['height']} と違います。")
    return content_type


def category_problems(definition: dict[str, Any], present: set[str]) -> list[str]:
    """Labels of areas that open a FAQ category the knowledge base does not have."""
    problems = []
    for area in definition["areas"]:
        action = area["action"]
        if action.get("type") != "postback":
            continue
        try:
            data = json.loads(action.get("data", ""))
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("a") == "cat" and data.get("c") not in present:
            problems.append(str(action.get("label") or data.get("c")))
    return problems


# --- putting it on LINE -------------------------------------------------------------------------


def setup_rich_menu(gateway: LineGateway, definition: dict[str, Any], image: bytes, *, replace: bool = True) -> SetupResult:
    """Create the rich menu, upload its image, make it the default; then delete older menus of the same name.

    A menu whose image could not be uploaded is deleted again, so a failed setup leaves the
    channel as it was.
    """
    content_type = check_image(image, definition)
    rich_menu_id = gateway.create_rich_menu(line_request(definition))
    try:
        gateway.set_rich_menu_image(rich_menu_id, image, content_type)
        gateway.set_default_rich_menu(rich_menu_id)
    except LineError:
        try:
            gateway.delete_rich_menu(rich_menu_id)
        except LineError:
            pass  # the original error is the one worth reporting
        raise
    deleted: list[str] = []
    if replace:
        for menu in gateway.list_rich_menus():
            old_id = str(menu.get("richMenuId") or "")
            if old_id and old_id != rich_menu_id and menu.get("name") == definition["name"]:
                gateway.delete_rich_menu(old_id)
                deleted.append(old_id)
    return SetupResult(rich_menu_id, tuple(deleted))


@line_cli.command("setup-richmenu")
@click.option("--definition", "definition_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFINITION_PATH, show_default=True, help="リッチメニューの定義（JSON）")
@click.option("--image", "image_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=IMAGE_PATH, show_default=True, help="メニュー画像（PNG/JPEG、定義と同じ大きさ、1MB以下）")
@click.option("--keep-old", is_flag=True, help="同じ名前の古いリッチメニューを削除しない")
def setup_richmenu(definition_path: Path, image_path: Path, keep_old: bool) -> None:
    """Create the rich menu on LINE, upload its image and make it every resident's default."""
    try:
        definition = load_definition(definition_path)
        image = image_path.read_bytes()
        check_image(image, definition)
    except RichMenuError as exc:
        raise click.ClickException(str(exc)) from None
    with get_db().read_session() as session:
        present = {code for code, _label in categories(session, current_app.config["MUNICIPALITY"])}
    missing = category_problems(definition, present)
    if missing:
        click.echo(f"注意: 知識ベースにない分野のボタンがあります: {'、'.join(missing)}"
                   "（先に `flask faq load` を実行するか、定義を見直してください）", err=True)
    gateway: LineGateway = current_app.extensions["line"]
    try:
        result = setup_rich_menu(gateway, definition, image, replace=not keep_old)
    except LineError as exc:
        raise click.ClickException(f"LINEに設定できませんでした: {exc}") from None
    click.echo(f"リッチメニューを作成し、全員の既定のメニューにしました: {result.rich_menu_id}")
    if result.deleted:
        click.echo(f"古いリッチメニューを {len(result.deleted)} 件削除しました。")


# --- drawing the committed image (development only) -----------------------------------------------


def image_html(definition: dict[str, Any]) -> str:
    """A page showing each area as a coloured tile with its label and caption."""
    size = definition["size"]
    tiles = []
    for area in definition["areas"]:
        b, style = area["bounds"], area.get("style") or {}
        label = str(area["action"].get("label") or area["action"].get("text") or "")
        caption = str(style.get("caption") or "")
        label_px = max(40, min(150, int((b["width"] - 120) / max(len(label), 1)), int(b["height"] * 0.2)))
        caption_px = max(24, min(72, int((b["width"] - 120) / max(len(caption), 1)), int(b["height"] * 0.09)))
        tiles.append(
            f'<div class="t" style="left:{b["x"]}px;top:{b["y"]}px;width:{b["width"]}px;height:{b["height"]}px;'
            f'background:{html.escape(str(style.get("background") or "#44546A"))}">'
            f'<div style="font-size:{label_px}px;font-weight:bold">{html.escape(label)}</div>'
            f'<div style="font-size:{caption_px}px;margin-top:{caption_px // 2}px">{html.escape(caption)}</div></div>'
        )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><style>'
        f"html,body{{margin:0;padding:0;width:{size['width']}px;height:{size['height']}px;overflow:hidden;background:#fff;"
        'font-family:"IPAPGothic","IPAGothic","Noto Sans CJK JP",sans-serif}'
        ".t{position:absolute;box-sizing:border-box;border:6px solid #fff;display:flex;flex-direction:column;"
        "align-items:center;justify-content:center;color:#fff;text-align:center}"
        "</style></head><body>" + "".join(tiles) + "</body></html>"
    )


def draw_image(definition: dict[str, Any], output: Path, chromium: str = "chromium") -> bytes:
    """Render the definition's tiles to a PNG with headless Chromium (needs a Japanese font)."""
    binary = shutil.which(chromium)
    if binary is None:
        raise RichMenuError(f"{chromium} が見つかりません（画像を描くにはChromiumと日本語フォントが必要です）。")
    size = definition["size"]
    with tempfile.TemporaryDirectory() as tmp:
        page, shot = Path(tmp) / "menu.html", Path(tmp) / "menu.png"
        page.write_text(image_html(definition), encoding="utf-8")
        subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1",
             f"--window-size={size['width']},{size['height']}", f"--screenshot={shot}", page.as_uri()],
            check=True, capture_output=True, timeout=120,
        )
        image = shot.read_bytes()
    check_image(image, definition)
    output.write_bytes(image)
    return image


@line_cli.command("draw-richmenu-image")
@click.option("--definition", "definition_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=DEFINITION_PATH, show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=IMAGE_PATH, show_default=True)
@click.option("--chromium", default="chromium", show_default=True, help="Chromium の実行ファイル")
def draw_richmenu_image(definition_path: Path, output: Path, chromium: str) -> None:
    """Draw the menu image from the definition (labels, colours, captions); commit the result."""
    try:
        image = draw_image(load_definition(definition_path), output, chromium)
    except (RichMenuError, subprocess.SubprocessError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{output}: {len(image)} バイト")
