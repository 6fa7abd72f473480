// Index: listing cards with filters (scope, status, category), text search, ending-soon sort, "load more",
// and live prices/statuses from the `listings` topic.
import { ApiError, api, currentUser, isLoggedIn } from './api.js';
import { setTitle } from './badge.js';
import { applyListingsEvent, listingCard } from './cards.js';
import { loadCategories } from './categories.js';
import { h, pluralize, replace, uid } from './dom.js';

const PAGE_SIZE = 20;

const SCOPES = [
  { key: '', label: 'All' },
  { key: 'mine', label: 'My listings', auth: true },
  { key: 'bids', label: 'My bids', auth: true },
  { key: 'won', label: 'Won', auth: true },
  { key: 'watched', label: 'Watchlist', auth: true },
];

const SCOPE_QUERY = {
  mine: { seller_id: 'me' },
  bids: { bidder: 'me' },
  won: { won: 'true' },
  watched: { watched: 'true' },
};

function readFilters(url) {
  const p = url.searchParams;
  return {
    scope: SCOPE_QUERY[p.get('scope')] ? p.get('scope') : '',
    status: ['active', 'closed'].includes(p.get('status')) ? p.get('status') : '',
    category: /^\d+$/.test(p.get('category') || '') ? p.get('category') : '',
    q: (p.get('q') || '').slice(0, 100),
    sort: p.get('sort') === 'ending' ? 'ending' : '',
    by: p.get('by') === 'category' ? 'category' : '',
  };
}

function filtersToUrl(f) {
  const p = new URLSearchParams();
  if (f.scope) p.set('scope', f.scope);
  if (f.status) p.set('status', f.status);
  if (f.by && !f.category) p.set('by', f.by);
  if (f.category) p.set('category', f.category);
  if (f.q) p.set('q', f.q);
  if (f.sort) p.set('sort', f.sort);
  const qs = p.toString();
  return qs ? `/?${qs}` : '/';
}

function heading(f, categories) {
  const scope = SCOPES.find((s) => s.key === f.scope);
  if (f.scope) return scope.label;
  const category = f.category && categories.find((c) => String(c.id) === f.category);
  if (category) return `${f.status === 'active' ? 'Active listings' : 'Listings'} in ${category.name}`;
  if (f.status === 'active') return 'Active listings';
  if (f.status === 'closed') return 'Ended listings';
  if (f.by) return 'Browse by category';
  return 'Auction listings';
}

