"""Image fixtures made on the fly: real images, renamed non-images, bombs, truncated files."""

from __future__ import annotations

import io

from PIL import Image, PngImagePlugin


def png(
    width: int = 32, height: int = 24, color: tuple[int, int, int] = (200, 40, 40), text: str | None = None
) -> bytes:
    out = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("Comment", text)
    Image.new("RGB", (width, height), color).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def jpeg_with_exif(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (width, height), (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS latitude
    image.save(out, format="JPEG", exif=exif)
    return out.getvalue()


def decompression_bomb() -> bytes:
    """A tiny PNG that claims 20000x20000 pixels (400 megapixels)."""
    out = io.BytesIO()
    Image.new("1", (20000, 20000), 0).save(out, format="PNG", optimize=True)
    return out.getvalue()


def truncated_png() -> bytes:
    data = png(200, 200)
    return data[: len(data) // 2]
