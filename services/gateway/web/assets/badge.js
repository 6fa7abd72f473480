// The navbar's unread-messages badge: GET /api/chats/unread, then chat.unread pushes keep it current.
import { api, isLoggedIn } from './api.js';
import { h } from './dom.js';

let unread = 0;
export const badge = h('span', { class: 'badge nav-badge', id: 'unread-badge', 'aria-label': '0 unread messages', text: '0' });

export function setUnread(count) {
  unread = Math.max(0, Number(count) || 0);
  badge.textContent = String(unread);
  badge.setAttribute('aria-label', `${unread} unread ${unread === 1 ? 'message' : 'messages'}`);
  badge.classList.toggle('has-unread', unread > 0);
  badge.dataset.count = String(unread);
  const bare = document.title.replace(/^\(\d+\) /, '');
  document.title = unread > 0 ? `(${unread}) ${bare}` : bare;
}

export function getUnread() {
  return unread;
}

export async function refreshUnread() {
  if (!isLoggedIn()) {
    setUnread(0);
    return;
  }
  try {
    const { count } = await api.get('/api/chats/unread');
    setUnread(count);
  } catch { /* keeps its value; the next push or resync corrects it */ }
}

/** Pages set their title through this so the "(n)" unread prefix survives. */
export function setTitle(title) {
  document.title = title ? `${title} · Auctions` : 'Auctions';
  setUnread(unread);
}
