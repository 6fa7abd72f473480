"""Hostile uploads to both image endpoints (avatar, listing image) through the gateway.

Non-images with image names and types, truncated and empty files, bombs and oversized files are refused
with a 415 ``not_an_image`` or 413 problem and the image stored before is still the one served; polyglots
are accepted only as their pixels: the stored file is a fresh JPEG without the payload. The stack's memory
stays bounded while it refuses bombs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Stack
from tests.support import hostile_files as files
from tests.support import images
from tests.support.hostile import assert_problem, create_listing, new_user

MIB = 1024 * 1024


class Target:
    """One image endpoint and how to read back what it stored."""

    def __init__(self, http: httpx.Client, kind: str) -> None:
        self.http = http
        self.auth, self.user, _ = new_user(http)
        if kind == "avatar":
            self.path = "/api/users/me/avatar"
            self.current_url: Callable[[], str | None] = lambda: http.get("/api/users/me", headers=self.auth).json()[
                "avatar_url"
            ]
        else:
            listing = create_listing(http, self.auth)
            self.path = f"/api/listings/{listing['id']}/image"
            self.current_url = lambda: http.get(f"/api/listings/{listing['id']}").json()["image_url"]

    def upload(self, content: bytes, name: str = "photo.png", content_type: str = "image/png") -> httpx.Response:
        return self.http.put(self.path, headers=self.auth, files={"file": (name, content, content_type)})


@pytest.fixture(params=["avatar", "listing"])
def target(request: pytest.FixtureRequest, any_stack: Stack) -> Iterator[Target]:
    with httpx.Client(base_url=any_stack.base_url, timeout=60) as http:
        yield Target(http, str(request.param))


HOSTILE_415: dict[str, tuple[bytes, str, str]] = {
    "text_named_png": (b"just some text, not an image at all", "cat.png", "image/png"),
    "html_named_jpeg": (files.PAYLOAD * 10, "cat.jpg", "image/jpeg"),
    "html_with_gif_magic": (files.html_with_gif_header(), "cat.gif", "image/gif"),
    "svg_with_script": (files.SVG_WITH_SCRIPT, "cat.svg", "image/svg+xml"),
    "pdf_named_png": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", "doc.png", "image/png"),
    "exe_named_jpeg": (b"MZ\x90\x00" + bytes(2000), "setup.jpg", "image/jpeg"),
    "zero_bytes": (b"", "empty.png", "image/png"),
    "truncated_png": (images.truncated_png(), "half.png", "image/png"),
    "truncated_jpeg": (files.truncated_jpeg(), "half.jpg", "image/jpeg"),
    "tiff_not_accepted": (files.tiff(), "scan.tiff", "image/tiff"),
    "png_bomb_400_megapixels": (images.decompression_bomb(), "bomb.png", "image/png"),
    "png_bomb_25_megapixels": (files.png_bomb(5000), "bomb.png", "image/png"),
    "png_header_claims_3600_megapixels": (files.png_header_bomb(), "bomb.png", "image/png"),
    "gif_screen_65535_squared": (files.gif_screen_bomb(), "bomb.gif", "image/gif"),
    "jpeg_sof_65500_squared": (files.jpeg_dimension_bomb(), "bomb.jpg", "image/jpeg"),
}


def test_hostile_files_refused_and_the_stored_image_unchanged(target: Target) -> None:
    first = target.upload(images.png(64, 48), "ok.png")
    assert first.status_code == 200, first.text
    stored_url = target.current_url()
    assert stored_url
    stored_bytes = target.http.get(stored_url).content

    outcomes: dict[str, str] = {}
    for name, (content, filename, content_type) in HOSTILE_415.items():
        r = target.upload(content, filename, content_type)
        problem = assert_problem(r, 415, "not_an_image")
        outcomes[name] = problem["detail"]
        assert target.current_url() == stored_url, name
    assert target.http.get(stored_url).content == stored_bytes
    # Each refusal says why, in words a person can act on.
    assert all(detail for detail in outcomes.values()), outcomes

    # Over the service's 5 MiB limit but under the gateway's body limit: the service answers 413.
    assert_problem(target.upload(os.urandom(5 * MIB + 4096)), 413)
    # Far over the gateway's limit: refused from Content-Length before the body is read.
    assert_problem(target.upload(os.urandom(20 * MIB)), 413, "payload_too_large")
    # The same streamed without a length (chunked): counted by the gateway, refused past its limit.
    boundary = "hostile"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n\r\n'.encode()
    streamed = iter([head, *(os.urandom(MIB) for _ in range(8)), f"\r\n--{boundary}--\r\n".encode()])
    multipart = {"content-type": f"multipart/form-data; boundary={boundary}"}
    r = target.http.put(target.path, headers=target.auth | multipart, content=streamed)
    assert_problem(r, 413, "payload_too_large")
    # No file part, or a field that is not a file.
    assert_problem(target.http.put(target.path, headers=target.auth, files={"other": ("x.png", b"x")}), 422)
    assert_problem(target.http.put(target.path, headers=target.auth, data={"file": "not a file"}), 422)
    assert target.current_url() == stored_url
    assert target.http.get(stored_url).content == stored_bytes


@pytest.mark.parametrize(
    ("polyglot", "filename"),
    [
        (files.gif_polyglot(), "poly.gif"),
        (files.jpeg_comment_polyglot(), "poly.jpg"),
        (images.png(text=files.PAYLOAD.decode()), "poly.png"),
    ],
    ids=["gif_with_appended_html", "jpeg_with_html_comment", "png_with_html_text_chunk"],
)
def test_polyglots_are_reencoded_without_their_payload(target: Target, polyglot: bytes, filename: str) -> None:
    assert files.PAYLOAD in polyglot
    r = target.upload(polyglot, filename, "image/png")
    assert r.status_code == 200, r.text
    served = target.http.get(target.current_url() or "")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/jpeg"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.content.startswith(b"\xff\xd8\xff"), served.content[:16]
    assert b"<script" not in served.content and b"<html" not in served.content


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def reset_peak_memory(pid: int) -> None:
    """Restart the process's peak resident size (VmHWM) from its current size (proc(5), clear_refs "5")."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def test_memory_stays_bounded_while_refusing_bombs(stack: Stack) -> None:
    """The embedded stack is one process: its resident memory, peak included, barely grows while it refuses
    bombs that would decode to hundreds of megabytes each (a 20000 x 20000 bitmap alone is 400 MB decoded)."""
    bombs: list[tuple[bytes, str]] = [
        (images.decompression_bomb(), "bomb.png"),
        (files.png_bomb(5000), "bomb.png"),
        (files.png_header_bomb(), "bomb.png"),
        (files.gif_screen_bomb(), "bomb.gif"),
        (files.jpeg_dimension_bomb(), "bomb.jpg"),
    ]
    pid = stack.process.pid
    with httpx.Client(base_url=stack.base_url, timeout=60) as http:
        auth, _, _ = new_user(http)
        # Warm up the upload path once, so its one-off allocations are not counted.
        ok = http.put("/api/users/me/avatar", headers=auth, files={"file": ("ok.png", images.png(), "image/png")})
        assert ok.status_code == 200, ok.text
        before = memory_kib(pid, "VmRSS")
        reset_peak_memory(pid)
        for _ in range(3):
            for content, name in bombs:
                r = http.put("/api/users/me/avatar", headers=auth, files={"file": (name, content, "image/png")})
                assert_problem(r, 415, "not_an_image")
        after = memory_kib(pid, "VmRSS")
        peak = memory_kib(pid, "VmHWM")
    growth_mib = (after - before) / 1024
    peak_mib = (peak - before) / 1024
    print(f"stack RSS {before / 1024:.0f} MiB before 15 bombs, {after / 1024:.0f} MiB after, peak +{peak_mib:.1f} MiB")
    assert growth_mib < 64, f"RSS grew by {growth_mib:.0f} MiB"
    assert peak_mib < 128, f"RSS peaked {peak_mib:.0f} MiB above the start"