export function mount(ctx) {
  let filters = readFilters(ctx.url);
  let cursor = null;
  let newCount = 0;
  const cards = new Map();
  let categories = [];

  const title = h('h1', {});
  const createLink = h('a', { class: 'btn btn-primary', href: '/listings/new', text: 'Create listing' });
  const tabs = h('nav', { class: 'tabs', 'aria-label': 'Whose listings' });

  const searchId = uid('q');
  const statusId = uid('status');
  const categoryId = uid('category');
  const sortId = uid('sort');
  const search = h('input', { class: 'input', type: 'search', id: searchId, name: 'q', placeholder: 'Search titles and descriptions…', maxlength: '100', autocomplete: 'off' });
  const status = h('select', { class: 'input', id: statusId, name: 'status' },
    h('option', { value: '', text: 'Any status' }),
    h('option', { value: 'active', text: 'Active' }),
    h('option', { value: 'closed', text: 'Ended' }));
  const category = h('select', { class: 'input', id: categoryId, name: 'category' }, h('option', { value: '', text: 'All categories' }));
  const sort = h('select', { class: 'input', id: sortId, name: 'sort' },
    h('option', { value: '', text: 'Newest first' }),
    h('option', { value: 'ending', text: 'Ending soon' }));
  const filterForm = h('form', { class: 'card filters', role: 'search', 'aria-label': 'Filter listings' },
    h('div', { class: 'field grow' }, h('label', { for: searchId, text: 'Search' }), search),
    h('div', { class: 'field' }, h('label', { for: statusId, text: 'Status' }), status),
    h('div', { class: 'field' }, h('label', { for: categoryId, text: 'Category' }), category),
    h('div', { class: 'field' }, h('label', { for: sortId, text: 'Sort' }), sort),
    h('button', { class: 'btn btn-primary', type: 'submit', text: 'Search' }));

  const chips = h('div', { class: 'category-chips', hidden: true });
  const banner = h('div', { class: 'alert alert-info new-banner', hidden: true },
    h('span', { class: 'text' }), ' ',
    h('button', { type: 'button', class: 'btn btn-sm btn-primary', text: 'Show them' }));
  const summary = h('p', { class: 'muted small', role: 'status', 'aria-live': 'polite' });
  const errorBox = h('div', { class: 'alert alert-danger', role: 'alert', hidden: true });
  const grid = h('div', { class: 'grid', id: 'listings' });
  const empty = h('div', { class: 'card empty', hidden: true });
  const moreButton = h('button', { type: 'button', class: 'btn btn-outline', id: 'load-more', text: 'Load more' });
  const more = h('div', { class: 'load-more', hidden: true }, moreButton);

  replace(ctx.root,
    h('div', { class: 'page-head' }, title, createLink),
    tabs, filterForm, chips, banner, summary, errorBox, grid, empty, more);

  function renderTabs() {
    replace(tabs, SCOPES.filter((s) => !s.auth || isLoggedIn()).map((s) =>
      h('a', { href: filtersToUrl({ ...filters, scope: s.key, by: '' }), 'aria-current': s.key === filters.scope ? 'true' : 'false', text: s.label })));
    createLink.hidden = !isLoggedIn();
    tabs.hidden = !isLoggedIn();
  }

  function syncControls() {
    if (document.activeElement !== search || search.value.trim() !== filters.q) search.value = filters.q;
    status.value = filters.status;
    category.value = filters.category;
    sort.value = filters.sort;
    setText();
    renderTabs();
    renderChips();
  }

  function setText() {
    const text = heading(filters, categories);
    title.textContent = text;
    setTitle(text);
  }

  function renderChips() {
    chips.hidden = !(filters.by === 'category' || filters.category) || categories.length === 0;
    replace(chips,
      h('a', { class: 'btn btn-sm ' + (filters.category ? 'btn-outline' : 'btn-primary'), href: filtersToUrl({ ...filters, category: '', by: 'category' }), text: 'All categories' }),
      categories.map((c) => h('a', {
        class: 'btn btn-sm ' + (String(c.id) === filters.category ? 'btn-primary' : 'btn-outline'),
        href: filtersToUrl({ ...filters, category: String(c.id), by: '' }),
        'aria-current': String(c.id) === filters.category ? 'true' : 'false',
        text: c.name,
      })));
  }

  function apiQuery() {
    return {
      ...(SCOPE_QUERY[filters.scope] || {}),
      status: filters.status || undefined,
      category_id: filters.category || undefined,
      q: filters.q || undefined,
      sort: filters.sort === 'ending' ? 'ending_soon' : undefined,
    };
  }

  function showCards(items, append) {
    if (!append) {
      grid.replaceChildren();
      cards.clear();
    }
    for (const listing of items) {
      if (cards.has(listing.id)) continue;
      const card = listingCard(listing);
      cards.set(listing.id, card);
      grid.append(card.el);
    }
  }

  function updateSummary() {
    const n = cards.size;
    summary.textContent = n ? `Showing ${pluralize(n, 'listing', 'listings')}${cursor ? ' (more available)' : ''}.` : '';
    empty.hidden = n > 0;
    if (!n) {
      replace(empty,
        h('p', { text: filters.q ? `Nothing matches “${filters.q}”.` : 'No listings here yet.' }),
        isLoggedIn() ? h('a', { class: 'btn btn-primary', href: '/listings/new', text: 'Create a listing' }) : null);
    }
    more.hidden = !cursor;
  }

  /** Load the first page (or, on a resync, as many as were shown). */
  async function load({ append = false, keep = false } = {}) {
    if (filters.scope && !isLoggedIn()) {
      grid.replaceChildren();
      cards.clear();
      cursor = null;
      replace(empty, h('p', {}, 'Log in to see this list. ', h('a', { href: `/login?next=${encodeURIComponent(filtersToUrl(filters))}`, text: 'Log in' })));
      empty.hidden = false;
      more.hidden = true;
      summary.textContent = '';
      return;
    }
    const limit = keep ? Math.min(100, Math.max(PAGE_SIZE, cards.size)) : PAGE_SIZE;
    const query = { ...apiQuery(), limit, cursor: append ? cursor : undefined };
    const started = JSON.stringify(filters);
    moreButton.disabled = true;
    grid.setAttribute('aria-busy', 'true');
    return (async () => {
      try {
        const page = await api.get('/api/listings', { query, signal: ctx.signal });
        if (!ctx.alive || started !== JSON.stringify(filters)) return;
        errorBox.hidden = true;
        cursor = page.next_cursor || null;
        showCards(page.items || [], append);
        if (!append) {
          newCount = 0;
          banner.hidden = true;
        }
        updateSummary();
        if (!append && filters.scope === 'bids') catchUpWithOwnBids();
      } catch (err) {
        if (!ctx.alive || err.name === 'AbortError') return;
        errorBox.textContent = err instanceof ApiError ? `Could not load listings: ${err.message}` : 'Could not load listings.';
        errorBox.hidden = false;
      } finally {
        moreButton.disabled = false;
        grid.removeAttribute('aria-busy');
      }
    })();
  }

  // "My bids" is built by the listings service from bid events, a moment after the bid itself: if one of my
  // latest bids (straight from the bidding service) is missing here, look again shortly, a few times.
  let catchUpTries = 0;
  async function catchUpWithOwnBids() {
    if (filters.q || filters.status || filters.category || cards.size >= PAGE_SIZE) return;
    try {
      const mine = await api.get('/api/bids', { query: { bidder: 'me', limit: 5 }, signal: ctx.signal });
      const missing = (mine.items || []).some((bid) => !cards.has(Number(bid.listing_id)));
      if (missing && catchUpTries < 5 && ctx.alive) {
        catchUpTries += 1;
        setTimeout(() => { if (ctx.alive) load({ keep: true }); }, 400 * catchUpTries);
      } else {
        catchUpTries = 0;
      }
    } catch { /* the list stands as loaded */ }
  }

  function applyFromForm() {
    const next = {
      ...filters,
      q: search.value.trim(),
      status: status.value,
      category: category.value,
      sort: sort.value,
    };
    if (next.category) next.by = '';
    // "Ending soon" is about auctions that can still be won: it narrows "any status" to active ones.
    if (next.sort === 'ending' && filters.sort !== 'ending' && !next.status) next.status = 'active';
    ctx.navigate(filtersToUrl(next), { replace: true });
  }

  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    applyFromForm();
  });
  for (const control of [status, category, sort]) control.addEventListener('change', applyFromForm);
  let searchTimer = null;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(applyFromForm, 400);
  });
  ctx.cleanup(() => clearTimeout(searchTimer));

  moreButton.addEventListener('click', async () => {
    const before = cards.size;
    await load({ append: true });
    // Keep keyboard users in place: focus the first new card's link.
    const next = [...cards.values()][before];
    if (next) next.el.querySelector('h2 a').focus();
  });

  banner.querySelector('button').addEventListener('click', () => {
    load();
    title.focus();
  });

  // ---------- live ----------
  ctx.subscribe('listings', (event, data) => {
    if (event === 'listing.created') {
      if (filters.scope && filters.scope !== 'mine') return;
      if (filters.status === 'closed') return;
      if (filters.category && String(data.category_id) !== filters.category) return;
      newCount += 1;
      banner.querySelector('.text').textContent = `${pluralize(newCount, 'new listing has', 'new listings have')} been posted.`;
      banner.hidden = false;
      return;
    }
    applyListingsEvent(cards, event, data);
    // My own new bid on a listing not shown yet under "My bids": the listings service records bidders
    // from the same event, so fetch again shortly rather than show a list that misses it.
    const me = currentUser();
    if (event === 'bid.placed' && filters.scope === 'bids' && me && data.bidder_id === me.id && !cards.has(Number(data.listing_id))) {
      setTimeout(() => { if (ctx.alive) load({ keep: true }); }, 300);
    }
  });
  ctx.everySecond(() => { for (const card of cards.values()) card.tick(); });
  ctx.onResync(() => load({ keep: true }));
  ctx.onSession(() => { renderTabs(); load(); });

  loadCategories().then((items) => {
    if (!ctx.alive) return;
    categories = items;
    category.append(...items.map((c) => h('option', { value: String(c.id), text: c.name })));
    category.value = filters.category;
    setText();
    renderChips();
  }).catch(() => { /* filters still work without the list */ });

  syncControls();
  load();

  return {
    update() {
      filters = readFilters(ctx.url);
      cursor = null;
      syncControls();
      load();
    },
  };
}
