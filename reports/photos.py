"""Report photos: checked (size, JPEG/PNG by their first bytes), re-encoded without metadata, stored
under REPORT_PHOTO_DIR (outside the web root; served only through the staff inbox), deleted with
their report.

Re-encoding with Pillow drops EXIF (GPS position, camera, time) and every other chunk a phone
writes: only the pixels are kept. A JPEG's orientation tag is applied to the pixels first, so the
photo still shows the right way up without it.
"""

from __future__ import annotations

import io
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from bot.config import ROOT

log = logging.getLogger(__name__)
JPEG, PNG = "image/jpeg", "image/png"
MAX_PIXELS = 60_000_000  # a decompression bomb is refused before its pixels are decoded


class PhotoError(ValueError):
    """The file is not a photo we keep (too large, not JPEG/PNG, broken)."""


@dataclass(frozen=True)
class StoredPhoto:
    """A cleaned photo written to disk: its file name under the photo folder and its type."""

    file_name: str
    content_type: str


def photo_dir(config: Any) -> Path:
    """REPORT_PHOTO_DIR, else instance/reports/ (created when missing, readable by this user only)."""
    configured = (config.get("REPORT_PHOTO_DIR") or "").strip()
    path = Path(configured) if configured else ROOT / "instance" / "reports"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def sniff(data: bytes) -> str | None:
    """JPEG or PNG by the file's first bytes (never by what the sender claims); None for anything else."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    return None


def clean(data: bytes, max_bytes: int) -> tuple[bytes, str]:
    """The photo re-encoded without metadata, and its type; PhotoError when it is not one we keep."""
    if len(data) > max_bytes:
        raise PhotoError("too large")
    kind = sniff(data)
    if kind is None:
        raise PhotoError("not a JPEG or PNG")
    try:
        with Image.open(io.BytesIO(data), formats=["JPEG" if kind == JPEG else "PNG"]) as image:
            if image.width * image.height > MAX_PIXELS:
                raise PhotoError("too many pixels")
            image.load()
            upright = ImageOps.exif_transpose(image)
            out = io.BytesIO()
            if kind == JPEG:
                upright = upright.convert("RGB") if upright.mode not in ("RGB", "L") else upright
                upright.save(out, "JPEG", quality=90, exif=b"", icc_profile=None)
            else:
                upright.save(out, "PNG", optimize=False)
    except PhotoError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise PhotoError(f"unreadable image: {type(exc).__name__}") from None
    return out.getvalue(), kind


def store(config: Any, data: bytes) -> StoredPhoto:
    """Clean and write a photo under the photo folder with a random name; PhotoError when refused."""
    cleaned, kind = clean(data, int(config["REPORT_PHOTO_MAX_BYTES"]))
    name = secrets.token_hex(16) + (".jpg" if kind == JPEG else ".png")
    path = photo_dir(config) / name
    with open(path, "xb") as f:
        f.write(cleaned)
    path.chmod(0o600)
    return StoredPhoto(name, kind)


def path_of(config: Any, file_name: str | None) -> Path | None:
    """The stored photo's path, None for a missing or malformed name (never outside the folder)."""
    if not file_name or "/" in file_name or "\\" in file_name or file_name.startswith("."):
        return None
    path = photo_dir(config) / file_name
    return path if path.is_file() else None


def delete(config: Any, file_name: str | None) -> bool:
    """Remove a stored photo; True when a file was removed."""
    path = path_of(config, file_name)
    if path is None:
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
