// The cabinet (/me: own profile, stats, avatar change) and public profiles (/users/<id>), both with the
// feedback the user received after sales (score, counts, the latest comments, the rest on demand).
import { api, currentUser, isLoggedIn, updateCurrentUser } from './api.js';
import { setTitle } from './badge.js';
import { listingCard, applyListingsEvent } from './cards.js';
import { avatar, formatDate, formatDateTime, h, keepingFocus, replace, setText } from './dom.js';
import { busy, clearErrors, field, formAlert, setFieldError, showApiError } from './forms.js';
import { toast } from './toast.js';

function statsBlock(user) {
  const s = user.stats || {};
  return h('div', { class: 'stats', id: 'stats' },
    h('div', {}, h('strong', { text: formatDate(user.created_at) || '—' }), h('span', { text: 'Member since' })),
    h('div', {}, h('strong', { id: 'stat-listings', text: String(s.listings ?? 0) }), h('span', { text: 'Listings' })),
    h('div', {}, h('strong', { id: 'stat-won', text: String(s.won ?? 0) }), h('span', { text: 'Won' })),
    h('div', {}, h('strong', { id: 'stat-bids', text: String(s.bids ?? 0) }), h('span', { text: 'Bids' })));
}

const RATING_LABEL = { 1: 'Positive', 0: 'Neutral', '-1': 'Negative' };
const RATING_BADGE = { 1: 'badge-success', 0: 'badge', '-1': 'badge-danger' };

function signed(n) {
  return n > 0 ? `+${n}` : String(n);
}

