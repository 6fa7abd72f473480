"""Fan-out of live events to WebSocket subscribers.

Each event is encoded once per topic, whatever the audience. Every socket has a bounded queue and one
writer task; putting a frame on a queue never waits, so a slow socket delays nobody: when its queue is
full it is dropped (close 1013, "try again later") and the client reconnects and refetches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, defaultdict, deque
from typing import Any, Protocol

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


class SocketLike(Protocol):
    """What a connection needs of its socket: the ASGI socket of ws.py, or a test double."""

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class Connection:
    """One socket: its subscriptions, its bounded outgoing queue and the task that drains it.

    The queue is a plain deque plus one future to wake the writer: an idle socket costs a few hundred
    bytes here (an ``asyncio.Queue`` is three deques and more), which matters at 10,000 sockets.
    """

    __slots__ = ("_frames", "_limit", "_wakeup", "_writer", "closed", "topics", "user_id", "websocket")

    def __init__(self, websocket: SocketLike, queue_size: int) -> None:
        self.websocket = websocket
        self.user_id: int | None = None
        self.topics: set[str] = set()
        self.closed = False
        self._frames: deque[str | None] = deque()
        self._limit = queue_size
        self._wakeup: asyncio.Future[None] | None = None
        self._writer: asyncio.Task[None] | None = None

    @property
    def queue_size(self) -> int:
        return self._limit

    @property
    def queued(self) -> int:
        return len(self._frames)

    def start(self) -> None:
        self._writer = asyncio.create_task(self._write_loop())

    def send(self, frame: str) -> bool:
        """Queue a frame without waiting; False if the socket is too slow (its queue is full)."""
        if self.closed:
            return True
        if len(self._frames) >= self._limit:
            return False
        self._frames.append(frame)
        self._wake()
        return True

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _write_loop(self) -> None:
        frames = self._frames
        loop = asyncio.get_running_loop()
        try:
            while True:
                while not frames:
                    self._wakeup = loop.create_future()
                    await self._wakeup
                self._wakeup = None
                frame = frames.popleft()
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
            self._frames.append(None)  # the end marker may exceed the bound by one
            self._wake()
            try:
                await asyncio.wait_for(asyncio.shield(writer), timeout)
            except TimeoutError:
                writer.cancel()
        await self.close(code, reason)
        await self.stop()

    async def stop(self) -> None:
        """Stop the writer task (closing the socket is :meth:`close`'s job)."""
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(BaseException):
                await self._writer


#: Frames kept per topic for clients that resume after a drop, and how many topics keep them (LRU).
RECENT_PER_TOPIC = 32
RECENT_TOPICS = 2000


class Hub:
    def __init__(self, recent_per_topic: int = RECENT_PER_TOPIC, recent_topics: int = RECENT_TOPICS) -> None:
        self._topics: dict[str, set[Connection]] = defaultdict(set)
        self._connections: set[Connection] = set()
        # The last frames of each recently active topic, so a client that reconnects can ask for what it missed.
        self._recent: OrderedDict[str, deque[tuple[str, str]]] = OrderedDict()
        self._recent_per_topic = recent_per_topic
        self._recent_topics = recent_topics

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

    def remember(self, topic: str, event_id: str, frame: str) -> None:
        recent = self._recent.get(topic)
        if recent is None:
            recent = self._recent[topic] = deque(maxlen=self._recent_per_topic)
            if len(self._recent) > self._recent_topics:
                self._recent.popitem(last=False)
        else:
            self._recent.move_to_end(topic)
        recent.append((event_id, frame))

    def last_event_id(self, topic: str) -> str | None:
        """The id of the newest remembered frame of ``topic``: where a new subscriber starts from."""
        recent = self._recent.get(topic)
        return recent[-1][0] if recent else None

    def missed_since(self, topic: str, event_id: str) -> list[str] | None:
        """The frames of ``topic`` after ``event_id``; None when that event is no longer remembered."""
        recent = self._recent.get(topic, ())
        for index, (seen_id, _) in enumerate(recent):
            if seen_id == event_id:
                return [frame for _, frame in list(recent)[index + 1 :]]
        return None

    def publish(self, topic: str, frame: str, event_id: str | None = None) -> int:
        """Queue an encoded frame to every subscriber of ``topic``; return how many got it."""
        if event_id is not None:
            self.remember(topic, event_id, frame)
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
            log.info("dropping a socket that fell %d frames behind", conn.queue_size)
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
