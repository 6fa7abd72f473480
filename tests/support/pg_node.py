"""A private PostgreSQL cluster a test may stop, crash and start at will: a real database restart that
touches no one else (other tests, other sessions) using the machine's server on 5432.

It is the machine's own PostgreSQL binaries (``initdb``, ``pg_ctl``) running a second cluster in a temporary
folder on a free loopback port, with trust authentication. Run as root, every command runs as the
``postgres`` user (PostgreSQL refuses to run as root), which owns the cluster's folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.rabbit_node import free_port, port_open


def _bin_dir() -> Path:
    """The newest installed PostgreSQL's binaries (``/usr/lib/postgresql/<version>/bin``)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if not found:
        initdb = shutil.which("initdb")
        if initdb is None:
            raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) on this machine")
        return Path(initdb).parent
    return found[-1].parent


class PgNode:
    """One extra PostgreSQL cluster on loopback. ``with PgNode() as node: node.url; node.restart()``."""

    def __init__(self, *, max_connections: int = 300) -> None:
        self.port = free_port()
        self.bin = _bin_dir()
        self.base = Path(tempfile.mkdtemp(prefix="pg-node-"))
        self.data = self.base / "data"
        self.log_file = self.base / "postgres.log"
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.max_connections = max_connections
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")
        self._initialised = False

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, timeout=timeout, check=False, cwd=self.base)

    def _init(self) -> None:
        done = self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')}")
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.base}'",
            f"max_connections = {self.max_connections}",
            "shared_buffers = 64MB",
            "logging_collector = off",
        ]
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n" + "\n".join(settings) + "\n")
        self._initialised = True

    def start(self, timeout: float = 60.0) -> None:
        if not self._initialised:
            self._init()
        done = self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", str(int(timeout)), "start"
        )
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stderr.decode(errors='replace')}\n{self.logs()}")
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if time.monotonic() > deadline:
                raise TimeoutError(f"PostgreSQL on {self.port} did not open its port within {timeout} s")
            time.sleep(0.1)

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Stop the server: ``fast`` (clients disconnected, clean checkpoint) or ``immediate`` (a crash:
        no checkpoint, the next start replays the WAL). The data stays on disk."""
        if not (self.data / "postmaster.pid").exists():
            return
        self._run(
            "pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", str(int(timeout)), "stop", timeout=timeout + 10
        )

    def crash(self) -> None:
        self.stop("immediate")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def logs(self, tail: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_file.read_text(errors="replace")[-tail:]
        return ""

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