function feedbackItem(f) {
  const from = f.from_user || {};
  return h('li', { class: 'feedback-item', dataset: { feedbackId: f.id } },
    h('span', { class: `badge ${RATING_BADGE[f.rating] || 'badge'}`, text: RATING_LABEL[f.rating] || String(f.rating) }),
    h('div', {},
      h('div', { class: 'small' },
        'From ', h('a', { href: `/users/${from.id}`, text: `@${from.username || `user #${from.id}`}` }),
        ' on ', h('a', { href: `/listings/${f.listing_id}`, text: f.listing_title || `listing #${f.listing_id}` }), ' · ',
        h('time', { class: 'muted', datetime: f.created_at, text: formatDateTime(f.created_at) })),
      f.comment ? h('p', { class: 'text', text: f.comment }) : h('p', { class: 'text muted', text: 'No comment.' })));
}

/** Score and counts, the latest received comments, and "show all" (cursor pages of /feedback). */
function feedbackSection(ctx, user) {
  const fb = user.feedback || { score: 0, positive: 0, neutral: 0, negative: 0, recent: [] };
  const total = (fb.positive || 0) + (fb.neutral || 0) + (fb.negative || 0);
  const list = h('ul', { class: 'feedback-list', id: 'feedback-list' }, (fb.recent || []).map(feedbackItem));
  const more = h('button', { type: 'button', class: 'btn btn-sm btn-outline', text: 'Show all feedback', hidden: total <= (fb.recent || []).length });
  let cursor;
  more.addEventListener('click', () => busy(more, 'Loading…', async () => {
    try {
      const page = await api.get(`/api/users/${user.id}/feedback`, { query: { cursor }, signal: ctx.signal });
      if (!ctx.alive) return;
      if (cursor === undefined) list.replaceChildren();
      list.append(...(page.items || []).map(feedbackItem));
      cursor = page.next_cursor || undefined;
      more.hidden = !page.next_cursor;
      setText(more, 'Show more feedback');
    } catch (err) {
      if (ctx.alive && err.name !== 'AbortError') toast({ title: 'Feedback could not be loaded', body: err.message, kind: 'danger' });
    }
  }));
  return h('section', { class: 'card', 'aria-labelledby': 'feedback-heading', id: 'feedback' }, h('div', { class: 'card-body' },
    h('h2', { id: 'feedback-heading', text: 'Feedback' }),
    h('p', { class: 'feedback-summary' },
      h('span', { class: 'feedback-score', id: 'feedback-score', text: `Score ${signed(fb.score || 0)}` }),
      h('span', { class: 'badge badge-success', id: 'feedback-positive', text: `${fb.positive || 0} positive` }),
      h('span', { class: 'badge', id: 'feedback-neutral', text: `${fb.neutral || 0} neutral` }),
      h('span', { class: 'badge badge-danger', id: 'feedback-negative', text: `${fb.negative || 0} negative` })),
    total ? null : h('p', { class: 'muted', text: 'No feedback yet.' }),
    list,
    h('div', { class: 'load-more' }, more)));
}

function loadingCard(ctx, text) {
  const title = h('h1', { text });
  replace(ctx.root, h('div', { class: 'card' }, h('div', { class: 'card-body' }, title)));
  return title;
}

function failed(ctx, err) {
  const notFound = err.status === 404;
  setTitle(notFound ? 'User not found' : 'Profile');
  keepingFocus(ctx.root, () => replace(ctx.root, h('div', { class: 'card' }, h('div', { class: 'card-body empty' },
    h('h1', { text: notFound ? 'User not found' : 'This profile could not be loaded' }),
    h('p', { text: notFound ? 'There is no such user.' : err.message }),
    h('a', { class: 'btn btn-primary', href: '/', text: 'Back to all listings' })))));
}

/** A user's listings as cards, live on the `listings` topic. */
function userListings(ctx, userId, heading) {
  const cards = new Map();
  const grid = h('div', { class: 'grid' });
  const empty = h('p', { class: 'muted', text: 'No listings yet.', hidden: true });
  const more = h('button', { type: 'button', class: 'btn btn-outline', text: 'Load more', hidden: true });
  let cursor = null;
  async function load(append = false) {
    try {
      const page = await api.get('/api/listings', { query: { seller_id: userId, cursor: append ? cursor : undefined }, signal: ctx.signal });
      if (!ctx.alive) return;
      if (!append) {
        cards.clear();
        grid.replaceChildren();
      }
      for (const l of page.items || []) {
        if (cards.has(l.id)) continue;
        const card = listingCard(l);
        cards.set(l.id, card);
        grid.append(card.el);
      }
      cursor = page.next_cursor || null;
      more.hidden = !cursor;
      empty.hidden = cards.size > 0;
    } catch (err) {
      if (ctx.alive && err.name !== 'AbortError') {
        empty.textContent = `Listings could not be loaded: ${err.message}`;
        empty.hidden = false;
      }
    }
  }
  more.addEventListener('click', () => load(true));
  ctx.subscribe('listings', (event, data) => applyListingsEvent(cards, event, data));
  ctx.everySecond(() => { for (const c of cards.values()) c.tick(); });
  ctx.onResync(() => load());
  load();
  return h('section', { class: 'card', 'aria-label': heading }, h('div', { class: 'card-body' },
    h('h2', { text: heading }), empty, grid, h('div', { class: 'load-more' }, more)));
}

export function mountCabinet(ctx) {
  setTitle('Your cabinet');
  loadingCard(ctx, 'Your cabinet');
  const bigAvatar = h('span', { id: 'cabinet-avatar' });
  const statsBox = h('div', {});
  const nameEl = h('h1', { id: 'cabinet-name' });
  const emailEl = h('p', { class: 'muted' });

  async function load() {
    try {
      const me = await api.get('/api/users/me', { signal: ctx.signal });
      if (!ctx.alive) return;
      updateCurrentUser(me);
      setText(nameEl, me.username);
      setText(emailEl, me.email);
      replace(bigAvatar, avatar(me.avatar_url, me.username, 'lg'));
      replace(statsBox, statsBlock(me));
      return me;
    } catch (err) {
      if (ctx.alive && err.name !== 'AbortError') failed(ctx, err);
      return null;
    }
  }

  const file = h('input', { class: 'input', type: 'file', accept: 'image/png,image/jpeg,image/gif,image/webp', required: true });
  const preview = h('img', { class: 'image-preview', alt: 'Preview of the new avatar', hidden: true });
  const save = h('button', { class: 'btn btn-primary btn-block', type: 'submit', text: 'Save avatar' });
  const alert = formAlert();
  const ok = h('p', { class: 'alert alert-success', role: 'status', hidden: true });
  const form = h('form', { id: 'avatar-form', novalidate: true }, alert, ok,
    field({ label: 'New profile picture', control: file, name: 'file', hint: 'PNG, JPEG, GIF or WebP; it is resized to at most 512×512.' }),
    h('p', {}, preview),
    save);
  let previewUrl = null;
  file.addEventListener('change', () => {
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    const f = file.files[0];
    previewUrl = f ? URL.createObjectURL(f) : null;
    preview.hidden = !f;
    if (f) preview.src = previewUrl;
  });
  ctx.cleanup(() => { if (previewUrl) URL.revokeObjectURL(previewUrl); });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(form, alert);
    ok.hidden = true;
    const f = file.files[0];
    if (!f) {
      setFieldError(form, 'file', 'Choose an image first.');
      file.focus();
      return;
    }
    await busy(save, 'Uploading…', async () => {
      try {
        const { avatar_url: url } = await api.upload('/api/users/me/avatar', f);
        if (!ctx.alive) return;
        updateCurrentUser({ avatar_url: url });
        replace(bigAvatar, avatar(url, currentUser().username, 'lg'));
        file.value = '';
        preview.hidden = true;
        ok.textContent = 'Your new avatar is saved.';
        ok.hidden = false;
        toast({ title: 'Avatar updated', kind: 'success', timeout: 3000 });
      } catch (err) {
        if (!ctx.alive) return;
        if (err.status === 413) setFieldError(form, 'file', 'That file is too large.');
        else if (err.status === 415) setFieldError(form, 'file', 'That file is not an image we can read.');
        else showApiError(form, alert, err);
        file.focus();
      }
    });
  });

  load().then((me) => {
    if (!me || !ctx.alive) return;
    keepingFocus(ctx.root, () => replace(ctx.root,
      h('section', { class: 'card', 'aria-labelledby': 'cabinet-name' }, h('div', { class: 'card-body profile-head' },
        bigAvatar,
        h('div', {}, nameEl, emailEl, statsBox,
          h('p', { class: 'actions' },
            h('a', { class: 'btn btn-sm btn-outline', href: '/?scope=mine', text: 'My listings' }),
            h('a', { class: 'btn btn-sm btn-outline', href: '/?scope=bids', text: 'My bids' }),
            h('a', { class: 'btn btn-sm btn-outline', href: '/?scope=won', text: 'Won' }),
            h('a', { class: 'btn btn-sm btn-outline', href: `/users/${me.id}`, text: 'Public profile' }))))),
      feedbackSection(ctx, me),
      h('section', { class: 'card', 'aria-labelledby': 'avatar-title' }, h('div', { class: 'card-body' },
        h('h2', { id: 'avatar-title', text: 'Change profile picture' }), form))));
  });
  ctx.onResync(load);
  return null;
}

