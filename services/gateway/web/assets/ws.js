// The one WebSocket of this tab (/ws): auth frame, topic subscriptions with reference counts,
// ping/pong liveness, reconnect with exponential backoff + jitter, and resume: after a drop each topic
// (and the private one, through the auth frame) is resubscribed with `since` = the last event id seen on
// it, so the server replays what we missed. Where it cannot (it no longer remembers that far back, or we
// never knew our position), a "resync" signal tells pages to refetch whatever they show.

import { freshAccessToken, isLoggedIn, refreshTokens } from './api.js';

const PING_EVERY = 25_000;
const PONG_TIMEOUT = 10_000;
const MAX_BACKOFF = 15_000;

let socket = null;
let attempt = 0;
let reconnectTimer = null;
let pingTimer = null;
let pongTimer = null;
let connectedOnce = false;
let stopped = true;
let authRetried = false;
let authedUserId = null;

const topicCounts = new Map(); // topic -> number of subscribers
const topicHandlers = new Map(); // topic -> Set(fn(event, data, frame))
const privateHandlers = new Set(); // fn(event, data, frame) for user.<me>
const resyncHandlers = new Set();
const statusHandlers = new Set();
const seenEvents = new Set(); // event ids, for at-least-once delivery
const seenOrder = [];
const PRIVATE = 'user'; // key of the private topic in lastIds (its name depends on who is logged in)
const lastIds = new Map(); // topic (or PRIVATE) -> id of the last event seen on it: where to resume from
let resyncSignalled = false; // at most one resync per reconnection

function setStatus(status) {
  for (const fn of statusHandlers) fn(status);
}

/** fn('connecting' | 'open' | 'reconnecting' | 'offline') */
export function onStatus(fn) {
  statusHandlers.add(fn);
  return () => statusHandlers.delete(fn);
}

/** fn() after the socket comes back from a drop: refetch what you show. */
export function onResync(fn) {
  resyncHandlers.add(fn);
  return () => resyncHandlers.delete(fn);
}

/** Events on the private topic user.<me> (chat.message, chat.unread, bid.outbid, auction.won, ...). */
export function onPrivate(fn) {
  privateHandlers.add(fn);
  return () => privateHandlers.delete(fn);
}

/** Subscribe fn(event, data, frame) to a public topic; returns the unsubscribe function. */
export function subscribe(topic, fn) {
  if (!topicHandlers.has(topic)) topicHandlers.set(topic, new Set());
  topicHandlers.get(topic).add(fn);
  const count = (topicCounts.get(topic) || 0) + 1;
  topicCounts.set(topic, count);
  if (count === 1) sendFrame({ type: 'subscribe', topic, since: null }); // since: null asks for our position (last)
  return () => {
    const handlers = topicHandlers.get(topic);
    if (!handlers || !handlers.delete(fn)) return;
    const left = (topicCounts.get(topic) || 1) - 1;
    if (left <= 0) {
      topicCounts.delete(topic);
      topicHandlers.delete(topic);
      lastIds.delete(topic); // a later subscriber starts afresh (it fetches what it shows)
      sendFrame({ type: 'unsubscribe', topic });
    } else {
      topicCounts.set(topic, left);
    }
  };
}

export function authedUser() {
  return authedUserId;
}

