"""The ``/ws`` endpoint: one socket per tab multiplexing every live feed (the contract's protocol).

Client frames: ``auth``, ``subscribe``, ``unsubscribe``, ``ping``. A bad frame gets an ``error`` frame
and the socket stays open; a client that floods is throttled (``rate_limited`` errors), then closed (1008).
Frames above ``ws_max_frame_bytes`` get a ``frame_too_large`` error; the server closes with 1009 on frames
above its transport limit (``ws_max_size``, four times that).

The endpoint is plain ASGI, mounted in front of the app's routing (:class:`WebSocketEndpoint`): an idle
socket then holds only what the protocol needs, not a framework request object, a dependency exit stack
and a wrapper per middleware. At 10,000 sockets per process that is most of the memory.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from services.gateway.config import Settings
from services.gateway.hub import Connection, Hub
from shared.auth import InvalidTokenError, TokenVerifier

log = logging.getLogger(__name__)

WS_PATH = "/ws"

TOPIC_RE = re.compile(r"^(listings|listing\.(\d{1,18})|user\.(\d{1,18}))$")
CLOSE_POLICY = 1008


def _frame(kind: str, **fields: Any) -> str:
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def _error(code: str, message: str) -> str:
    return _frame("error", code=code, message=message)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def origin_allowed(scope: Scope, allow: set[str]) -> bool:
    origin = _header(scope, b"origin")
    if origin is None or "*" in allow:
        return True  # non-browser clients send no Origin; browsers always do
    origin = origin.rstrip("/")
    host = _header(scope, b"host") or ""
    same_host = origin.split("://", 1)[-1] == host
    return same_host or origin in allow


#: More brackets than any control frame needs (a frame is an object of a few scalar fields).
MAX_BRACKETS = 64

#: ``since`` absent from a frame (the contract's plain subscribe/auth), as opposed to ``since: null``.
_NOT_ASKED = object()


class AsgiSocket:
    """The two calls the hub makes on a socket, straight onto the ASGI ``send`` channel."""

    __slots__ = ("_send",)

    def __init__(self, send: Send) -> None:
        self._send = send

    async def send_text(self, data: str) -> None:
        await self._send({"type": "websocket.send", "text": data})

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


class TokenBucket:
    __slots__ = ("capacity", "rate", "stamp", "tokens")

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

    __slots__ = ("conn", "hub", "settings", "verifier")

    def __init__(self, conn: Connection, hub: Hub, verifier: TokenVerifier, settings: Settings) -> None:
        self.conn, self.hub, self.verifier, self.settings = conn, hub, verifier, settings

    async def handle(self, raw: str) -> None:
        if len(raw) > self.settings.ws_max_frame_bytes:
            self.conn.send(_error("frame_too_large", f"frames are limited to {self.settings.ws_max_frame_bytes} bytes"))
            return
        try:
            # Control frames are flat: refuse deep nesting before the recursive decoder sees it (it would
            # reach the recursion limit, where even the garbage collector's callbacks fail).
            if raw.count("[") + raw.count("{") > MAX_BRACKETS:
                raise ValueError("nested too deeply")
            message = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nesting too deep for the decoder
            self.conn.send(_error("bad_json", "frames must be JSON objects"))
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            self.conn.send(_error("bad_frame", "frames must be JSON objects with a 'type'"))
            return
        kind = message["type"]
        if kind == "ping":
            self.conn.send(_frame("pong"))
        elif kind == "auth":
            await self._auth(message.get("token"), message.get("since", _NOT_ASKED))
        elif kind in ("subscribe", "unsubscribe"):
            self._subscription(kind, message.get("topic"), message.get("since", _NOT_ASKED))
        else:
            self.conn.send(_error("unknown_type", f"unknown frame type {kind[:40]!r}"))

    async def _auth(self, token: object, since: object = _NOT_ASKED) -> None:
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
        self._join(f"user.{principal.id}", since, "authed", user_id=principal.id)

    def _subscription(self, kind: str, topic: object, since: object = _NOT_ASKED) -> None:
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
        self._join(topic, since, "subscribed", topic=topic)

    def _join(self, joined: str, since: object, answer: str, /, **fields: Any) -> None:
        """Subscribe and answer; with ``since`` (the last event id the client saw on the topic) replay what
        came after it, or say ``resync`` when that is no longer remembered. With ``since: null`` (a client that
        tracks its position), the answer carries ``last``, the topic's newest event id, so it knows where it
        stands even on a quiet topic; without ``since`` the answer is exactly the contract's.
        Nothing awaits between subscribing and queueing the replay, so live frames can only follow it.
        """
        if since is _NOT_ASKED or since is None:
            self.hub.subscribe(self.conn, joined)
            last = self.hub.last_event_id(joined) if since is None else None
            self.conn.send(_frame(answer, **fields, **({"last": last} if last is not None else {})))
            return
        missed = self.hub.missed_since(joined, since) if isinstance(since, str) else None
        self.hub.subscribe(self.conn, joined)
        if missed is None:
            self.conn.send(_frame(answer, **fields, resync=True))
            return
        self.conn.send(_frame(answer, **fields, replayed=len(missed)))
        for frame in missed:
            self.conn.send(frame)


class WebSocketEndpoint:
    """ASGI middleware that serves ``/ws`` itself and hands every other request to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == WS_PATH:
            await websocket_endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def websocket_endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    app = scope["app"]
    settings: Settings = app.state.settings
    hub: Hub = app.state.hub
    if (await receive())["type"] != "websocket.connect":
        return
    if not origin_allowed(scope, settings.origin_allow_list):
        await send({"type": "websocket.close", "code": CLOSE_POLICY, "reason": "origin not allowed"})
        return
    await send({"type": "websocket.accept"})
    conn = Connection(AsgiSocket(send), settings.ws_queue_size)
    conn.start()
    hub.register(conn)
    session = Session(conn, hub, app.state.verifier, settings)
    frames = TokenBucket(settings.ws_frames_per_second, settings.ws_frames_burst)
    # Frames refused by the rate limit: a socket that keeps flooding after being told is closed.
    patience = TokenBucket(settings.ws_flood_strikes / 10, settings.ws_flood_strikes)
    try:
        while not conn.closed:
            message = await receive()
            if message["type"] != "websocket.receive":
                break  # websocket.disconnect
            if not frames.take():
                if not patience.take():
                    await conn.shutdown(CLOSE_POLICY, "too many frames")
                    break
                conn.send(_error("rate_limited", "slow down"))
                continue
            text = message.get("text")
            if text is None:
                conn.send(_error("bad_frame", "binary frames are not supported; send JSON text"))
                continue
            await session.handle(text)
    except OSError:  # the transport went away under us (e.g. dropped as too slow)
        pass
    except Exception:
        # A bug in handling one socket's frame costs that socket only (1011), never the process.
        log.exception("closing a socket after an unexpected error")
        await conn.close(1011, "internal error")
    finally:
        hub.unregister(conn)
        await conn.shutdown()
