"""The browser's ws.js resumes after a drop: it resubscribes with ``since`` and signals resync only when needed.

Runs ``tests/gateway/js/ws_resume.mjs`` under Node (the system's, or the one Playwright ships) against the
real ``ws.js`` with a fake WebSocket and a stub ``api.js``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent / "js"


def node_binary() -> str:
    found = shutil.which("node")
    if found:
        return found
    import playwright

    bundled = Path(playwright.__file__).parent / "driver" / "node"
    assert bundled.is_file(), "Node is needed: install it, or Playwright (it ships one)"
    return str(bundled)


def test_ws_js_resumes_each_topic_from_its_last_event(tmp_path: Path) -> None:
    shutil.copy(ROOT / "services/gateway/web/assets/ws.js", tmp_path / "ws.js")
    shutil.copy(HERE / "api.js", tmp_path / "api.js")
    (tmp_path / "package.json").write_text(json.dumps({"type": "module"}))
    result = subprocess.run(
        [node_binary(), str(HERE / "ws_resume.mjs"), str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0 or result.stdout.strip() != "ok":
        pytest.fail(f"ws_resume.mjs failed:\n{result.stdout}\n{result.stderr}")
