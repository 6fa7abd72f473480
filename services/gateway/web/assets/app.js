// Entry point: the shell (navigation, account, unread badge, connection status, personal toasts) and routes.

import { api, currentUser, isLoggedIn, loadMe, logout, onSessionChange } from './api.js';
import { avatar, formatMoney, h, icon, replace } from './dom.js';
import { navigate, onNavigate, route, startRouter } from './router.js';
import { toast } from './toast.js';
import { badge, getUnread, refreshUnread, setUnread } from './badge.js';
import * as ws from './ws.js';

route(/^\/$/, () => import('./page-index.js'));
route(/^\/login$/, () => import('./page-auth.js').then((m) => ({ mount: m.mountLogin })));
route(/^\/signup$/, () => import('./page-auth.js').then((m) => ({ mount: m.mountSignup })));
route(/^\/listings\/new$/, () => import('./page-create.js'), { auth: true });
route(/^\/listings\/(\d+)$/, () => import('./page-listing.js'));
route(/^\/inbox(?:\/(\d+))?$/, () => import('./page-inbox.js'), { auth: true });
route(/^\/me$/, () => import('./page-profile.js').then((m) => ({ mount: m.mountCabinet })), { auth: true });
route(/^\/users\/(\d+)$/, () => import('./page-profile.js').then((m) => ({ mount: m.mountProfile })));

// ---------- navigation ----------
const NAV = [
  { href: '/', label: 'All', icon: 'grid' },
  { href: '/?status=active', label: 'Active', icon: 'clock' },
  { href: '/?by=category', label: 'By category', icon: 'tag' },
  { href: '/?scope=bids', label: 'My bids', icon: 'gavel', auth: true },
  { href: '/?scope=mine', label: 'My listings', icon: 'box', auth: true },
  { href: '/?scope=won', label: 'Won', icon: 'trophy', auth: true },
  { href: '/inbox', label: 'Inbox', icon: 'inbox', auth: true, badge: true },
  { href: '/?scope=watched', label: 'Watchlist', icon: 'eye', auth: true },
  { href: '/listings/new', label: 'Create listing', icon: 'pencil', auth: true },
];

function renderNav() {
  const list = document.getElementById('nav');
  const logged = isLoggedIn();
  replace(list, NAV.filter((item) => logged || !item.auth).map((item) =>
    h('li', { class: item.badge ? 'nav-inbox' : null }, h('a', { href: item.href, dataset: { nav: item.href } },
      icon(item.icon), item.label, item.badge ? [' ', badge] : null))));
  markCurrentNav();
}

function navKey(url) {
  if (url.pathname !== '/') return url.pathname.startsWith('/inbox') ? '/inbox' : url.pathname;
  const p = url.searchParams;
  if (p.get('by') === 'category' || p.get('category')) return '/?by=category';
  const scope = p.get('scope');
  if (scope) return `/?scope=${scope}`;
  if (p.get('status') === 'active') return '/?status=active';
  return '/';
}

function markCurrentNav() {
  const key = navKey(new URL(location.href));
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.nav === key) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function renderAccount() {
  const box = document.getElementById('account');
  const user = currentUser();
  if (!user) {
    replace(box,
      h('a', { class: 'btn btn-sm btn-outline-light', href: '/login', text: 'Log in' }),
      h('a', { class: 'btn btn-sm btn-primary', href: '/signup', text: 'Sign up' }));
    return;
  }
  const logoutButton = h('button', { type: 'button', class: 'btn btn-sm btn-outline-light', id: 'logout' }, icon('logout'), 'Log out');
  logoutButton.addEventListener('click', () => {
    logout();
    toast({ title: 'Logged out', body: 'See you soon.', kind: 'info', timeout: 3000 });
    navigate('/', { replace: location.pathname === '/' });
  });
  replace(box,
    h('a', { class: 'user-chip', href: '/me', id: 'account-link', 'aria-label': `Your cabinet (${user.username})` },
      avatar(user.avatar_url, user.username, 'sm'),
      h('span', { class: 'who' }, h('span', { text: user.username }), user.email ? h('small', { text: user.email }) : null)),
    logoutButton);
}

// ---------- live status + unread badge ----------
function showStatus(status) {
  const el = document.getElementById('live-status');
  if (status === 'open' || status === 'connecting') {
    el.hidden = true;
    el.textContent = '';
  } else {
    el.hidden = false;
    el.textContent = status === 'offline' ? 'Offline — waiting for the network…' : 'Reconnecting…';
  }
  document.body.dataset.live = status;
}

