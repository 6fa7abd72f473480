"""Uploaded images: read with a size cap, decoded by Pillow under a low pixel limit, re-encoded.

Re-encoding drops everything but pixels (EXIF, ICC, comments, appended polyglot payloads). A file
that is not an image, is truncated, or would decode to too many pixels is refused as ``not_an_image``.
"""

from __future__ import annotations

import io
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

from fastapi import UploadFile
from PIL import Image, ImageOps, UnidentifiedImageError

from shared.errors import ProblemError

#: Largest upload accepted, in bytes.
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
#: Largest decoded image accepted, in pixels (a 4000x4000 photo); beyond it is treated as a bomb.
MAX_PIXELS = 16_000_000
ALLOWED_FORMATS = {"JPEG", "PNG", "GIF", "WEBP", "BMP"}


@dataclass(frozen=True)
class StoredImage:
    name: str
    width: int
    height: int


async def read_upload(file: UploadFile, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    chunks = []
    size = 0
    while chunk := await file.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, "file_too_large", f"the file is larger than {limit // (1024 * 1024)} MiB")
        chunks.append(chunk)
    if size == 0:
        raise ProblemError(415, "not_an_image", "the file is empty")
    return b"".join(chunks)


def reencode(raw: bytes, max_side: int) -> tuple[bytes, int, int]:
    """Decode ``raw`` safely and return it as a fresh JPEG no larger than ``max_side`` on a side."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw)) as probe:
                if probe.format not in ALLOWED_FORMATS:
                    raise ProblemError(415, "not_an_image", "unsupported image format")
                width, height = probe.size
                if width * height > MAX_PIXELS or width < 1 or height < 1:
                    raise ProblemError(415, "not_an_image", "the image has too many pixels")
                probe.seek(0)
                probe.load()
                image = ImageOps.exif_transpose(probe)
                image.thumbnail((max_side, max_side))
                if image.mode not in ("RGB", "L"):
                    background = Image.new("RGB", image.size, (255, 255, 255))
                    rgba = image.convert("RGBA")
                    background.paste(rgba, mask=rgba.getchannel("A"))
                    image = background
                # Pillow writes a decoded JPEG's (or GIF's) comment back into the JPEG it saves: a polyglot's
                # payload would survive the re-encoding. Only the pixels go out.
                image.info = {}
                out = io.BytesIO()
                image.save(out, format="JPEG", quality=85, optimize=True)
                return out.getvalue(), image.width, image.height
    except ProblemError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ProblemError(415, "not_an_image", "the image has too many pixels") from None
    except (OSError, SyntaxError, ValueError, UnidentifiedImageError, EOFError):
        raise ProblemError(415, "not_an_image", "the file is not a readable image") from None


class ImageStore:
    """Writes re-encoded images under ``root/<kind>/`` with unguessable names."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, kind: str, content: bytes) -> str:
        folder = self.root / kind
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4().hex}.jpg"
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(content)
        tmp.replace(folder / name)
        return f"{kind}/{name}"

    def path_of(self, kind: str, name: str) -> Path:
        """The stored file ``kind/name``; raises a 404 problem for anything that is not one of ours."""
        if "/" in name or "\\" in name or name.startswith(".") or not name.endswith(".jpg"):
            raise ProblemError(404, "not_found", "file not found")
        path = self.root / kind / name
        if not path.is_file():
            raise ProblemError(404, "not_found", "file not found")
        return path

    def delete(self, relative: str | None) -> None:
        if relative:
            (self.root / relative).unlink(missing_ok=True)


async def process_upload(file: UploadFile, max_side: int = 1600) -> bytes:
    """Read and re-encode an upload off the event loop."""
    import asyncio

    raw = await read_upload(file)
    content, _, _ = await asyncio.to_thread(reencode, raw, max_side)
    return content
