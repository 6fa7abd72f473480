"""Starting the product: the embedded default in one process, or every service as its own process.

* ``python -m services run``: with neither ``AMQP_URL`` nor ``DATABASE_URL`` set, every service runs in
  this one process (SQLite under ``DATA_DIR``, the in-process bus, dramatiq's stub broker), the gateway
  on ``GATEWAY_PORT``. With both set, each service is started as its own uvicorn process plus the
  dramatiq worker, the same topology as ``docker compose up``. ``REPLICAS=N`` (or per process
  ``USERS_REPLICAS``, ``LISTINGS_REPLICAS``, ``BIDDING_REPLICAS``, ``CHAT_REPLICAS``, ``GATEWAY_REPLICAS``,
  ``WORKER_PROCESSES``) starts N of each: see :func:`plan_distributed` for the ports.
* ``python -m services serve NAME``: one service under uvicorn on ``PORT`` (default 8000).
* ``python -m services migrate [NAME ...]``: create and migrate the services' databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
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
    options: dict[str, Any] = {
        "log_config": None,
        "timeout_graceful_shutdown": 10,
        "proxy_headers": True,
        # Idle keep-alive connections outlive the caller's (the gateway's pools drop theirs after 30 s,
        # ingress-nginx after 60 s): when the server closed first, a request sent on the closing connection
        # in that instant would fail, and a POST cannot be retried.
        "timeout_keep_alive": 75,
    }
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
@dataclass(frozen=True)
class Process:
    """One process of the distributed mode: ``users-0``, ``gateway-1``, ``worker-0``, ..."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int | None = None


def replica_count(name: str, environ: dict[str, str]) -> int:
    """``<NAME>_REPLICAS``, else ``REPLICAS``, else 1 (the worker: ``WORKER_PROCESSES``)."""
    key = "WORKER_PROCESSES" if name == "worker" else f"{name.upper()}_REPLICAS"
    value = environ.get(key) or environ.get("REPLICAS") or "1"
    count = int(value)
    if count < 1:
        raise SystemExit(f"{key} (or REPLICAS) must be at least 1, not {value}")
    return count


def plan_distributed(environ: dict[str, str], gateway_port: int) -> list[Process]:
    """Every process of the distributed mode, with its port and environment.

    Ports: the backend replicas take consecutive ports from ``SERVICES_BASE_PORT`` (8001) in the order
    users, listings, bidding, chat (with one replica each: users 8001, listings 8002, bidding 8003,
    chat 8004); the first gateway listens on ``GATEWAY_PORT``, further gateways on the ports right after
    the backend block. Each gateway gets every replica's URL (comma-separated ``<NAME>_URL``) and spreads
    requests over them; the services fetch the signing keys from the first users replica (``JWKS_URL``)
    and cache them.
    """
    host = environ.get("HOST", "127.0.0.1")
    port = int(environ.get("SERVICES_BASE_PORT", "8001"))
    env = dict(environ)
    env.setdefault("PYTHONPATH", str(ROOT))
    backend: list[tuple[str, int]] = []
    for name in BACKEND_SERVICES:
        for _ in range(replica_count(name, environ)):
            backend.append((name, port))
            port += 1
    for name in BACKEND_SERVICES:
        env[f"{name.upper()}_URL"] = ",".join(f"http://{host}:{p}" for service, p in backend if service == name)
    env["JWKS_URL"] = f"{env['USERS_URL'].split(',')[0]}/api/auth/jwks.json"

    python = sys.executable
    processes: list[Process] = []
    replica: dict[str, int] = {}
    for name, service_port in backend:
        index = replica.setdefault(name, 0)
        replica[name] = index + 1
        serve_env = env | {"PORT": str(service_port), "HOST": host}
        processes.append(Process(f"{name}-{index}", [python, "-m", "services", "serve", name], serve_env, service_port))
    for index in range(replica_count("worker", environ)):
        processes.append(Process(f"worker-{index}", [python, "-m", "services.bidding.worker"], env))
    for index in range(replica_count("gateway", environ)):
        gateway = gateway_port if index == 0 else port + index - 1
        serve_env = env | {"PORT": str(gateway), "HOST": host}
        processes.append(
            Process(f"gateway-{index}", [python, "-m", "services", "serve", "gateway"], serve_env, gateway)
        )
    return processes


