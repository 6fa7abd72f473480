"""A private RabbitMQ node a test may stop and start at will: a real broker restart that touches no one
else (other tests, other sessions) using the machine's broker on 5672.

It is the machine's own ``rabbitmq-server`` started as a second node (its own name, ports, data folder)
beside the first; durable queues and persistent messages survive :meth:`RabbitNode.restart` exactly as
they would on a production broker.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class RabbitNode:
    """One extra RabbitMQ node on loopback. ``with RabbitNode() as node: node.url; node.restart()``."""

    def __init__(self, *, consumer_timeout_ms: int | None = None) -> None:
        self.name = f"test{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="rabbit-node-"))
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        config = [f"listeners.tcp.default = 127.0.0.1:{self.port}", "loopback_users = none"]
        if consumer_timeout_ms is not None:
            config.append(f"consumer_timeout = {consumer_timeout_ms}")
        (self.base / "rabbitmq.conf").write_text("\n".join(config) + "\n")
        self._env = dict(os.environ)
        self._env.update(
            {
                "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
                "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.base / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
            }
        )
        (self.base / "enabled_plugins").write_text("[].\n")
        # Run as root, rabbitmq-server switches to the rabbitmq user, which must own the node's folder.
        with contextlib.suppress(KeyError, PermissionError):
            shutil.chown(self.base, "rabbitmq", "rabbitmq")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        # Not -detached: the node is this process's child, so it can never outlive the test run by much.
        self._process = subprocess.Popen(
            ["rabbitmq-server"],
            env=self._env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server {self.name} exited with {self._process.returncode}")
            if port_open(self.port) and self._ctl("await_startup", timeout=30).returncode == 0:
                return
            time.sleep(0.3)
        raise TimeoutError(f"rabbitmq node {self.name} did not start within {timeout} s")

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the node (connections are closed as in any broker shutdown); its data stays on disk."""
        if self._process is None:
            return
        self._ctl("stop", timeout=timeout)
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._process = None

    def kill(self) -> None:
        """Kill the node outright (no clean shutdown)."""
        if self._process is None:
            return
        # rabbitmq-server starts the Erlang VM through `su`, in a session of its own: killing our process
        # group alone leaves the broker running. Kill the VM itself by the pid it wrote.
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((self.base / "node.pid").read_text().strip()), 9)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, 9)
        self._process.wait(timeout=30)
        self._process = None
        deadline = time.monotonic() + 30
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _ctl(self, *args: str, timeout: float) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run(
                ["rabbitmqctl", "-n", self.name, *args],
                env=self._env,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(args, 1)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            self.kill()
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> RabbitNode:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
