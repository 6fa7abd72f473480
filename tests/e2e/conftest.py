"""The whole product started as the README says (``python -m services run``), in both modes, on free ports.

``stack`` is the embedded default (one process, SQLite, in-process bus, stub broker);
``distributed_stack`` runs every service as its own process on the real PostgreSQL and RabbitMQ.
Tests here use only the public surface: HTTP through the gateway, ``/ws`` and a real browser.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

from tests.conftest import RUN_PREFIX

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(size: int) -> int:
    """A base port with ``size`` consecutive free ports after it."""
    for _ in range(50):
        base = free_port()
        if base + size > 65000:
            continue
        try:
            sockets = []
            for port in range(base, base + size):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            for s in sockets:
                s.close()
            return base
        except OSError:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port block")


@dataclass
class Stack:
    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    mode: str

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/ws"

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


def start_stack(tmp: Path, mode: str, extra_env: dict[str, str] | None = None) -> Stack:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("AMQP_URL", "DATABASE_URL")}
    env |= {
        "PYTHONPATH": str(ROOT),
        "GATEWAY_PORT": str(port),
        "DATA_DIR": str(tmp / "data"),
        "AUCTION_MIN_DURATION_SECONDS": "2",
        # Auctions here last seconds: alert 3 s before the end (production: 5 minutes).
        "AUCTION_ENDING_SOON_SECONDS": "3",
        "PASSWORD_HASH_MEMORY_KIB": "8192",
        "PASSWORD_HASH_TIME_COST": "1",
        "LOG_JSON": "false",
        "LOG_LEVEL": "WARNING",
    }
    if mode == "distributed":
        tag = uuid.uuid4().hex[:8]
        env |= {
            "DATABASE_URL": os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
            "AMQP_URL": os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
            "DATABASE_PREFIX": f"{RUN_PREFIX}_e2e{tag}",
            "QUEUE_PREFIX": f"test.{RUN_PREFIX}.e2e{tag}.",
            "EVENTS_EXCHANGE": f"test.{RUN_PREFIX}.e2e{tag}.events",
            "SERVICES_BASE_PORT": str(free_port_block(4)),
        }
    env |= extra_env or {}
    log_path = tmp / f"stack-{mode}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "services", "run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    stack = Stack(f"http://127.0.0.1:{port}", process, log_path, mode)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the stack exited with {process.returncode}:\n{stack.logs()}")
        try:
            ready = httpx.get(f"{stack.base_url}/readyz", timeout=2)
            cats = httpx.get(f"{stack.base_url}/api/categories", timeout=2)
            jwks = httpx.get(f"{stack.base_url}/api/auth/jwks.json", timeout=2)
            if ready.status_code == 200 and cats.status_code == 200 and jwks.status_code == 200:
                return stack
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_stack(stack)
    raise RuntimeError(f"the stack did not become ready:\n{stack.logs()}")


def stop_stack(stack: Stack) -> None:
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGTERM)
        try:
            stack.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stack.process.kill()
            stack.process.wait()


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The embedded default, as `make run` starts it without AMQP_URL/DATABASE_URL."""
    s = start_stack(tmp_path_factory.mktemp("embedded"), "embedded")
    yield s
    stop_stack(s)


@pytest.fixture(scope="session")
def distributed_stack(tmp_path_factory: pytest.TempPathFactory, pg_url: str, amqp_url: str) -> Iterator[Stack]:
    """Every service as its own process on the real PostgreSQL and RabbitMQ, as `make run` starts it with both set."""
    s = start_stack(tmp_path_factory.mktemp("distributed"), "distributed")
    yield s
    stop_stack(s)


@pytest.fixture(params=["embedded", "distributed"])
def any_stack(request: pytest.FixtureRequest) -> Stack:
    return request.getfixturevalue("stack" if request.param == "embedded" else "distributed_stack")  # type: ignore[no-any-return]


# ----- the browser tests' (Debian's chromium through Playwright; one browser per test module)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is missing: apt-get install -y chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def base_url(stack: Any) -> str:
    return str(stack.base_url).rstrip("/")


@pytest.fixture
def contexts(browser: Browser) -> Iterator[list[BrowserContext]]:
    made: list[BrowserContext] = []
    yield made
    for context in made:
        context.close()
