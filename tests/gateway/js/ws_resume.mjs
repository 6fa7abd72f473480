// Drives services/gateway/web/assets/ws.js in Node with a fake WebSocket and a stub api.js, and checks
// what it sends after a drop (resubscribe with `since`, auth with `since`) and when it signals resync.
// Usage: node ws_resume.mjs <folder holding ws.js and the stub api.js>; prints "ok" or throws.

import assert from 'node:assert/strict';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const sockets = [];
class FakeWebSocket {
  static OPEN = 1;
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.listeners = {};
    sockets.push(this);
  }
  addEventListener(kind, fn) { (this.listeners[kind] ||= []).push(fn); }
  async emit(kind, event = {}) { for (const fn of this.listeners[kind] || []) await fn(event); }
  send(text) { this.sent.push(JSON.parse(text)); }
  close() { this.readyState = 3; this.emit('close', {}); }
  async open() { this.readyState = 1; await this.emit('open'); }
  receive(frame) { return this.emit('message', { data: JSON.stringify(frame) }); }
}

globalThis.WebSocket = FakeWebSocket;
globalThis.location = { protocol: 'http:', host: 'localhost' };
globalThis.navigator = { onLine: true };
globalThis.window = { addEventListener() {} };

const ws = await import(pathToFileURL(path.join(process.argv[2], 'ws.js')).href);
const until = async (check) => {
  for (let i = 0; i < 100 && !check(); i += 1) await new Promise((r) => setTimeout(r, 50));
  assert.ok(check(), 'timed out');
};
const drop = async () => {
  const count = sockets.length;
  sockets.at(-1).readyState = 3;
  await sockets.at(-1).emit('close', {});
  await until(() => sockets.length > count); // the backoff timer opens a new socket
  await sockets.at(-1).open();
  await new Promise((r) => setTimeout(r, 20)); // the async auth send
  return sockets.at(-1);
};

let resyncs = 0;
ws.onResync(() => { resyncs += 1; });
const seen = [];
ws.onPrivate((event) => seen.push(`private ${event}`));
ws.start();
let sock = sockets.at(-1);
await sock.open();
await new Promise((r) => setTimeout(r, 20));
assert.deepEqual(sock.sent, [{ type: 'auth', token: 'T', since: null }]);
await sock.receive({ type: 'authed', user_id: 3, last: 'p0' });

ws.subscribe('listing.1', (event, data) => seen.push(`listing.1 ${event} ${data.n}`));
ws.subscribe('listing.2', () => {});
ws.subscribe('listings', () => {});
assert.deepEqual(sock.sent.slice(1), [
  { type: 'subscribe', topic: 'listing.1', since: null },
  { type: 'subscribe', topic: 'listing.2', since: null },
  { type: 'subscribe', topic: 'listings', since: null },
]);
await sock.receive({ type: 'subscribed', topic: 'listing.1' }); // a topic that never carried anything
await sock.receive({ type: 'subscribed', topic: 'listing.2', last: 'b0' }); // a quiet one: its position
await sock.receive({ type: 'subscribed', topic: 'listings', last: 'c0' });
await sock.receive({ type: 'event', topic: 'listing.1', event: 'bid.placed', id: 'a1', data: { n: 1 } });
await sock.receive({ type: 'event', topic: 'user.3', event: 'bid.outbid', id: 'p1', data: {} });

// A drop: every topic resumes from its last event id, the private one through the auth frame.
sock = await drop();
assert.deepEqual(sock.sent, [
  { type: 'subscribe', topic: 'listing.1', since: 'a1' },
  { type: 'subscribe', topic: 'listing.2', since: 'b0' },
  { type: 'subscribe', topic: 'listings', since: 'c0' },
  { type: 'auth', token: 'T', since: 'p1' },
]);
// Everything replayed: the pages need not refetch, and the replayed frames reach their handlers once.
await sock.receive({ type: 'subscribed', topic: 'listing.1', replayed: 1 });
await sock.receive({ type: 'event', topic: 'listing.1', event: 'bid.placed', id: 'a2', data: { n: 2 } });
await sock.receive({ type: 'event', topic: 'listing.1', event: 'bid.placed', id: 'a2', data: { n: 2 } });
await sock.receive({ type: 'subscribed', topic: 'listing.2', replayed: 0 });
await sock.receive({ type: 'subscribed', topic: 'listings', replayed: 0 });
await sock.receive({ type: 'authed', user_id: 3, replayed: 0 });
assert.equal(resyncs, 0);
assert.deepEqual(seen, ['listing.1 bid.placed 1', 'private bid.outbid', 'listing.1 bid.placed 2']);

// Another drop, and this time the server no longer remembers one topic: one resync, however many say so.
sock = await drop();
assert.deepEqual(sock.sent[0], { type: 'subscribe', topic: 'listing.1', since: 'a2' });
await sock.receive({ type: 'subscribed', topic: 'listing.1', resync: true });
await sock.receive({ type: 'subscribed', topic: 'listing.2', resync: true });
await sock.receive({ type: 'authed', user_id: 3, replayed: 0 });
assert.equal(resyncs, 1);

// A topic unsubscribed and subscribed again starts afresh (no since), and one whose position is
// unknown at a reconnection makes the pages refetch at once.
const off = ws.subscribe('listing.9', () => {});
await sock.receive({ type: 'subscribed', topic: 'listing.9' });
sock = await drop();
assert.deepEqual(sock.sent.find((f) => f.topic === 'listing.9'), { type: 'subscribe', topic: 'listing.9', since: null });
assert.equal(resyncs, 2);
off();
assert.deepEqual(sock.sent.at(-1), { type: 'unsubscribe', topic: 'listing.9' });
console.log('ok');
process.exit(0);