def run_distributed() -> None:
    gateway = settings_for("gateway")
    processes = plan_distributed(dict(os.environ), gateway.gateway_port)

    log.info("distributed mode: migrating each service's database")
    migrate(list(BACKEND_SERVICES))
    if replica_count("users", dict(os.environ)) > 1:
        # Every users replica must sign with one key: make the generated one (if none is configured)
        # before they start, rather than let them race to write it.
        _module("users", "security").load_or_create_private_key(settings_for("users"))
    # More than one replica of anything: a replica that dies is started again, as Kubernetes would.
    restart = any(replica_count(name, dict(os.environ)) > 1 for name in (*ALL_SERVICES, "worker"))
    supervise(processes, restart=restart)


#: A process that dies more often than this within RESTART_WINDOW_SECONDS stops everything.
MAX_RESTARTS = 5
RESTART_WINDOW_SECONDS = 60.0
RESTART_DELAY_SECONDS = 1.0


def supervise(processes: list[Process], *, restart: bool = False) -> None:
    """Start every process; stop them all on Ctrl-C/SIGTERM, or when one dies (unless ``restart``:
    then it is started again after a second, up to ``MAX_RESTARTS`` times a minute)."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    restarts: dict[str, list[float]] = {}
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    def start(process: Process) -> None:
        procs[process.name] = subprocess.Popen(process.argv, env=process.env, cwd=ROOT)
        where = f" on port {process.port}" if process.port is not None else ""
        log.info("started %s (pid %d)%s", process.name, procs[process.name].pid, where)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for process in processes:
            start(process)
        while not stopping:
            for process in processes:
                code = procs[process.name].poll()
                if code is None:
                    continue
                now = time.monotonic()
                recent = [t for t in restarts.get(process.name, []) if now - t < RESTART_WINDOW_SECONDS]
                if not restart or len(recent) >= MAX_RESTARTS:
                    log.error("%s exited with %s; stopping everything", process.name, code)
                    stopping = True
                    break
                log.warning("%s exited with %s; starting it again", process.name, code)
                restarts[process.name] = [*recent, now]
                time.sleep(RESTART_DELAY_SECONDS)
                start(process)
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
class GoingAwayServer(uvicorn.Server):
    """The gateway's server: at shutdown its hub closes every websocket with 1001 (going away) first;
    uvicorn's own connection shutdown would drop them with 1012. HTTP requests in flight still finish."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app: Any = self.config.loaded_app
        while app is not None and not hasattr(getattr(app, "state", None), "hub"):
            app = getattr(app, "app", None)  # through uvicorn's and Starlette's middleware wrappers
        if app is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(app.state.hub.close_all(1001, "server shutting down"), timeout=3)
        await super().shutdown(sockets)


def hold_long_lived_objects_out_of_gc() -> None:
    """Keep full garbage collections rare in a process that holds thousands of sockets.

    A full (generation 2) collection scans every tracked object while every socket and request waits: with
    10,000 sockets that was a pause of about 300 ms every few seconds (``python_gc_pause_seconds``).
    Objects from startup are frozen out of collection, and the thresholds let young objects die by
    reference counting, as nearly all do, before a collection runs: a full collection comes after about
    10^8 allocations (minutes to hours apart under load) instead of every few seconds. The price: cyclic
    garbage that reached the oldest generation (sockets closed after living long) waits that long.
    """
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def serve(name: str) -> None:
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "0.0.0.0")
    config = uvicorn.Config(
        f"services.{name}.app:create_app", factory=True, host=host, port=port, **uvicorn_options(name)
    )
    if name == "gateway":
        hold_long_lived_objects_out_of_gc()
    server = GoingAwayServer(config) if name == "gateway" else uvicorn.Server(config)
    server.run()
    if not server.started:
        sys.exit(3)  # as uvicorn.run: a failed startup (the lifespan raised) is a failed process


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
