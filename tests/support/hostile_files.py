"""Hostile uploads made on the fly: non-images dressed as images, polyglots, bombs, truncations."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

#: What a polyglot carries after (or inside) its image: it must not survive into the stored file.
PAYLOAD = b"<html><script>alert(document.cookie)</script></html>"


def _image(fmt: str, size: tuple[int, int] = (40, 30), mode: str = "RGB", **params: object) -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 128).save(out, format=fmt, **params)
    return out.getvalue()


def gif_polyglot() -> bytes:
    """A valid GIF with an HTML/JS payload appended (read by a browser that sniffs, shown as an image)."""
    return _image("GIF", mode="P") + PAYLOAD


def jpeg_comment_polyglot() -> bytes:
    """A valid JPEG carrying the payload in a comment segment."""
    return _image("JPEG", comment=PAYLOAD)


def html_with_gif_header() -> bytes:
    """The GIF magic followed by HTML: sniffs as a GIF, is not one."""
    return b"GIF89a" + PAYLOAD * 20


def png_bomb(side: int) -> bytes:
    """A small PNG that decodes to ``side`` x ``side`` pixels (mode 1, compresses to almost nothing)."""
    out = io.BytesIO()
    Image.new("1", (side, side), 0).save(out, format="PNG", optimize=True)
    return out.getvalue()


def png_header_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
    """A PNG whose header claims huge dimensions but whose data is a few bytes (never decodes fully)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + data + chunk(b"IEND", b"")


def gif_screen_bomb() -> bytes:
    """A GIF whose logical screen claims 65535 x 65535 pixels."""
    data = bytearray(_image("GIF", mode="P"))
    data[6:10] = struct.pack("<HH", 0xFFFF, 0xFFFF)
    return bytes(data)


def jpeg_dimension_bomb() -> bytes:
    """A JPEG whose frame header (SOF0) claims 65500 x 65500 pixels."""
    data = bytearray(_image("JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65500, 65500)
    return bytes(data)


def truncated_jpeg() -> bytes:
    data = _image("JPEG", size=(300, 300))
    return data[: len(data) // 2]


def tiff() -> bytes:
    """A real image in a format uploads do not accept."""
    return _image("TIFF")


SVG_WITH_SCRIPT = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><script>alert(2)</script></svg>'
