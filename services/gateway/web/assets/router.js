// A tiny History-API router. Each page module exports mount(ctx) and may return {update(ctx)} to take a
// change of URL within the same page (e.g. new filters) without being rebuilt.

import * as ws from './ws.js';
import { isLoggedIn, onSessionChange } from './api.js';
import { everySecond } from './ticker.js';

const routes = [];
let current = null; // {route, ctx, instance}
let afterNavigate = () => {};
let firstRender = true;

/** route(pattern, loader, {auth}) - loader is () => import('./page-x.js') */
export function route(pattern, loader, options = {}) {
  routes.push({ pattern, loader, auth: Boolean(options.auth) });
}

export function onNavigate(fn) {
  afterNavigate = fn;
}

export function navigate(path, { replace = false } = {}) {
  const target = new URL(path, location.href);
  if (target.origin !== location.origin) {
    location.assign(target.href);
    return;
  }
  const href = target.pathname + target.search + target.hash;
  if (href === location.pathname + location.search + location.hash && !replace) {
    render();
    return;
  }
  if (replace) history.replaceState(null, '', href);
  else history.pushState(null, '', href);
  render();
}

function match(pathname) {
  for (const r of routes) {
    const m = pathname.match(r.pattern);
    if (m) return { route: r, params: m.slice(1) };
  }
  return null;
}

function makeContext(root, params) {
  const controller = new AbortController();
  const cleanups = [];
  const add = (fn) => { cleanups.push(fn); return fn; };
  return {
    root,
    params,
    get url() { return new URL(location.href); },
    signal: controller.signal,
    get alive() { return !controller.signal.aborted; },
    subscribe: (topic, fn) => add(ws.subscribe(topic, fn)),
    onPrivate: (fn) => add(ws.onPrivate(fn)),
    onResync: (fn) => add(ws.onResync(fn)),
    // Only a change of who is logged in (new tokens for the same user or a profile edit are not one).
    onSession: (fn) => add(onSessionChange((session, reason) => {
      if (reason !== 'refresh' && reason !== 'user') fn(session, reason);
    })),
    everySecond: (fn) => add(everySecond(fn)),
    cleanup: add,
    navigate,
    destroy() {
      controller.abort();
      for (const fn of cleanups.reverse()) {
        try { fn(); } catch (err) { console.error(err); }
      }
    },
  };
}

export async function render() {
  const root = document.getElementById('main');
  const url = new URL(location.href);
  const found = match(url.pathname);
  if (found && found.route.auth && !isLoggedIn()) {
    navigate(`/login?next=${encodeURIComponent(url.pathname + url.search)}`, { replace: true });
    return;
  }
  // Same page, new parameters: let the page update itself if it can.
  if (found && current && current.route === found.route && current.instance && current.instance.update) {
    current.params = found.params;
    current.ctx.params = found.params;
    current.instance.update(current.ctx);
    afterNavigate({ path: url.pathname, focus: false });
    return;
  }
  if (current) current.ctx.destroy();
  current = null;
  const focus = !firstRender;
  firstRender = false;
  if (!found) {
    const { mountNotFound } = await import('./page-misc.js');
    const ctx = makeContext(root, []);
    current = { route: null, ctx, params: [], instance: null };
    mountNotFound(ctx);
    afterNavigate({ path: url.pathname, focus });
    return;
  }
  const ctx = makeContext(root, found.params);
  current = { route: found.route, ctx, params: found.params, instance: null };
  root.replaceChildren();
  let module;
  try {
    module = await found.route.loader();
  } catch (err) {
    console.error(err);
    root.textContent = 'This page failed to load. Reload to try again.';
    return;
  }
  if (!ctx.alive) return;
  window.scrollTo(0, 0);
  current.instance = module.mount(ctx) || null;
  afterNavigate({ path: url.pathname, focus });
}

/** Same-origin links are handled here unless they point at the API, media, assets or open elsewhere. */
function onClick(event) {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const a = event.target.closest('a[href]');
  if (!a || a.target === '_blank' || a.hasAttribute('download')) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin) return;
  if (/^\/(api|media|assets|ws)(\/|$)/.test(url.pathname)) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
}

export function startRouter() {
  document.addEventListener('click', onClick);
  window.addEventListener('popstate', () => render());
  render();
}
