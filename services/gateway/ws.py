"""The ``/ws`` endpoint: one socket per tab multiplexing every live feed (the contract's protocol).

Client frames: ``auth``, ``subscribe``, ``unsubscribe``, ``ping``. A bad frame gets an ``error`` frame
and the socket stays open; a client that floods is throttled, then closed (1008).
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from services.gateway.config import Settings
from services.gateway.hub import Connection, Hub
from shared.auth import InvalidTokenError, TokenVerifier

log = logging.getLogger(__name__)

router = APIRouter()

TOPIC_RE = re.compile(r"^(listings|listing\.(\d{1,18})|user\.(\d{1,18}))$")
CLOSE_POLICY = 1008


def _frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def _error(code: str, message: str) -> str:
    return _frame("error", code=code, message=message)


def origin_allowed(websocket: WebSocket, allow: set[str]) -> bool:
    origin = websocket.headers.get("origin")
    if origin is None or "*" in allow:
        return True  # non-browser clients send no Origin; browsers always do
    origin = origin.rstrip("/")
    host = websocket.headers.get("host", "")
    same_host = origin.split("://", 1)[-1] == host
    return same_host or origin in allow


class TokenBucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.capacity, self.tokens, self.stamp = rate, burst, burst, time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Session:
    """The protocol state of one socket."""

    def __init__(self, conn: Connection, hub: Hub, verifier: TokenVerifier, settings: Settings) -> None:
        self.conn, self.hub, self.verifier, self.settings = conn, hub, verifier, settings

    async def handle(self, raw: str) -> None:
        if len(raw) > self.settings.ws_max_frame_bytes:
            self.conn.send(_error("frame_too_large", f"frames are limited to {self.settings.ws_max_frame_bytes} bytes"))
            return
        try:
            message = json.loads(raw)
        except ValueError:
            self.conn.send(_error("bad_json", "frames must be JSON objects"))
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self.conn.send(_error("bad_frame", "frames must be JSON objects with a 'type'"))
            return
        kind = message["type"]
        if kind == "ping":
            self.conn.send(_frame("pong"))
        elif kind == "auth":
            await self._auth(message.get("token"))
        elif kind in ("subscribe", "unsubscribe"):
            self._subscription(kind, message.get("topic"), message.get("since"))
        else:
            self.conn.send(_error("unknown_type", f"unknown frame type {kind[:40]!r}"))

    async def _auth(self, token: object) -> None:
        if not isinstance(token, str) or not token or len(token) > 8192:
            self.conn.send(_error("invalid_token", "auth needs a 'token'"))
            return
        try:
            principal = await self.verifier.principal(token)
        except InvalidTokenError as exc:
            self.conn.send(_error("invalid_token", str(exc)))
            return
        previous = self.conn.user_id
        if previous is not None and previous != principal.id:
            # A different account on the same socket: drop the other's private topic first.
            self.hub.unsubscribe(self.conn, f"user.{previous}")
        self.conn.user_id = principal.id
        self.hub.subscribe(self.conn, f"user.{principal.id}")
        self.conn.send(_frame("authed", user_id=principal.id))

    def _subscription(self, kind: str, topic: object, since: object = None) -> None:
        match = TOPIC_RE.fullmatch(topic) if isinstance(topic, str) else None
        if match is None:
            self.conn.send(_error("unknown_topic", "topics are 'listings', 'listing.<id>' or 'user.<id>'"))
            return
        assert isinstance(topic, str)
        if kind == "unsubscribe":
            if topic == f"user.{self.conn.user_id}":
                self.conn.send(_error("forbidden_topic", "your private topic stays while you are authenticated"))
                return
            self.hub.unsubscribe(self.conn, topic)
            self.conn.send(_frame("unsubscribed", topic=topic))
            return
        if match.group(3) is not None and (self.conn.user_id is None or int(match.group(3)) != self.conn.user_id):
            self.conn.send(_error("forbidden_topic", "a private topic belongs to its user only"))
            return
        if topic not in self.conn.topics and len(self.conn.topics) >= self.settings.ws_max_subscriptions:
            self.conn.send(_error("too_many_subscriptions", "unsubscribe from something first"))
            return
        if since is None:
            self.hub.subscribe(self.conn, topic)
            self.conn.send(_frame("subscribed", topic=topic))
            return
        # Resume: replay what this topic carried after the client's last event id, or tell it to refetch.
        # Nothing awaits between subscribing and queueing the replay, so live frames can only come after it.
        missed = self.hub.missed_since(topic, since) if isinstance(since, str) else None
        self.hub.subscribe(self.conn, topic)
        if missed is None:
            self.conn.send(_frame("subscribed", topic=topic, resync=True))
            return
        self.conn.send(_frame("subscribed", topic=topic, replayed=len(missed)))
        for frame in missed:
            self.conn.send(frame)


@router.websocket("/ws")
async def websocket_endpoint(websocket: WebSocket) -> None:
    app = websocket.app
    settings: Settings = app.state.settings
    hub: Hub = app.state.hub
    if not origin_allowed(websocket, settings.origin_allow_list):
        await websocket.close(code=CLOSE_POLICY, reason="origin not allowed")
        return
    await websocket.accept()
    conn = Connection(websocket, settings.ws_queue_size)
    conn.start()
    hub.register(conn)
    session = Session(conn, hub, app.state.verifier, settings)
    bucket = TokenBucket(settings.ws_frames_per_second, settings.ws_frames_per_second * 2)
    strikes = 0
    try:
        while not conn.closed:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            if not bucket.take():
                strikes += 1
                if strikes > settings.ws_frames_per_second * 5:
                    await conn.shutdown(CLOSE_POLICY, "too many frames")
                    break
                conn.send(_error("rate_limited", "slow down"))
                continue
            text = message.get("text")
            if text is None:
                conn.send(_error("bad_frame", "binary frames are not supported; send JSON text"))
                continue
            await session.handle(text)
    except WebSocketDisconnect:
        pass
    except RuntimeError:  # receive after the socket was closed under us (e.g. dropped as too slow)
        pass
    finally:
        hub.unregister(conn)
        await conn.shutdown()
