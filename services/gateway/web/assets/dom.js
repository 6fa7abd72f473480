// DOM helpers. User-supplied text only ever goes in through text nodes: there is no innerHTML here.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * h('a', {href: '/x', class: 'btn', on: {click: fn}}, 'text', child, [more])
 * Strings become text nodes; null/undefined/false children are skipped.
 * `text` sets textContent; `dataset` fills data-*; other keys become attributes (never `style`).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'on') {
      for (const [event, fn] of Object.entries(value)) el.addEventListener(event, fn);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'class') {
      el.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    } else if (key === 'style' || key.startsWith('on')) {
      throw new Error(`h(): attribute ${key} is not allowed`);
    } else if (key === 'value' || key === 'checked' || key === 'selected' || key === 'disabled') {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

export function setText(el, value) {
  el.textContent = value === null || value === undefined ? '' : String(value);
}

// ---------- icons (simple stroked SVG paths, drawn here) ----------
const ICONS = {
  grid: 'M4 4h6v6H4zM14 4h6v6h-6zM4 14h6v6H4zM14 14h6v6h-6z',
  clock: 'M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18zM12 7v5l3 2',
  tag: 'M3 12V3h9l9 9-9 9zM7.5 7.5h.01',
  gavel: 'M14 4l6 6M11 7l6 6M12.5 5.5l-5 5M4 20l7-7M3 21h8',
  box: 'M3 7l9-4 9 4-9 4zM3 7v10l9 4 9-4V7M12 11v10',
  trophy: 'M8 4h8v5a4 4 0 0 1-8 0zM8 6H4a3 3 0 0 0 4 4M16 6h4a3 3 0 0 1-4 4M12 13v4M8 21h8M10 17h4v4h-4z',
  inbox: 'M3 13l3-8h12l3 8v6H3zM3 13h5l1 3h6l1-3h5',
  eye: 'M2 12s4-7 10-7 10 7 10 7-4 7-10 7S2 12 2 12zM12 9a3 3 0 1 0 0 6a3 3 0 1 0 0-6z',
  pencil: 'M4 20h4L19 9l-4-4L4 16zM13.5 6.5l4 4',
  search: 'M11 4a7 7 0 1 0 0 14a7 7 0 1 0 0-14zM20 20l-4-4',
  send: 'M4 12l16-8-6 16-2-6zM12 14l8-10',
  user: 'M12 4a4 4 0 1 0 0 8a4 4 0 1 0 0-8zM4 21c1-4 4-6 8-6s7 2 8 6',
  logout: 'M15 4h4v16h-4M10 8l-4 4 4 4M6 12h10',
};

export function icon(name, label) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('class', 'icon');
  if (label) {
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
  } else {
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
  }
  const path = document.createElementNS(SVG_NS, 'path');
  path.setAttribute('d', ICONS[name] || '');
  svg.append(path);
  return svg;
}

// ---------- formatting ----------
const money = new Intl.NumberFormat('en-US', { style: 'currency', currency: 'USD' });

/** Money arrives as a decimal string ("12.50"); it is only turned into a number to display it. */
export function formatMoney(value) {
  if (value === null || value === undefined || value === '') return '—';
  const n = Number(value);
  return Number.isFinite(n) ? money.format(n) : String(value);
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium' });

export function formatDateTime(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : dateTime.format(d);
}

export function formatDate(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : dateOnly.format(d);
}

/** Short stamp for chat lists: the time today, otherwise the date. */
export function formatStamp(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toDateString() === new Date().toDateString() ? timeOnly.format(d) : dateTime.format(d);
}

/** Milliseconds left -> "2d 03h 04m 05s" (leading zero units dropped). */
export function formatDuration(ms) {
  if (ms <= 0) return '0s';
  const total = Math.floor(ms / 1000);
  const d = Math.floor(total / 86400);
  const hh = Math.floor((total % 86400) / 3600);
  const mm = Math.floor((total % 3600) / 60);
  const ss = total % 60;
  const pad = (n) => String(n).padStart(2, '0');
  if (d > 0) return `${d}d ${pad(hh)}h ${pad(mm)}m`;
  if (hh > 0) return `${hh}h ${pad(mm)}m ${pad(ss)}s`;
  if (mm > 0) return `${mm}m ${pad(ss)}s`;
  return `${ss}s`;
}

export function pluralize(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

/** Avatar <img> with a text alternative; falls back to the default avatar if the file fails. */
export function avatar(url, name, size = 'sm') {
  const img = h('img', {
    class: `avatar avatar-${size}`,
    src: url || '/media/avatars/default.svg',
    alt: name ? `${name}'s avatar` : '',
    loading: 'lazy',
    width: { sm: 32, md: 44, lg: 112 }[size],
    height: { sm: 32, md: 44, lg: 112 }[size],
  });
  img.addEventListener('error', () => {
    if (!img.src.endsWith('/media/avatars/default.svg')) img.src = '/media/avatars/default.svg';
  }, { once: true });
  return img;
}

export function listingImage(url, alt, cls) {
  const img = h('img', { src: url || '/assets/placeholder.svg', alt: url ? alt : '', class: cls, loading: 'lazy' });
  img.addEventListener('error', () => { img.src = '/assets/placeholder.svg'; }, { once: true });
  return img;
}

/**
 * Text with links: http(s) URLs and site paths like /listings/42 become anchors, everything else stays
 * text nodes. Anchors get their href and text set as properties, so nothing is parsed as HTML.
 */
export function linkify(text) {
  const frag = document.createDocumentFragment();
  const pattern = /(https?:\/\/[^\s<>"']+|\/listings\/\d+)/g;
  let last = 0;
  for (const match of String(text).matchAll(pattern)) {
    let url = match[0].replace(/[.,;:!?)]+$/, '');
    if (match.index > last) frag.append(document.createTextNode(text.slice(last, match.index)));
    const a = document.createElement('a');
    let href = url;
    try {
      const parsed = new URL(url, location.origin);
      if (parsed.origin === location.origin) href = parsed.pathname + parsed.search + parsed.hash;
      else { a.rel = 'noopener noreferrer'; a.target = '_blank'; }
    } catch {
      href = null;
    }
    if (href && /^(https?:\/\/|\/)/.test(href)) {
      a.href = href;
      a.textContent = url;
      frag.append(a);
    } else {
      frag.append(document.createTextNode(url));
    }
    last = match.index + url.length;
  }
  if (last < String(text).length) frag.append(document.createTextNode(String(text).slice(last)));
  return frag;
}

/** A random key for Idempotency-Key headers (crypto.randomUUID needs a secure context; this does not). */
export function randomKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

let idCounter = 0;
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

/**
 * Run fn (which rebuilds part of root); if focus was inside root and got lost, put it on root's <h1>
 * so keyboard and screen-reader users are not dropped at the top of the document.
 */
export function keepingFocus(root, fn) {
  const active = document.activeElement;
  const had = active && active !== document.body && root.contains(active);
  fn();
  if (had && !root.contains(document.activeElement)) {
    const heading = root.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    }
  }
}
