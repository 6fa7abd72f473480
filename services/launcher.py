"""Starting the product: the embedded default in one process, or every service as its own process.

* ``python -m services run``: with neither ``AMQP_URL`` nor ``DATABASE_URL`` set, every service runs in
  this one process (SQLite under ``DATA_DIR``, the in-process bus, dramatiq's stub broker), the gateway
  on ``GATEWAY_PORT``. With both set, each service is started as its own uvicorn process plus the
  dramatiq worker, the same topology as ``docker compose up``.
* ``python -m services serve NAME``: one service under uvicorn on ``PORT`` (default 8000).
* ``python -m services migrate [NAME ...]``: create and migrate the services' databases.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from shared.bus import InProcessBus
from shared.config import ServiceSettings
from shared.db import prepare_database
from shared.observability import configure_logging

log = logging.getLogger("launcher")

BACKEND_SERVICES = ("users", "listings", "bidding", "chat")
ALL_SERVICES = (*BACKEND_SERVICES, "gateway")
ROOT = Path(__file__).resolve().parent.parent


def _module(name: str, part: str) -> Any:
    if name not in ALL_SERVICES:
        raise SystemExit(f"unknown service {name!r}; one of {', '.join(ALL_SERVICES)}")
    return importlib.import_module(f"services.{name}.{part}")


def settings_for(name: str, **overrides: Any) -> Any:
    return _module(name, "config").Settings(**overrides)


def create_service_app(name: str, **kwargs: Any) -> FastAPI:
    return _module(name, "app").create_app(**kwargs)  # type: ignore[no-any-return]


def uvicorn_options(name: str) -> dict[str, Any]:
    options: dict[str, Any] = {"log_config": None, "timeout_graceful_shutdown": 10, "proxy_headers": True}
    if name == "gateway":
        gateway = settings_for("gateway")
        # Protocol-level pings reap dead sockets; no per-message deflate keeps idle sockets small.
        options |= {
            "ws_max_size": max(gateway.ws_max_frame_bytes * 4, 65536),
            "ws_ping_interval": 20.0,
            "ws_ping_timeout": 20.0,
            "ws_per_message_deflate": False,
            "backlog": 4096,
        }
    return options


# ---------------------------------------------------------------------------------------------- embedded
def embedded_app() -> FastAPI:
    """Every service in one process, reached through the gateway in-process; one shared bus."""
    bus = InProcessBus()
    users = create_service_app("users", bus=bus)

    async def users_keys() -> dict[str, Any]:
        return users.state.users.tokens.jwks  # type: ignore[no-any-return]

    services = {"users": users}
    for name in ("listings", "bidding", "chat"):
        services[name] = create_service_app(name, bus=bus, jwks=users_keys)
    return _module("gateway", "app").create_app(bus=bus, jwks=users_keys, services=services)  # type: ignore[no-any-return]


def run_embedded() -> None:
    gateway = settings_for("gateway")
    log.info(
        "embedded mode: the whole product in one process on port %d (data in %s)",
        gateway.gateway_port,
        gateway.data_dir,
    )
    uvicorn.run(
        embedded_app(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=gateway.gateway_port,
        **uvicorn_options("gateway"),
    )


# ------------------------------------------------------------------------------------------- distributed
def run_distributed() -> None:
    gateway = settings_for("gateway")
    host = os.environ.get("HOST", "127.0.0.1")
    base = int(os.environ.get("SERVICES_BASE_PORT", "8001"))
    ports = {name: base + i for i, name in enumerate(BACKEND_SERVICES)}
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(ROOT))
    env["JWKS_URL"] = f"http://{host}:{ports['users']}/api/auth/jwks.json"
    for name, port in ports.items():
        env[f"{name.upper()}_URL"] = f"http://{host}:{port}"

    log.info("distributed mode: migrating each service's database")
    migrate(list(BACKEND_SERVICES))

    python = sys.executable
    commands: list[tuple[str, list[str], dict[str, str]]] = []
    for name, port in ports.items():
        commands.append((name, [python, "-m", "services", "serve", name], env | {"PORT": str(port), "HOST": host}))
    workers = int(os.environ.get("WORKER_PROCESSES", "1"))
    for i in range(workers):
        commands.append((f"worker-{i}", [python, "-m", "services.bidding.worker"], env))
    commands.append(
        (
            "gateway",
            [python, "-m", "services", "serve", "gateway"],
            env | {"PORT": str(gateway.gateway_port), "HOST": host},
        )
    )
    supervise(commands)


def supervise(commands: list[tuple[str, list[str], dict[str, str]]]) -> None:
    """Start every process; stop them all on Ctrl-C/SIGTERM or when one of them dies."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for name, argv, env in commands:
            procs[name] = subprocess.Popen(argv, env=env, cwd=ROOT)
            log.info("started %s (pid %d)", name, procs[name].pid)
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    log.error("%s exited with %s; stopping everything", name, proc.returncode)
                    stopping = True
                    break
            time.sleep(0.2)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()


# ------------------------------------------------------------------------------------------------ pieces
def serve(name: str) -> None:
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "0.0.0.0")
    uvicorn.run(f"services.{name}.app:create_app", factory=True, host=host, port=port, **uvicorn_options(name))


def migrate(names: list[str]) -> None:
    async def run() -> None:
        for name in names or BACKEND_SERVICES:
            if name == "gateway":
                continue
            settings = settings_for(name)
            db = await prepare_database(settings, Path(_module(name, "app").MIGRATIONS))
            await db.dispose()
            log.info("%s: database migrated", name)

    asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args.pop(0) if args else "run"
    base = ServiceSettings()
    configure_logging(base.log_level, base.log_json and command != "run")
    if command == "run":
        if bool(base.amqp_url) != bool(base.database_url):
            raise SystemExit("set both AMQP_URL and DATABASE_URL (distributed) or neither (embedded)")
        run_distributed() if base.amqp_url else run_embedded()
    elif command == "serve" and len(args) == 1:
        serve(args[0])
    elif command == "migrate":
        migrate(args)
    else:
        raise SystemExit("usage: python -m services [run | serve NAME | migrate [NAME ...]]")