function sendFrame(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

function remember(id) {
  if (!id) return false;
  if (seenEvents.has(id)) return true;
  seenEvents.add(id);
  seenOrder.push(id);
  if (seenOrder.length > 1000) seenEvents.delete(seenOrder.shift());
  return false;
}

function positionKey(topic) {
  return topic.startsWith('user.') ? PRIVATE : topic;
}

function dispatch(frame) {
  const topic = String(frame.topic || '');
  if (frame.id) lastIds.set(positionKey(topic), String(frame.id));
  // The same event reaches several topics (listing.<id> and listings) with one id: dedupe per topic.
  if (frame.id && remember(`${topic} ${frame.id}`)) return;
  const data = frame.data || {};
  const targets = topic.startsWith('user.') ? privateHandlers : topicHandlers.get(topic);
  if (!targets) return;
  for (const fn of [...targets]) {
    try { fn(frame.event, data, frame); } catch (err) { console.error('handler failed', err); }
  }
}

async function sendAuth(resume = false) {
  const token = await freshAccessToken();
  if (!token) return;
  const since = resume ? lastIds.get(PRIVATE) : undefined;
  sendFrame({ type: 'auth', token, since: since || null }); // since: null asks for our position (last)
}

function signalResync() {
  if (resyncSignalled) return;
  resyncSignalled = true;
  for (const fn of [...resyncHandlers]) {
    try { fn(); } catch (err) { console.error(err); }
  }
}

// The answer to a subscribe or auth frame: `last` (our position on a topic we just joined), or after a
// resume either `replayed` (the missed frames follow) or `resync` (they are gone: refetch).
function onJoined(key, frame) {
  if (frame.resync) {
    signalResync();
  } else if (frame.last && !lastIds.has(key)) {
    lastIds.set(key, String(frame.last));
  }
}

function onMessage(event) {
  let frame;
  try { frame = JSON.parse(event.data); } catch { return; }
  clearTimeout(pongTimer);
  switch (frame.type) {
    case 'event':
      dispatch(frame);
      break;
    case 'authed':
      authedUserId = frame.user_id;
      authRetried = false;
      onJoined(PRIVATE, frame);
      break;
    case 'subscribed':
      onJoined(String(frame.topic || ''), frame);
      break;
    case 'error':
      // A rejected auth frame: the token may just have expired. Refresh once and try again.
      if (isLoggedIn() && authedUserId === null && !authRetried && /auth|token/i.test(`${frame.code} ${frame.message}`)) {
        authRetried = true;
        refreshTokens().then((ok) => { if (ok) sendAuth(); });
      } else {
        console.warn('ws error', frame.code, frame.message);
      }
      break;
    default:
      break; // pong, subscribed, ...
  }
}

function heartbeat() {
  clearInterval(pingTimer);
  pingTimer = setInterval(() => {
    if (!sendFrame({ type: 'ping' })) return;
    clearTimeout(pongTimer);
    // No answer at all: the connection is dead even if the browser has not noticed. Start over.
    pongTimer = setTimeout(() => { if (socket) socket.close(4000, 'ping timeout'); }, PONG_TIMEOUT);
  }, PING_EVERY);
}

function connect() {
  clearTimeout(reconnectTimer);
  if (stopped) return;
  setStatus(connectedOnce ? 'reconnecting' : 'connecting');
  const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
  let ws;
  try {
    ws = new WebSocket(url);
  } catch {
    scheduleReconnect();
    return;
  }
  socket = ws;
  authedUserId = null;
  ws.addEventListener('open', async () => {
    if (socket !== ws) return;
    const wasReconnect = connectedOnce;
    connectedOnce = true;
    attempt = 0;
    resyncSignalled = false;
    let unknownPosition = false;
    for (const topic of topicCounts.keys()) {
      const since = wasReconnect ? lastIds.get(topic) : undefined;
      if (wasReconnect && !since) unknownPosition = true;
      sendFrame({ type: 'subscribe', topic, since: since || null }); // since: null asks for our position (last)
    }
    if (isLoggedIn()) {
      if (wasReconnect && !lastIds.has(PRIVATE)) unknownPosition = true;
      await sendAuth(wasReconnect);
    }
    heartbeat();
    setStatus('open');
    // A topic we never learnt our position on cannot be resumed: whatever it carried meanwhile is gone.
    if (unknownPosition) signalResync();
  });
  ws.addEventListener('message', (event) => { if (socket === ws) onMessage(event); });
  ws.addEventListener('close', () => {
    if (socket !== ws) return;
    socket = null;
    authedUserId = null;
    clearInterval(pingTimer);
    clearTimeout(pongTimer);
    scheduleReconnect();
  });
  ws.addEventListener('error', () => { /* a close event follows */ });
}

function scheduleReconnect() {
  if (stopped) return;
  clearTimeout(reconnectTimer);
  attempt += 1;
  const base = Math.min(MAX_BACKOFF, 500 * 2 ** (attempt - 1));
  const delay = base / 2 + Math.random() * (base / 2);
  setStatus(navigator.onLine === false ? 'offline' : 'reconnecting');
  reconnectTimer = setTimeout(connect, delay);
}

export function start() {
  if (!stopped) return;
  stopped = false;
  connect();
}

/** Reconnect now with the current session (after log in / log out): a new socket, a fresh auth. */
export function restart() {
  if (stopped) return start();
  const old = socket;
  socket = null;
  if (old) old.close(1000, 'session changed');
  lastIds.delete(PRIVATE); // another account (or none): its private feed starts afresh
  clearInterval(pingTimer);
  clearTimeout(pongTimer);
  attempt = 0;
  connect();
  // Not a drop: the caller refetches what it needs. Mark as fresh so no resync fires on this open.
  connectedOnce = false;
}

window.addEventListener('online', () => {
  if (!stopped && !socket) {
    attempt = 0;
    connect();
  }
});
