from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from services.gateway.app import create_app
from services.gateway.config import Settings
from services.launcher import uvicorn_options
from shared.bus import AmqpBus, Bus, InProcessBus
from tests.support.tokens import TestKeys


@dataclass
class RunningGateway:
    base_url: str
    ws_url: str
    bus: Bus
    app: Any


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def gateway_factory(
    test_keys: TestKeys, tmp_path: Any, isolation: dict[str, str], request: pytest.FixtureRequest
) -> Callable[..., Any]:
    """Start a real gateway (uvicorn on a free port) with no backends unless given; yields a RunningGateway."""

    def factory(real_bus: bool = False, server_options: dict[str, Any] | None = None, **overrides: Any) -> Any:
        class _Ctx:
            async def __aenter__(self) -> RunningGateway:
                port = _free_port()
                values: dict[str, Any] = {"DATA_DIR": tmp_path, "LOG_JSON": False, "GATEWAY_PORT": port}
                values |= {f"{n}_URL": "http://127.0.0.1:9" for n in ("USERS", "LISTINGS", "BIDDING", "CHAT")}
                if real_bus:
                    values |= isolation | {"AMQP_URL": request.getfixturevalue("amqp_url")}
                values |= overrides
                settings = Settings(**values)
                self.bus: Bus = (
                    AmqpBus(settings.amqp_url, settings.events_exchange) if settings.amqp_url else InProcessBus()
                )
                await self.bus.start()
                app = create_app(settings, bus=self.bus, jwks=test_keys.source)
                # The WebSocket options the launcher gives the real gateway (frame limit, no deflate).
                ws_options = {
                    key: value
                    for key, value in uvicorn_options("gateway").items()
                    if key.startswith("ws_") and key != "ws_max_size"
                }
                self.server = uvicorn.Server(
                    uvicorn.Config(
                        app,
                        host="127.0.0.1",
                        port=port,
                        log_level="warning",
                        ws_max_size=max(settings.ws_max_frame_bytes * 4, 65536),
                        **(ws_options | (server_options or {})),
                    )
                )
                self.task = asyncio.create_task(self.server.serve())
                while not self.server.started:
                    await asyncio.sleep(0.02)
                return RunningGateway(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/ws", self.bus, app)

            async def __aexit__(self, *exc: object) -> None:
                self.server.should_exit = True
                await self.task
                await self.bus.close()

        return _Ctx()

    return factory


@pytest.fixture
async def gateway(gateway_factory: Callable[..., Any]) -> AsyncIterator[RunningGateway]:
    async with gateway_factory() as running:
        yield running
