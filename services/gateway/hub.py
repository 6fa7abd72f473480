"""Fan-out of live events to WebSocket subscribers.

Each event is encoded once per topic, whatever the audience. Every socket has a bounded queue and one
writer task; putting a frame on a queue never waits, so a slow socket delays nobody: when its queue is
full it is dropped (close 1013, "try again later") and the client reconnects and refetches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from typing import Any

from fastapi import WebSocket
from prometheus_client import Counter, Gauge, Histogram

log = logging.getLogger(__name__)

open_sockets = Gauge("gateway_open_sockets", "Open WebSocket connections")
subscriptions_gauge = Gauge("gateway_subscriptions", "Topic subscriptions over all sockets")
events_in = Counter("gateway_events_in_total", "Domain events received from the bus", ["type"])
frames_out = Counter("gateway_frames_out_total", "Event frames queued to sockets")
dropped_slow = Counter("gateway_dropped_slow_sockets_total", "Sockets dropped because they could not keep up")
event_lag = Histogram(
    "gateway_event_lag_seconds",
    "From an event's occurred_at to its frames being queued",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

CLOSE_TOO_SLOW = 1013


class Connection:
    """One socket: its subscriptions, its bounded outgoing queue and the task that drains it."""

    def __init__(self, websocket: WebSocket, queue_size: int) -> None:
        self.websocket = websocket
        self.user_id: int | None = None
        self.topics: set[str] = set()
        self._queue: asyncio.Queue[str | None] = asyncio.Queue(maxsize=queue_size)
        self._writer: asyncio.Task[None] | None = None
        self.closed = False

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())

    def send(self, frame: str) -> bool:
        """Queue a frame without waiting; False if the socket is too slow (its queue is full)."""
        if self.closed:
            return True
        try:
            self._queue.put_nowait(frame)
            return True
        except asyncio.QueueFull:
            return False

    async def _write_loop(self) -> None:
        try:
            while True:
                frame = await self._queue.get()
                if frame is None:
                    return
                await self.websocket.send_text(frame)
        except Exception:  # noqa: BLE001 - the peer went away; the reader side cleans up
            self.closed = True

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            await self.websocket.close(code=code, reason=reason)

    async def shutdown(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """Let the writer send what is already queued (an error frame, say), then close the socket."""
        writer = self._writer
        if writer is not None and not writer.done():
            try:
                self._queue.put_nowait(None)
                await asyncio.wait_for(asyncio.shield(writer), timeout)
            except (asyncio.QueueFull, TimeoutError):
                writer.cancel()
        await self.close(code, reason)
        await self.stop()

    async def stop(self) -> None:
        """Stop the writer task (closing the socket is :meth:`close`'s job)."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(BaseException):
                await self._writer


class Hub:
    def __init__(self) -> None:
        self._topics: dict[str, set[Connection]] = defaultdict(set)
        self._connections: set[Connection] = set()

    @property
    def connections(self) -> int:
        return len(self._connections)

    def register(self, conn: Connection) -> None:
        self._connections.add(conn)
        open_sockets.inc()

    def unregister(self, conn: Connection) -> None:
        if conn not in self._connections:
            return
        self._connections.discard(conn)
        open_sockets.dec()
        for topic in list(conn.topics):
            self.unsubscribe(conn, topic)

    def subscribe(self, conn: Connection, topic: str) -> None:
        if topic not in conn.topics:
            conn.topics.add(topic)
            self._topics[topic].add(conn)
            subscriptions_gauge.inc()

    def unsubscribe(self, conn: Connection, topic: str) -> None:
        if topic in conn.topics:
            conn.topics.discard(topic)
            subscribers = self._topics.get(topic)
            if subscribers is not None:
                subscribers.discard(conn)
                if not subscribers:
                    del self._topics[topic]
            subscriptions_gauge.dec()

    def subscribers(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    def publish(self, topic: str, frame: str) -> int:
        """Queue an encoded frame to every subscriber of ``topic``; return how many got it."""
        subscribers = self._topics.get(topic)
        if not subscribers:
            return 0
        delivered = 0
        too_slow: list[Connection] = []
        for conn in subscribers:
            if conn.send(frame):
                delivered += 1
            else:
                too_slow.append(conn)
        frames_out.inc(delivered)
        for conn in too_slow:
            dropped_slow.inc()
            log.info("dropping a socket that fell %d frames behind", conn._queue.maxsize)
            self.unregister(conn)
            asyncio.get_running_loop().create_task(conn.close(CLOSE_TOO_SLOW, "too slow; reconnect and refetch"))
        return delivered

    async def close_all(self, code: int = 1001, reason: str = "server shutting down") -> None:
        conns = list(self._connections)
        for conn in conns:
            self.unregister(conn)
        await asyncio.gather(*(c.close(code, reason) for c in conns), return_exceptions=True)


def encode_event(topic: str, event: str, event_id: str, data: dict[str, Any]) -> str:
    import json

    return json.dumps(
        {"type": "event", "topic": topic, "event": event, "id": event_id, "data": data}, separators=(",", ":")
    )
