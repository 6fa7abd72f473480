// HTTP client for the public API: JSON in and out, RFC 9457 problems as ApiError, the session (access +
// refresh tokens in localStorage, one refresh on a 401), and the server clock from X-Server-Time.

const STORAGE_KEY = 'auction.session';

/** A problem-details answer (or a network failure, status 0). */
export class ApiError extends Error {
  constructor(status, problem = {}) {
    super(problem.detail || problem.title || (status ? `Request failed (${status})` : 'Network error'));
    this.status = status;
    this.code = problem.code || (status ? 'error' : 'network_error');
    this.problem = problem;
    /** [{field, in, message}] for validation errors */
    this.fieldErrors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

// ---------- session ----------
let session = readStored();
const sessionListeners = new Set();

function readStored() {
  try {
    const value = JSON.parse(localStorage.getItem(STORAGE_KEY) || 'null');
    return value && value.access && value.refresh ? value : null;
  } catch {
    return null;
  }
}

function store() {
  if (session) localStorage.setItem(STORAGE_KEY, JSON.stringify(session));
  else localStorage.removeItem(STORAGE_KEY);
}

function emit(reason) {
  for (const fn of sessionListeners) {
    try { fn(session, reason); } catch (err) { console.error(err); }
  }
}

/** fn(session|null, reason) where reason is 'login' | 'logout' | 'expired' | 'user' | 'refresh' | 'storage'. */
export function onSessionChange(fn) {
  sessionListeners.add(fn);
  return () => sessionListeners.delete(fn);
}

export function currentUser() {
  return session ? session.user || null : null;
}

export function isLoggedIn() {
  return Boolean(session);
}

export function accessToken() {
  return session ? session.access : null;
}

export function setSessionFromTokens(pair, reason = 'login') {
  session = { access: pair.access_token, refresh: pair.refresh_token, user: pair.user || (session && session.user) || null };
  store();
  emit(reason);
}

export function updateCurrentUser(patch) {
  if (!session) return;
  session.user = { ...(session.user || {}), ...patch };
  store();
  emit('user');
}

export function logout() {
  session = null;
  store();
  emit('logout');
}

export function expire() {
  if (!session) return;
  session = null;
  store();
  emit('expired');
}

// Another tab logged in, out, or refreshed the tokens.
window.addEventListener('storage', (event) => {
  if (event.key !== STORAGE_KEY) return;
  const before = session;
  session = readStored();
  if (Boolean(before) !== Boolean(session) || (session && before && session.user?.id !== before.user?.id)) emit('storage');
  else if (session && JSON.stringify(session.user) !== JSON.stringify(before.user)) emit('user'); // e.g. a new avatar
});

function tokenExpiry(token) {
  try {
    const payload = JSON.parse(atob(token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/')));
    return typeof payload.exp === 'number' ? payload.exp * 1000 : null;
  } catch {
    return null;
  }
}

let refreshing = null;

/** Exchange the refresh token for a new pair; single flight. Resolves true on success. */
export function refreshTokens() {
  if (!session) return Promise.resolve(false);
  if (refreshing) return refreshing;
  const refreshToken = session.refresh;
  refreshing = (async () => {
    try {
      const res = await fetch('/api/auth/refresh', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ refresh_token: refreshToken }),
      });
      noteServerTime(res, null);
      if (!res.ok) {
        // Only a definite "no" ends the session; a 5xx or network failure may pass.
        if (res.status === 401 || res.status === 403 || res.status === 422) {
          if (session && session.refresh === refreshToken) expire();
          return false;
        }
        return false;
      }
      const pair = await res.json();
      if (session && session.refresh === refreshToken) setSessionFromTokens(pair, 'refresh');
      return true;
    } catch {
      return false;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** An access token that is not about to expire (refreshing first if needed), or null. */
export async function freshAccessToken() {
  if (!session) return null;
  const exp = tokenExpiry(session.access);
  if (exp !== null && exp - serverNow() < 30_000) await refreshTokens();
  return session ? session.access : null;
}

// ---------- server clock ----------
let clockOffset = 0; // server time minus local time, in ms
let bestRtt = Infinity;
let bestAt = 0;

function noteServerTime(res, startedAt) {
  const header = res.headers.get('X-Server-Time');
  if (!header) return;
  const server = Date.parse(header);
  if (Number.isNaN(server)) return;
  const now = Date.now();
  const rtt = startedAt === null ? 1000 : Math.max(0, now - startedAt);
  // Prefer the fastest round trip seen recently: its midpoint is the best estimate of "now" on the server.
  if (rtt <= bestRtt * 1.5 || now - bestAt > 60_000) {
    clockOffset = server - (now - rtt / 2);
    bestRtt = Math.min(rtt, bestRtt === Infinity ? rtt : bestRtt);
    bestAt = now;
  }
}

/** Milliseconds since the epoch on the server's clock. */
export function serverNow() {
  return Date.now() + clockOffset;
}

export function clockSkew() {
  return clockOffset;
}

// ---------- requests ----------
async function send(method, path, { body, form, headers = {}, signal, token }) {
  const init = { method, headers: { Accept: 'application/json, application/problem+json', ...headers }, signal };
  if (form) init.body = form;
  else if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (token) init.headers.Authorization = `Bearer ${token}`;
  const startedAt = Date.now();
  const res = await fetch(path, init);
  noteServerTime(res, startedAt);
  return res;
}

/**
 * request('GET', '/api/listings', {query, body, form, headers, signal, auth}) -> parsed JSON (null for 204).
 * Throws ApiError. On 401 with a session it refreshes once and retries; if that fails the session ends.
 */
export async function request(method, path, options = {}) {
  const { query, auth = true } = options;
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v));
    }
    const qs = params.toString();
    if (qs) url += (url.includes('?') ? '&' : '?') + qs;
  }
  const useToken = auth && session;
  let res;
  try {
    res = await send(method, url, { ...options, token: useToken ? session.access : null });
    if (res.status === 401 && useToken) {
      const ok = await refreshTokens();
      // A rejected refresh token ends the session inside refreshTokens(); a transient failure keeps it.
      if (ok && session) res = await send(method, url, { ...options, token: session.access });
    }
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    throw new ApiError(0, { detail: 'Cannot reach the server. Check your connection and try again.' });
  }
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  let data = null;
  if (type.includes('json')) {
    try { data = await res.json(); } catch { data = null; }
  }
  if (!res.ok) throw new ApiError(res.status, data || {});
  return data;
}

export const api = {
  get: (path, options) => request('GET', path, options),
  post: (path, body, options = {}) => request('POST', path, { ...options, body }),
  put: (path, body, options = {}) => request('PUT', path, { ...options, body }),
  patch: (path, body, options = {}) => request('PATCH', path, { ...options, body }),
  del: (path, options) => request('DELETE', path, options),
  upload: (path, file, options = {}) => {
    const form = new FormData();
    form.append('file', file);
    return request('PUT', path, { ...options, form });
  },
};

// ---------- auth calls ----------
export async function login(username, password) {
  const pair = await request('POST', '/api/auth/login', { body: { username, password }, auth: false });
  setSessionFromTokens(pair, 'login');
  return pair.user;
}

export async function register(username, email, password) {
  return request('POST', '/api/auth/register', { body: { username, email, password }, auth: false });
}

/** Reload the own profile into the session (also proves the session still works). */
export async function loadMe() {
  if (!session) return null;
  const me = await request('GET', '/api/users/me');
  if (session) updateCurrentUser(me);
  return me;
}