export function mountProfile(ctx) {
  const userId = Number(ctx.params[0]);
  setTitle('Profile');
  loadingCard(ctx, 'Profile');
  (async () => {
    let user;
    try {
      user = await api.get(`/api/users/${userId}`, { signal: ctx.signal });
    } catch (err) {
      if (ctx.alive && err.name !== 'AbortError') failed(ctx, err);
      return;
    }
    if (!ctx.alive) return;
    setTitle(user.username);
    const me = currentUser();
    const actions = [];
    if (me && me.id === user.id) {
      actions.push(h('a', { class: 'btn btn-sm btn-outline', href: '/me', text: 'Edit in your cabinet' }));
    } else if (isLoggedIn()) {
      const message = h('button', { type: 'button', class: 'btn btn-sm btn-primary', id: 'message-user', text: `Message ${user.username}` });
      message.addEventListener('click', () => busy(message, 'Opening…', async () => {
        try {
          const chat = await api.post('/api/chats', { user_id: user.id });
          ctx.navigate(`/inbox/${chat.id}`);
        } catch (err) {
          toast({ title: 'Could not open the chat', body: err.message, kind: 'danger' });
        }
      }));
      actions.push(message);
    }
    keepingFocus(ctx.root, () => replace(ctx.root,
      h('section', { class: 'card', 'aria-labelledby': 'profile-name' }, h('div', { class: 'card-body profile-head' },
        avatar(user.avatar_url, user.username, 'lg'),
        h('div', {}, h('h1', { id: 'profile-name', text: user.username }), statsBlock(user),
          actions.length ? h('p', { class: 'actions' }, actions) : null))),
      feedbackSection(ctx, user),
      userListings(ctx, user.id, `Listings by ${user.username}`)));
  })();
  return null;
}
