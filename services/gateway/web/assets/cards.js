// Listing cards (index, profiles) and their live updates from the `listings` topic.
import { currentUser, serverNow } from './api.js';
import { formatDuration, formatMoney, h, listingImage, pluralize, setText } from './dom.js';

/** Build a card; returns {el, listing, update(patch), tick()} */
export function listingCard(listing) {
  const state = { ...listing };
  const price = h('span', { class: 'price num' });
  const priceLabel = h('span', { class: 'muted small' });
  const bids = h('span', { class: 'bids' });
  const timeLeft = h('span', { class: 'time-left num' });
  const status = h('span', { class: 'badge status' });
  const watched = h('span', { class: 'badge badge-info' });
  const extra = h('span', { class: 'badge badge-success', hidden: true });
  const buyNow = h('span', { class: 'badge badge-primary buy-now-badge', hidden: true });
  const titleId = `card-title-${listing.id}`;
  const el = h('article', { class: 'card listing-card', dataset: { listingId: listing.id }, 'aria-labelledby': titleId },
    h('a', { class: 'thumb', href: `/listings/${listing.id}`, tabindex: '-1', 'aria-hidden': 'true' },
      listingImage(listing.image_url, listing.title)),
    h('div', { class: 'body' },
      h('h2', { id: titleId }, h('a', { href: `/listings/${listing.id}`, text: listing.title })),
      h('div', {}, priceLabel, ' ', price),
      h('div', { class: 'meta' }, bids, timeLeft),
      h('div', { class: 'badges' },
        status,
        listing.category ? h('span', { class: 'badge', text: listing.category.name }) : null,
        watched, extra, buyNow)));

  function paint() {
    const closed = state.status === 'closed';
    setText(priceLabel, closed ? (state.bid_count ? 'Sold for' : 'Ended at') : (state.bid_count ? 'Current bid' : 'Starting at'));
    setText(price, formatMoney(state.current_price));
    setText(bids, pluralize(state.bid_count || 0, 'bid', 'bids'));
    status.className = `badge status ${closed ? 'badge-danger' : 'badge-success'}`;
    setText(status, closed ? 'Ended' : 'Active');
    watched.hidden = !state.watched;
    buyNow.hidden = closed || !state.buy_now_price;
    setText(buyNow, state.buy_now_price && !closed ? `Buy now ${formatMoney(state.buy_now_price)}` : '');
    setText(watched, state.watched ? 'Watching' : '');
    const me = currentUser();
    if (me && closed && state.winner && state.winner.id === me.id) {
      extra.hidden = false;
      setText(extra, 'You won');
    } else if (me && !closed && state.leader_id === me.id) {
      extra.hidden = false;
      setText(extra, 'You lead');
    } else {
      extra.hidden = true;
      setText(extra, '');
    }
    tick();
  }

  function tick() {
    if (state.status === 'closed') {
      setText(timeLeft, 'Closed');
      return;
    }
    const left = Date.parse(state.ends_at) - serverNow();
    setText(timeLeft, left > 0 ? `${formatDuration(left)} left` : 'Ending…');
    timeLeft.classList.toggle('countdown', true);
    timeLeft.classList.toggle('soon', left < 60_000);
  }

  function flash() {
    el.classList.remove('flash');
    void el.offsetWidth; // restart the animation
    el.classList.add('flash');
  }

  paint();
  return {
    el,
    get listing() { return state; },
    update(patch, { highlight = true } = {}) {
      Object.assign(state, patch);
      paint();
      if (highlight) flash();
    },
    tick,
  };
}

/** Apply a `listings` topic event to a Map(listing id -> card). Returns true if a card changed. */
export function applyListingsEvent(cards, event, data) {
  const card = cards.get(Number(data.listing_id));
  if (!card) return false;
  if (event === 'bid.placed') {
    const patch = {
      current_price: data.amount,
      bid_count: data.bid_count,
      ends_at: data.ends_at || card.listing.ends_at,
      leader_id: data.bidder_id,
    };
    if (data.reserve_met !== undefined) patch.reserve_met = data.reserve_met;
    // Buy now ends with the first bid, or once a bid reaches the reserve.
    if (data.buy_now_available === false || (data.buy_now_available === undefined && (card.listing.reserve_met ?? null) === null)) {
      patch.buy_now_price = null;
    }
    card.update(patch);
    return true;
  }
  if (event === 'auction.closed') {
    card.update({
      status: 'closed',
      current_price: data.final_price || card.listing.current_price,
      winner: data.winner_id ? { id: data.winner_id, username: data.winner_username } : null,
    });
    return true;
  }
  if (event === 'listing.updated') {
    const patch = {};
    for (const key of ['title', 'description', 'image_url']) if (data[key] !== undefined) patch[key] = data[key];
    card.update(patch, { highlight: false });
    card.el.querySelector('h2 a').textContent = card.listing.title;
    const img = card.el.querySelector('.thumb img');
    if (img && card.listing.image_url && !img.src.endsWith(card.listing.image_url)) img.src = card.listing.image_url;
    return true;
  }
  if (event === 'listing.deleted') {
    card.el.remove();
    cards.delete(Number(data.listing_id));
    return true;
  }
  if (event === 'auction.extended') {
    card.update({ ends_at: data.ends_at }, { highlight: false });
    return true;
  }
  return false;
}
