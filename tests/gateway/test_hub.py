"""Fan-out: a slow socket is dropped without delaying anyone else; frames are encoded once."""

from __future__ import annotations

import asyncio
from typing import Any

from services.gateway.hub import CLOSE_TOO_SLOW, Connection, Hub


class FakeSocket:
    def __init__(self, stalled: bool = False) -> None:
        self.sent: list[str] = []
        self.closed_with: int | None = None
        self.stalled = stalled

    async def send_text(self, text: str) -> None:
        if self.stalled:
            await asyncio.Event().wait()  # never returns: a peer that stopped reading
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = code


async def test_a_slow_socket_is_dropped_and_the_others_get_everything() -> None:
    hub = Hub()
    fast_socks = [FakeSocket() for _ in range(3)]
    slow_sock = FakeSocket(stalled=True)
    conns = [Connection(s, queue_size=8) for s in [*fast_socks, slow_sock]]  # type: ignore[arg-type]
    for conn in conns:
        conn.start()
        hub.register(conn)
        hub.subscribe(conn, "listing.1")
    for i in range(50):
        hub.publish("listing.1", f"frame-{i}")
        await asyncio.sleep(0)
    await asyncio.sleep(0.05)
    for sock in fast_socks:
        assert sock.sent == [f"frame-{i}" for i in range(50)]
    assert slow_sock.closed_with == CLOSE_TOO_SLOW
    assert hub.subscribers("listing.1") == 3 and hub.connections == 3
    for conn in conns:
        await conn.stop()


async def test_publish_shares_one_encoded_frame() -> None:
    hub = Hub()
    socks = [FakeSocket() for _ in range(100)]
    conns: list[Any] = [Connection(s, queue_size=8) for s in socks]  # type: ignore[arg-type]
    for conn in conns:
        conn.start()
        hub.register(conn)
        hub.subscribe(conn, "listings")
    frame = "x" * 1000
    assert hub.publish("listings", frame) == 100
    await asyncio.sleep(0.01)
    assert all(s.sent[0] is frame for s in socks)
    hub.unregister(conns[0])
    assert hub.subscribers("listings") == 99
    for conn in conns:
        await conn.stop()


def test_recent_frames_are_bounded_per_topic_and_in_topics() -> None:
    hub = Hub(recent_per_topic=3, recent_topics=2)
    for i in range(5):
        hub.publish("listing.1", f"f{i}", f"id{i}")
    assert hub.missed_since("listing.1", "id2") == ["f3", "f4"]
    assert hub.missed_since("listing.1", "id0") is None  # fell out of the window: the client must refetch
    hub.publish("listing.2", "g0", "gid0")
    hub.publish("listing.3", "h0", "hid0")  # a third topic evicts the least recently active one
    assert hub.missed_since("listing.1", "id3") is None
    assert hub.missed_since("listing.3", "hid0") == []