// ---------- personal events as toasts ----------
function formatTime(iso) {
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? '' : moment.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

async function listingTitle(id) {
  try {
    const listing = await api.get(`/api/listings/${id}`);
    return listing.title;
  } catch {
    return `listing #${id}`;
  }
}

function onPrivateEvent(event, data) {
  switch (event) {
    case 'chat.unread':
      setUnread(data.count);
      break;
    case 'bid.outbid': {
      const t = toast({
        title: 'You have been outbid',
        body: `Listing #${data.listing_id} is now at ${formatMoney(data.amount)}.`,
        kind: 'warning',
        link: { href: `/listings/${data.listing_id}`, text: 'Bid again' },
        timeout: 10000,
      });
      listingTitle(data.listing_id).then((title) => t && t.setBody(document.createTextNode(`“${title}” is now at ${formatMoney(data.amount)}.`)));
      break;
    }
    case 'auction.won':
      toast({
        title: 'You won!',
        body: `You won “${data.title || `listing #${data.listing_id}`}” for ${formatMoney(data.final_price)}. The seller has messaged you.`,
        kind: 'success',
        link: { href: `/listings/${data.listing_id}`, text: 'View listing' },
        timeout: 15000,
      });
      break;
    case 'auction.sold':
      toast({
        title: 'Sold!',
        body: `“${data.title || `Listing #${data.listing_id}`}” sold to ${data.winner_username || 'the winner'} for ${formatMoney(data.final_price)}.`,
        kind: 'success',
        link: { href: `/listings/${data.listing_id}`, text: 'View listing' },
        timeout: 15000,
      });
      break;
    case 'auction.unsold': {
      // No bids, or none that reached the reserve: either way nothing was sold.
      const t = toast({
        title: 'Auction ended unsold',
        body: `Your listing #${data.listing_id} ended without a sale.`,
        kind: 'info',
        link: { href: `/listings/${data.listing_id}`, text: 'View listing' },
        timeout: 12000,
      });
      listingTitle(data.listing_id).then((title) => t && t.setBody(document.createTextNode(`“${title}” ended without a sale.`)));
      break;
    }
    case 'auction.ending_soon': {
      const when = data.ends_at ? ` at ${formatTime(data.ends_at)}` : '';
      const t = toast({
        title: 'An auction you follow ends soon',
        body: `Listing #${data.listing_id} ends${when}.`,
        kind: 'warning',
        link: { href: `/listings/${data.listing_id}`, text: 'Have a look' },
        timeout: 15000,
      });
      listingTitle(data.listing_id).then((title) => t && t.setBody(document.createTextNode(`“${title}” ends${when}.`)));
      break;
    }
    default:
      break;
  }
}

// ---------- session ----------
onSessionChange((session, reason) => {
  if (reason === 'refresh') return; // same user, new tokens
  renderAccount();
  if (reason === 'user') return;
  renderNav();
  ws.restart();
  if (session) refreshUnread();
  else setUnread(0);
  if (reason === 'expired') {
    const here = location.pathname + location.search;
    toast({ title: 'Session expired', body: 'Please log in again.', kind: 'warning' });
    if (!here.startsWith('/login')) navigate(`/login?next=${encodeURIComponent(here)}&expired=1`, { replace: true });
  } else if (reason === 'storage') {
    // Logged in or out in another tab: show this page again as the new user sees it.
    navigate(location.pathname + location.search, { replace: true });
  }
});

onNavigate(({ focus }) => {
  markCurrentNav();
  const main = document.getElementById('main');
  const pageTookFocus = main.contains(document.activeElement) && document.activeElement !== main;
  if (focus && !pageTookFocus) {
    const heading = document.querySelector('#main h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: true });
    } else {
      document.getElementById('main').focus({ preventScroll: true });
    }
  }
  setUnread(getUnread()); // keeps the "(n)" prefix on the new title
});

ws.onStatus(showStatus);
ws.onPrivate(onPrivateEvent);
ws.onResync(refreshUnread);

async function boot() {
  renderAccount();
  renderNav();
  ws.start();
  if (isLoggedIn()) {
    refreshUnread();
    loadMe().catch(() => { /* an expired session is handled by the session listener */ });
  }
  startRouter();
}

boot();
