// Listing detail: image, description, seller, price, minimum next bid, bid form, bid history, comments,
// countdown on the server's clock, watch toggle, seller tools (edit, end now, delete once closed).
// Auction formats: a private maximum (proxy bidding), the reserve badge, buy now, and feedback between
// the two parties once it sold. Everything on it is live through the `listing.<id>` topic; a reconnect
// refetches it all.
import { ApiError, api, currentUser, isLoggedIn, serverNow } from './api.js';
import { setTitle } from './badge.js';
import {
  avatar, formatDateTime, formatDuration, formatMoney, h, icon, keepingFocus, listingImage, pluralize, randomKey, replace,
  setText, uid,
} from './dom.js';
import { busy, clearErrors, field, formAlert, setFieldError, showApiError, showAlert } from './forms.js';
import { toast } from './toast.js';

function cents(value) {
  // Compare money as integer cents; the API sends two-place decimal strings.
  const [whole, frac = ''] = String(value).trim().split('.');
  const sign = whole.startsWith('-') ? -1 : 1;
  return sign * (Math.abs(parseInt(whole || '0', 10)) * 100 + parseInt((frac + '00').slice(0, 2), 10));
}

function centsToString(c) {
  return `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;
}

export function mount(ctx) {
  const id = Number(ctx.params[0]);
  const topic = `listing.${id}`;
  let listing = null;
  let bidCursor = null;
  let commentCursor = null;
  const bids = new Map(); // bid id -> bid
  const comments = new Map(); // comment id -> comment
  let closingSince = null;
  let pollTimer = null;
  let refetchTimer = null;

  setTitle('Listing');
  const announcer = h('p', { class: 'sr-only', 'aria-live': 'polite', id: 'announcer' });
  const title = h('h1', { id: 'listing-title', text: 'Loading listing…' });
  const errorBox = h('div', { class: 'alert alert-danger', role: 'alert', hidden: true });
  const body = h('div', { class: 'stack' });
  replace(ctx.root, announcer, errorBox, body);
  body.append(h('div', { class: 'card' }, h('div', { class: 'card-body' }, title)));

  function announce(text) {
    announcer.textContent = '';
    setTimeout(() => { announcer.textContent = text; }, 50);
  }

  const me = () => currentUser();
  const isSeller = () => Boolean(listing && me() && listing.seller && listing.seller.id === me().id);

  // ---------- elements built once, filled by paint() ----------
  const imageBox = h('div', { class: 'detail-image' });
  const statusBadge = h('span', { class: 'badge', id: 'status' });
  const categoryBadge = h('span', { class: 'badge badge-info' });
  const reserveBadge = h('span', { class: 'badge', id: 'reserve', hidden: true });
  const watchButton = h('button', { type: 'button', class: 'btn btn-outline', id: 'watch', 'aria-pressed': 'false' }, icon('eye'), h('span', { class: 'label', text: 'Watch' }));
  const sellerLine = h('p', { class: 'seller-line' });
  const descriptionEl = h('p', { class: 'description', id: 'description' });
  const detailsTable = h('tbody');

  const countdown = h('dd', { class: 'countdown', id: 'countdown', text: '—' });
  const priceEl = h('dd', { id: 'current-price' });
  const bidCountEl = h('dd', { id: 'bid-count' });
  const minBidEl = h('dd', { id: 'min-next-bid' });
  const priceLabel = h('dt', { text: 'Current price' });
  const stats = h('dl', { class: 'auction-stats' },
    h('div', {}, h('dt', { text: 'Time left' }), countdown),
    h('div', {}, priceLabel, priceEl),
    h('div', {}, h('dt', { text: 'Bids' }), bidCountEl),
    h('div', {}, h('dt', { text: 'Minimum next bid' }), minBidEl));
  const winnerBox = h('div', { class: 'winner-box', id: 'winner', role: 'status', hidden: true });
  const leaderNote = h('p', { class: 'alert alert-success', id: 'leader-note', hidden: true, text: 'You are the highest bidder.' });
  // The caller's own maximum, as the last bid answer told it (the API never shows anyone else's).
  let myMax = null;

  // buy now: the button asks first; the message stays when the button goes (someone bid or bought first)
  const buyNowBox = h('div', { class: 'buy-now', id: 'buy-now-box', hidden: true });
  const buyNowAlert = h('p', { class: 'alert alert-warning', id: 'buy-now-message', role: 'alert', hidden: true });

  // feedback between the seller and the winner, once it sold
  const feedbackSection = h('section', { class: 'card', id: 'feedback', 'aria-labelledby': 'feedback-title', hidden: true });

  // bid form
  const bidInput = h('input', { class: 'input', type: 'number', step: '0.01', min: '0.01', inputmode: 'decimal', required: true });
  const bidButton = h('button', { class: 'btn btn-dark', type: 'submit', text: 'Place bid' });
  const bidAlert = formAlert();
  const bidHint = h('span', {});
  const bidField = field({ label: 'Your bid ($)', control: bidInput, name: 'amount', hint: bidHint });
  const maxInput = h('input', { class: 'input', type: 'number', step: '0.01', min: '0.01', inputmode: 'decimal', id: 'max-bid', placeholder: 'optional' });
  const maxField = field({
    label: 'Max bid ($, optional)', control: maxInput, name: 'max_amount',
    hint: 'We bid for you, only as much as needed to lead, up to this. Nobody else sees it.',
  });
  const bidOk = h('p', { class: 'alert alert-success', id: 'bid-result', role: 'status', hidden: true });
  const bidForm = h('form', { class: 'bid-form', id: 'bid-form', novalidate: true }, bidAlert, bidOk,
    h('div', { class: 'bid-row' }, bidField, maxField, h('div', { class: 'bid-submit' }, bidButton)));
  const bidElsewhere = h('div', { class: 'alert alert-info', hidden: true });

  // seller tools
  const sellerTools = h('div', { class: 'seller-tools', hidden: true });

  // bids + comments
  const bidRows = h('tbody', { id: 'bid-rows' });
  const noBids = h('p', { class: 'muted', text: 'No bids yet. Be the first!' });
  const moreBids = h('button', { type: 'button', class: 'btn btn-sm btn-outline', text: 'Show more bids', hidden: true });
  const commentList = h('ul', { class: 'comments', id: 'comments' });
  const commentCount = h('span', { class: 'badge' });
  const noComments = h('p', { class: 'muted', text: 'No comments yet.' });
  const moreComments = h('button', { type: 'button', class: 'btn btn-sm btn-outline', text: 'Show more comments', hidden: true });
  const commentText = h('textarea', { class: 'input', maxlength: '500', rows: '3', placeholder: 'Write your comment here…' });
  const commentButton = h('button', { class: 'btn btn-primary', type: 'submit', text: 'Post comment' });
  const commentAlert = formAlert();
  const commentForm = h('form', { id: 'comment-form', novalidate: true }, commentAlert,
    field({ label: 'Add a comment', control: commentText, name: 'text', hint: 'Up to 500 characters.' }),
    h('div', { class: 'actions' }, commentButton));
  const commentsClosed = h('p', { class: 'muted', hidden: true });

  function build() {
    keepingFocus(ctx.root, () => body.replaceChildren(
      h('section', { class: 'card', 'aria-labelledby': 'listing-title' }, h('div', { class: 'card-body detail-top' },
        imageBox,
        h('div', {},
          h('div', { class: 'title-row' }, h('div', {}, title, h('div', { class: 'actions' }, statusBadge, categoryBadge, reserveBadge)), watchButton),
          sellerLine,
          h('h2', { class: 'section-title', text: 'Description' }),
          descriptionEl,
          h('h2', { class: 'section-title', text: 'Details' }),
          h('div', { class: 'table-wrap' }, h('table', { class: 'table' }, detailsTable))))),
      h('section', { class: 'card', 'aria-labelledby': 'auction-title' }, h('div', { class: 'card-body' },
        h('h2', { id: 'auction-title', text: 'Auction' }),
        winnerBox, stats, leaderNote, buyNowAlert, buyNowBox, bidForm, bidElsewhere, sellerTools)),
      feedbackSection,
      h('div', { class: 'two-col' },
        h('section', { class: 'card', 'aria-labelledby': 'bids-title' }, h('div', { class: 'card-body' },
          h('h2', { id: 'bids-title', text: 'Bid history' }),
          noBids,
          h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'bid-history' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Bidder' }), h('th', { scope: 'col', text: 'Amount' }), h('th', { scope: 'col', text: 'When' }))),
            bidRows)),
          h('div', { class: 'load-more' }, moreBids))),
        h('section', { class: 'card', 'aria-labelledby': 'comments-title' }, h('div', { class: 'card-body' },
          h('h2', { id: 'comments-title' }, 'Comments ', commentCount),
          commentForm, commentsClosed, noComments, commentList,
          h('div', { class: 'load-more' }, moreComments))))));
  }

  // ---------- painting ----------
  function paint() {
    const l = listing;
    const closed = l.status === 'closed';
    setText(title, l.title);
    setTitle(l.title);
    statusBadge.className = `badge ${closed ? 'badge-danger' : 'badge-success'}`;
    setText(statusBadge, closed ? 'Ended' : 'Active');
    setText(categoryBadge, l.category ? l.category.name : '');
    categoryBadge.hidden = !l.category;
    if (imageBox.dataset.src !== (l.image_url || '')) {
      imageBox.dataset.src = l.image_url || '';
      replace(imageBox, listingImage(l.image_url, l.title));
    } else {
      const img = imageBox.querySelector('img');
      if (img && l.image_url) img.alt = l.title;
    }
    setText(descriptionEl, l.description || 'No description.');
    descriptionEl.classList.toggle('muted', !l.description);
    const sellerKey = `${l.seller.id} ${l.seller.avatar_url} ${isLoggedIn()} ${isSeller()}`;
    if (sellerLine.dataset.key !== sellerKey) {
      sellerLine.dataset.key = sellerKey;
      replace(sellerLine, 'Sold by ',
      h('a', { href: `/users/${l.seller.id}`, class: 'seller' }, avatar(l.seller.avatar_url, l.seller.username, 'sm'), `@${l.seller.username}`),
        isLoggedIn() && !isSeller() ? [' ', messageSellerButton()] : null);
    }
    replace(detailsTable,
      row('Start price', formatMoney(l.start_price)),
      l.bid_increment ? row('Bid increment', formatMoney(l.bid_increment)) : null,
      l.reserve_price ? row('Reserve price (only you see it)', formatMoney(l.reserve_price)) : null,
      l.buy_now_price ? row('Buy now price', formatMoney(l.buy_now_price)) : null,
      row('Listed', formatDateTime(l.created_at)),
      row(closed ? 'Scheduled end' : 'Ends', formatDateTime(l.ends_at)));
    paintWatch();
    paintAuction();
    paintSellerTools();
    paintFeedback();
  }

  function row(label, value) {
    return h('tr', {}, h('th', { scope: 'row', text: label }), h('td', { text: value }));
  }

  function messageSellerButton() {
    const button = h('button', { type: 'button', class: 'btn btn-sm btn-outline', text: 'Message seller' });
    button.addEventListener('click', async () => {
      try {
        const chat = await api.post('/api/chats', { user_id: listing.seller.id });
        ctx.navigate(`/inbox/${chat.id}`);
      } catch (err) {
        toast({ title: 'Could not open the chat', body: err.message, kind: 'danger' });
      }
    });
    return button;
  }

  function paintWatch() {
    watchButton.hidden = !isLoggedIn() || isSeller();
    watchButton.setAttribute('aria-pressed', listing.watched ? 'true' : 'false');
    setText(watchButton.querySelector('.label'), listing.watched ? 'Watching' : 'Watch');
  }

  function paintAuction() {
    const l = listing;
    const closed = l.status === 'closed';
    const user = me();
    setText(priceLabel, closed ? 'Final price' : (l.bid_count ? 'Current price' : 'Start price'));
    setText(priceEl, formatMoney(l.current_price));
    setText(bidCountEl, String(l.bid_count || 0));
    setText(minBidEl, closed ? '—' : formatMoney(l.min_next_bid));
    // null (or absent) means the listing has no reserve: no badge at all.
    reserveBadge.hidden = l.reserve_met === null || l.reserve_met === undefined;
    reserveBadge.className = `badge ${l.reserve_met ? 'badge-success' : 'badge-warning'}`;
    setText(reserveBadge, l.reserve_met ? 'Reserve met' : 'Reserve not met');
    tick();

    // winner
    winnerBox.hidden = !closed;
    const winnerKey = closed ? `${l.winner ? l.winner.id : '-'} ${l.current_price} ${user ? user.id : '-'}` : '';
    if (closed && winnerBox.dataset.key !== winnerKey) {
      winnerBox.dataset.key = winnerKey;
      const winner = l.winner;
      if (winner && user && winner.id === user.id) {
        winnerBox.className = 'winner-box won';
        replace(winnerBox, h('strong', { text: 'Congratulations! You won this auction' }), ` for ${formatMoney(l.current_price)}. `,
          'The seller has been told; check your ', h('a', { href: '/inbox', text: 'inbox' }), '.');
      } else if (winner) {
        winnerBox.className = 'winner-box other';
        replace(winnerBox, isSeller() ? 'Sold to ' : 'Winner: ',
          h('a', { href: `/users/${winner.id}`, id: 'winner-name', text: `@${winner.username}` }),
          ` for ${formatMoney(l.current_price)}.`);
      } else {
        winnerBox.className = 'winner-box none';
        replace(winnerBox, l.bid_count ? 'This auction ended without a sale: the reserve price was not met.' : 'This auction ended with no bids.');
      }
    }
    const leading = !closed && Boolean(user) && l.leader_id === user.id;
    leaderNote.hidden = !leading;
    if (!leading) myMax = null;
    setText(leaderNote, myMax ? `You are the highest bidder (max ${formatMoney(myMax)}).` : 'You are the highest bidder.');
    paintBuyNow();

    // bid form or why not
    const canBid = !closed && isLoggedIn() && !isSeller();
    bidForm.hidden = !canBid;
    if (canBid) {
      bidInput.min = l.min_next_bid;
      if (!bidInput.value || cents(bidInput.value) < cents(l.min_next_bid)) bidInput.value = l.min_next_bid;
      setText(bidHint, `Minimum ${formatMoney(l.min_next_bid)}.`);
    }
    bidElsewhere.hidden = canBid || closed;
    if (!canBid && !closed) {
      if (!isLoggedIn()) replace(bidElsewhere, h('a', { href: `/login?next=${encodeURIComponent(`/listings/${id}`)}`, text: 'Log in' }), ' to place a bid.');
      else replace(bidElsewhere, 'This is your listing: you cannot bid on it.');
    }

    // comments only while active
    commentForm.hidden = closed || !isLoggedIn();
    commentsClosed.hidden = !(closed || !isLoggedIn());
    if (closed) setText(commentsClosed, 'Comments are closed: the auction has ended.');
    else if (!isLoggedIn()) replace(commentsClosed, h('a', { href: `/login?next=${encodeURIComponent(`/listings/${id}`)}`, text: 'Log in' }), ' to comment.');
  }

  function tick() {
    if (!listing) return;
    if (listing.status === 'closed') {
      setText(countdown, 'Ended');
      countdown.classList.remove('soon');
      stopPolling();
      return;
    }
    const left = Date.parse(listing.ends_at) - serverNow();
    countdown.classList.toggle('soon', left < 60_000);
    if (left > 0) {
      setText(countdown, formatDuration(left));
      closingSince = null;
      return;
    }
    setText(countdown, 'Closing…');
    // The close event normally arrives within a moment; if it does not, ask the server.
    if (closingSince === null) closingSince = Date.now();
    if (Date.now() - closingSince > 4000 && !pollTimer) {
      pollTimer = setInterval(() => refetchListing(), 3000);
    }
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }
  ctx.cleanup(stopPolling);

  function paintSellerTools() {
    sellerTools.hidden = !isSeller();
    if (!isSeller()) return;
    if (sellerTools.dataset.mode === 'edit') return; // do not throw away a half-written edit
    const closed = listing.status === 'closed';
    // Rebuild only when the choice of tools changes, so an open "are you sure?" survives live updates.
    if (sellerTools.dataset.state === listing.status && sellerTools.firstChild) return;
    sellerTools.dataset.state = listing.status;
    const editButton = h('button', { type: 'button', class: 'btn btn-outline', id: 'edit-listing' }, icon('pencil'), 'Edit');
    editButton.addEventListener('click', openEdit);
    const buttons = [editButton];
    if (!closed) {
      buttons.push(confirmButton('End now', 'End the auction now? The highest bidder wins.', 'Yes, end it', 'btn-dark', 'end-now', endNow));
    } else {
      buttons.push(confirmButton('Delete listing', 'Delete this listing for good?', 'Yes, delete', 'btn-danger', 'delete-listing', deleteListing));
    }
    replace(sellerTools, h('h3', { text: 'Seller tools' }), h('div', { class: 'actions' }, buttons));
  }

  /** A button that asks for confirmation inline (no native dialogs). */
  function confirmButton(label, question, yesLabel, cls, idName, action) {
    const wrap = h('span', { class: 'confirm' });
    const start = h('button', { type: 'button', class: `btn ${cls}`, id: idName, text: label });
    const yes = h('button', { type: 'button', class: `btn ${cls}`, id: `${idName}-confirm`, text: yesLabel });
    const no = h('button', { type: 'button', class: 'btn btn-outline', text: 'Cancel' });
    const ask = h('span', { class: 'confirm', role: 'group', 'aria-label': question, hidden: true }, h('span', { text: question }), yes, no);
    start.addEventListener('click', () => { start.hidden = true; ask.hidden = false; no.focus(); });
    no.addEventListener('click', () => { ask.hidden = true; start.hidden = false; start.focus(); });
    yes.addEventListener('click', () => busy(yes, '…', action));
    wrap.append(start, ask);
    return wrap;
  }

  async function endNow() {
    try {
      await api.post(`/api/listings/${id}/close`, {});
      announce('The auction has been ended.');
      await refetchListing();
    } catch (err) {
      toast({ title: 'Could not end the auction', body: err.message, kind: 'danger' });
    }
  }

  async function deleteListing() {
    try {
      await api.del(`/api/listings/${id}`);
      toast({ title: 'Listing deleted', body: `“${listing.title}” is gone.`, kind: 'info' });
      ctx.navigate('/?scope=mine');
    } catch (err) {
      toast({ title: 'Could not delete the listing', body: err.message, kind: 'danger' });
    }
  }

  function openEdit() {
    sellerTools.dataset.mode = 'edit';
    const titleInput = h('input', { class: 'input', type: 'text', maxlength: '80', required: true, value: listing.title });
    const desc = h('textarea', { class: 'input', maxlength: '2000', rows: '4' });
    desc.value = listing.description || '';
    const file = h('input', { class: 'input', type: 'file', accept: 'image/png,image/jpeg,image/gif,image/webp' });
    const save = h('button', { type: 'submit', class: 'btn btn-primary', text: 'Save changes' });
    const cancel = h('button', { type: 'button', class: 'btn btn-outline', text: 'Cancel' });
    const alert = formAlert();
    const form = h('form', { id: 'edit-form', novalidate: true }, alert,
      field({ label: 'Title', control: titleInput, name: 'title' }),
      field({ label: 'Description', control: desc, name: 'description' }),
      field({ label: 'Replace image', control: file, name: 'image', hint: 'PNG, JPEG, GIF or WebP.' }),
      h('div', { class: 'actions' }, save, cancel));
    const close = () => {
      delete sellerTools.dataset.mode;
      delete sellerTools.dataset.state;
      paintSellerTools();
      sellerTools.querySelector('#edit-listing')?.focus();
    };
    cancel.addEventListener('click', close);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      clearErrors(form, alert);
      if (!titleInput.value.trim()) {
        setFieldError(form, 'title', 'The title cannot be empty.');
        titleInput.focus();
        return;
      }
      busy(save, 'Saving…', async () => {
        try {
          const patch = {};
          if (titleInput.value.trim() !== listing.title) patch.title = titleInput.value.trim();
          if (desc.value.trim() !== (listing.description || '')) patch.description = desc.value.trim();
          if (Object.keys(patch).length) Object.assign(listing, await api.patch(`/api/listings/${id}`, patch));
          if (file.files[0]) {
            try {
              const res = await api.upload(`/api/listings/${id}/image`, file.files[0]);
              if (res && res.image_url) listing.image_url = res.image_url;
            } catch (err) {
              const reason = err.status === 413 ? 'The file is too large.' : err.status === 415 ? 'That file is not an image we can read.' : err.message;
              setFieldError(form, 'image', reason);
              file.focus();
              return;
            }
          }
          toast({ title: 'Saved', body: 'Your listing has been updated.', kind: 'success', timeout: 3000 });
          delete sellerTools.dataset.mode;
          delete sellerTools.dataset.state;
          paint();
          await refetchListing();
        } catch (err) {
          showApiError(form, alert, err);
        }
      });
    });
    replace(sellerTools, h('h3', { text: 'Edit listing' }), form);
    titleInput.focus();
  }

  // ---------- buy now ----------
  function paintBuyNow() {
    const l = listing;
    const offered = l.status !== 'closed' && Boolean(l.buy_now_price) && isLoggedIn() && !isSeller();
    buyNowBox.hidden = !offered;
    if (!offered) {
      delete buyNowBox.dataset.price;
      buyNowBox.replaceChildren();
      return;
    }
    // Rebuild only when the price changes, so an open "are you sure?" survives live updates.
    if (buyNowBox.dataset.price === l.buy_now_price) return;
    buyNowBox.dataset.price = l.buy_now_price;
    const price = formatMoney(l.buy_now_price);
    replace(buyNowBox, confirmButton(`Buy now for ${price}`, `Buy it now for ${price}? The auction ends at once.`, 'Yes, buy it', 'btn-primary', 'buy-now', buyNow));
  }

  async function buyNow() {
    buyNowAlert.hidden = true;
    try {
      await api.post(`/api/listings/${id}/buy`, {}, { headers: { 'Idempotency-Key': randomKey() } });
      if (!ctx.alive) return;
      toast({ title: 'You bought it!', body: `“${listing.title}” is yours. The seller has been told.`, kind: 'success', timeout: 8000 });
      announce('You bought this item.');
      await refetchListing();
      loadBids();
    } catch (err) {
      if (!ctx.alive) return;
      buyNowAlert.textContent = err.code === 'buy_now_unavailable'
        ? `Buy now is no longer available: ${err.message}`
        : `Could not buy it: ${err.message}`;
      buyNowAlert.hidden = false;
      listing.buy_now_price = err.code === 'buy_now_unavailable' ? null : listing.buy_now_price;
      paintBuyNow();
      refetchListing();
    }
  }

  // ---------- feedback (after a sale, between the seller and the winner) ----------
  let feedbackDone = null; // listing id + viewer for which the feedback box was built

  function feedbackParty() {
    const l = listing;
    const user = me();
    if (!l || l.status !== 'closed' || !l.winner || !user) return null;
    if (user.id === l.winner.id) return { other: l.seller, role: 'seller' };
    if (user.id === l.seller.id) return { other: l.winner, role: 'buyer' };
    return null;
  }

  function paintFeedback() {
    const party = feedbackParty();
    feedbackSection.hidden = !party;
    if (!party) {
      feedbackDone = null;
      return;
    }
    const key = `${id} ${me().id}`;
    if (feedbackDone === key) return; // a half-written comment survives live updates
    feedbackDone = key;
    const title = h('h2', { id: 'feedback-title', text: `Feedback on the ${party.role}` });
    const done = h('p', { class: 'alert alert-success', id: 'feedback-left', role: 'status', hidden: true, text: 'Feedback left. Thank you!' });
    const form = feedbackForm(party, () => { form.hidden = true; done.hidden = false; });
    replace(feedbackSection, h('div', { class: 'card-body' }, title,
      h('p', { class: 'muted' }, 'Rate ', h('a', { href: `/users/${party.other.id}`, text: `@${party.other.username}` }), ' for this sale. You can do it once.'),
      done, form));
    // Already rated (an earlier visit)? Their received feedback says so.
    api.get(`/api/users/${party.other.id}/feedback`, { query: { limit: 100 }, signal: ctx.signal }).then((page) => {
      if (!ctx.alive) return;
      const mine = (page.items || []).some((f) => f.listing_id === id && f.from_user && f.from_user.id === me()?.id);
      if (mine) { form.hidden = true; done.hidden = false; }
    }).catch(() => { /* the form still works; a second rating is refused as feedback_exists */ });
  }

  function feedbackForm(party, onDone) {
    const choices = [['1', 'Positive'], ['0', 'Neutral'], ['-1', 'Negative']].map(([value, label]) => {
      const radioId = uid('rating');
      return h('label', { for: radioId, class: `rating rating-${label.toLowerCase()}` },
        h('input', { type: 'radio', name: 'rating', id: radioId, value }), label);
    });
    const ratingError = h('div', { class: 'field-error rating-error', id: uid('rating-error'), dataset: { errorFor: 'rating' } });
    const ratingSet = h('fieldset', { class: 'radio-row', 'aria-describedby': ratingError.id },
      h('legend', { text: 'Your rating' }), choices);
    const comment = h('textarea', { class: 'input', maxlength: '500', rows: '3', placeholder: `How was it to deal with @${party.other.username}?` });
    const submit = h('button', { class: 'btn btn-primary', type: 'submit', text: 'Leave feedback' });
    const alert = formAlert();
    const form = h('form', { id: 'feedback-form', novalidate: true }, alert, ratingSet, ratingError,
      field({ label: 'Comment (optional)', control: comment, name: 'comment', hint: 'Up to 500 characters.' }),
      h('div', { class: 'actions' }, submit));
    ratingSet.addEventListener('change', () => { ratingError.textContent = ''; });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form, alert);
      const checked = form.querySelector('input[name="rating"]:checked');
      if (!checked) {
        setFieldError(form, 'rating', 'Choose a rating.');
        form.querySelector('input[name="rating"]').focus();
        return;
      }
      const payload = { rating: Number(checked.value) };
      if (comment.value.trim()) payload.comment = comment.value.trim();
      await busy(submit, 'Sending…', async () => {
        // The users service learns of the sale from the close event a moment after it: retry briefly.
        for (let attempt = 0; ; attempt += 1) {
          try {
            await api.post(`/api/listings/${id}/feedback`, payload);
            if (!ctx.alive) return;
            onDone();
            announce('Feedback left.');
            return;
          } catch (err) {
            if (!ctx.alive) return;
            if (err.code === 'feedback_exists') {
              onDone();
              return;
            }
            if (err.code === 'not_sold' && attempt < 5) {
              await new Promise((resolve) => { setTimeout(resolve, 600); });
              continue;
            }
            showApiError(form, alert, err);
            return;
          }
        }
      });
    });
    return form;
  }

  // ---------- bids ----------
  function bidRow(bid) {
    const mine = me() && bid.bidder_id === me().id;
    const name = bid.bidder_username || (bid.bidder && bid.bidder.username) || `user #${bid.bidder_id}`;
    return h('tr', { dataset: { bidId: bid.id } },
      h('td', {}, h('a', { href: `/users/${bid.bidder_id}`, text: name }), mine ? h('span', { class: 'badge badge-info', text: 'you' }) : null),
      h('td', { class: 'num', text: formatMoney(bid.amount) }),
      h('td', { class: 'small muted' }, h('time', { datetime: bid.placed_at, text: formatDateTime(bid.placed_at) })));
  }

  function renderBids() {
    const sorted = [...bids.values()].sort((a, b) => cents(b.amount) - cents(a.amount));
    bidRows.replaceChildren(...sorted.map(bidRow));
    noBids.hidden = sorted.length > 0;
    bidRows.closest('.table-wrap').hidden = sorted.length === 0;
    moreBids.hidden = !bidCursor;
  }

  async function loadBids(append = false) {
    try {
      const page = await api.get(`/api/listings/${id}/bids`, { query: { cursor: append ? bidCursor : undefined }, signal: ctx.signal });
      if (!ctx.alive) return;
      if (!append) bids.clear();
      for (const bid of page.items || []) bids.set(bid.id, bid);
      bidCursor = page.next_cursor || null;
      renderBids();
    } catch (err) {
      if (ctx.alive && err.name !== 'AbortError') setText(noBids, `Bid history unavailable: ${err.message}`);
    }
  }
  moreBids.addEventListener('click', () => loadBids(true));

  bidForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(bidForm, bidAlert);
    bidOk.hidden = true;
    const amount = bidInput.value.trim();
    const max = maxInput.value.trim();
    const money = /^\d+(\.\d{1,2})?$/;
    const invalid = (name, control, message) => {
      setFieldError(bidForm, name, message);
      control.focus();
    };
    // Either a bid, a maximum, or both (the system then bids for you up to the maximum).
    if (!max && !money.test(amount)) return invalid('amount', bidInput, 'Enter an amount like 12.50.');
    if (amount && !money.test(amount)) return invalid('amount', bidInput, 'Enter an amount like 12.50, or leave it empty to bid with your maximum only.');
    if (max && !money.test(max)) return invalid('max_amount', maxInput, 'Enter a maximum like 25.00.');
    if (amount && cents(amount) < cents(listing.min_next_bid)) return invalid('amount', bidInput, `Bid at least ${formatMoney(listing.min_next_bid)}.`);
    if (max && cents(max) < cents(listing.min_next_bid)) return invalid('max_amount', maxInput, `Your maximum must be at least ${formatMoney(listing.min_next_bid)}.`);
    if (max && amount && cents(max) < cents(amount)) return invalid('max_amount', maxInput, 'Your maximum cannot be below your bid.');
    const request = {};
    if (amount) request.amount = amount;
    if (max) request.max_amount = max;
    await busy(bidButton, 'Bidding…', async () => {
      try {
        const bid = await api.post(`/api/listings/${id}/bids`, request, { headers: { 'Idempotency-Key': randomKey() } });
        if (!ctx.alive) return;
        const known = bids.has(bid.id); // the live event may have been faster than this answer
        bids.set(bid.id, { ...bid, bidder_username: me() && me().username });
        if (!known) listing.bid_count = Math.max(listing.bid_count || 0, bid.bid_count || 0, (listing.bid_count || 0) + 1);
        // An answer without `leading` comes from plain bidding, where an accepted bid always leads.
        const leading = bid.leading !== false;
        Object.assign(listing, {
          current_price: bid.current_price || bid.amount,
          ends_at: bid.ends_at || listing.ends_at,
          min_next_bid: bid.min_next_bid || listing.min_next_bid,
        });
        if (leading) listing.leader_id = bid.bidder_id;
        else if (listing.leader_id === bid.bidder_id) listing.leader_id = null;
        myMax = leading && bid.max_amount ? bid.max_amount : null;
        if (!leading) {
          bidOk.className = 'alert alert-warning';
          bidOk.textContent = `You were outbid by an automatic bid: the price is now ${formatMoney(listing.current_price)}.`;
        } else if (bid.max_amount) {
          // The leader note says it (and stays live); a second copy here would only repeat it.
          bidOk.className = 'alert alert-success';
          bidOk.textContent = '';
        } else {
          bidOk.className = 'alert alert-success';
          bidOk.textContent = `Your bid of ${formatMoney(bid.amount)} is in.`;
        }
        bidOk.hidden = !bidOk.textContent;
        maxInput.value = '';
        renderBids();
        paintAuction();
        scheduleRefetch();
      } catch (err) {
        if (!ctx.alive) return;
        if (err.code === 'bid_too_low') {
          if (err.problem.min_next_bid) listing.min_next_bid = err.problem.min_next_bid;
          paintAuction();
          setFieldError(bidForm, 'amount', `Someone got there first: bid at least ${formatMoney(listing.min_next_bid)}.`);
          bidInput.focus();
        } else if (err.code === 'auction_closed') {
          showAlert(bidAlert, 'This auction has ended.');
          refetchListing();
        } else if (err.code === 'own_listing') {
          showAlert(bidAlert, 'You cannot bid on your own listing.');
        } else {
          showApiError(bidForm, bidAlert, err, { fieldMap: { amount: 'amount', max_amount: 'max_amount' } });
        }
      }
    });
  });

  // ---------- comments ----------
  const avatars = new Map(); // author id -> avatar url, learnt from loaded comments and listing data

  function commentItem(c) {
    const name = c.author_username || (c.author && c.author.username) || `user #${c.author_id}`;
    const authorId = c.author_id || (c.author && c.author.id);
    if (c.author && c.author.avatar_url) avatars.set(authorId, c.author.avatar_url);
    if (listing && listing.seller) avatars.set(listing.seller.id, listing.seller.avatar_url);
    const viewer = me();
    if (viewer && viewer.avatar_url) avatars.set(viewer.id, viewer.avatar_url);
    return h('li', { class: 'comment', dataset: { commentId: c.id } },
      avatar((c.author && c.author.avatar_url) || avatars.get(authorId), name, 'md'),
      h('div', {},
        h('div', { class: 'head' }, h('a', { href: `/users/${authorId}` }, h('strong', { text: `@${name}` })), ' ',
          h('time', { class: 'muted', datetime: c.created_at, text: formatDateTime(c.created_at) })),
        h('p', { class: 'text', text: c.text })));
  }

  function renderComments() {
    const sorted = [...comments.values()].sort((a, b) => Date.parse(b.created_at) - Date.parse(a.created_at) || b.id - a.id);
    commentList.replaceChildren(...sorted.map(commentItem));
    noComments.hidden = sorted.length > 0;
    setText(commentCount, String(comments.size) + (commentCursor ? '+' : ''));
    commentCount.setAttribute('aria-label', pluralize(comments.size, 'comment', 'comments'));
    moreComments.hidden = !commentCursor;
  }

  async function loadComments(append = false) {
    try {
      const page = await api.get(`/api/listings/${id}/comments`, { query: { cursor: append ? commentCursor : undefined }, signal: ctx.signal });
      if (!ctx.alive) return;
      if (!append) comments.clear();
      for (const c of page.items || []) comments.set(c.id, c);
      commentCursor = page.next_cursor || null;
      renderComments();
    } catch (err) {
      if (ctx.alive && err.name !== 'AbortError') setText(noComments, `Comments unavailable: ${err.message}`);
    }
  }
  moreComments.addEventListener('click', () => loadComments(true));

  commentForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearErrors(commentForm, commentAlert);
    const text = commentText.value.trim();
    if (!text) {
      setFieldError(commentForm, 'text', 'Write something first.');
      commentText.focus();
      return;
    }
    await busy(commentButton, 'Posting…', async () => {
      try {
        const comment = await api.post(`/api/listings/${id}/comments`, { text });
        if (!ctx.alive) return;
        comments.set(comment.id, { author_username: me() && me().username, author_id: me() && me().id, ...comment });
        commentText.value = '';
        renderComments();
      } catch (err) {
        if (!ctx.alive) return;
        if (err.code === 'auction_closed') refetchListing();
        showApiError(commentForm, commentAlert, err);
      }
    });
  });

  // ---------- watch ----------
  watchButton.addEventListener('click', async () => {
    const next = !listing.watched;
    listing.watched = next;
    paintWatch();
    try {
      if (next) await api.put(`/api/listings/${id}/watch`);
      else await api.del(`/api/listings/${id}/watch`);
      announce(next ? 'Added to your watchlist.' : 'Removed from your watchlist.');
    } catch (err) {
      listing.watched = !next;
      paintWatch();
      toast({ title: 'Watchlist not updated', body: err.message, kind: 'danger' });
    }
  });

  // ---------- loading and live updates ----------
  async function refetchListing() {
    try {
      const fresh = await api.get(`/api/listings/${id}`, { signal: ctx.signal });
      if (!ctx.alive) return;
      const wasClosed = listing && listing.status === 'closed';
      listing = fresh;
      paint();
      if (!wasClosed && listing.status === 'closed') {
        stopPolling();
        loadBids();
      }
    } catch (err) {
      if (!ctx.alive || err.name === 'AbortError') return;
      if (err.status === 404) showGone();
    }
  }

  function scheduleRefetch() {
    clearTimeout(refetchTimer);
    refetchTimer = setTimeout(refetchListing, 250);
  }
  ctx.cleanup(() => clearTimeout(refetchTimer));

  function showGone() {
    setTitle('Listing not found');
    stopPolling();
    keepingFocus(ctx.root, () => replace(body, h('div', { class: 'card' }, h('div', { class: 'card-body empty' },
      h('h1', { text: 'Listing not found' }),
      h('p', { text: 'It may have been deleted.' }),
      h('a', { class: 'btn btn-primary', href: '/', text: 'Back to all listings' })))));
  }

  ctx.subscribe(topic, (event, data) => {
    if (!listing) return;
    switch (event) {
      case 'bid.placed': {
        bids.set(data.bid_id, {
          id: data.bid_id, amount: data.amount, bidder_id: data.bidder_id, bidder_username: data.bidder_username, placed_at: data.placed_at,
        });
        if (cents(data.amount) >= cents(listing.current_price) || !listing.bid_count) {
          listing.current_price = data.amount;
          listing.leader_id = data.bidder_id;
        }
        listing.bid_count = Math.max(listing.bid_count || 0, data.bid_count || 0);
        if (data.reserve_met !== undefined) listing.reserve_met = data.reserve_met;
        // Buying now ends with the first bid (with a reserve: once a bid reaches it).
        if (data.buy_now_available === false || (data.buy_now_available === undefined && (listing.reserve_met ?? null) === null)) {
          listing.buy_now_price = null;
        }
        if (data.ends_at) listing.ends_at = data.ends_at;
        if (listing.bid_increment) listing.min_next_bid = centsToString(cents(listing.current_price) + cents(listing.bid_increment));
        renderBids();
        paintAuction();
        priceEl.classList.remove('flash');
        void priceEl.offsetWidth;
        priceEl.classList.add('flash');
        const who = me() && data.bidder_id === me().id ? 'You' : data.bidder_username;
        announce(`New bid: ${formatMoney(data.amount)} by ${who}.`);
        scheduleRefetch(); // exact minimum next bid and leader from the server
        break;
      }
      case 'comment.posted':
        comments.set(data.comment_id, {
          id: data.comment_id, author_id: data.author_id, author_username: data.author_username, text: data.text, created_at: data.created_at,
          ...(comments.get(data.comment_id) || {}),
        });
        renderComments();
        if (!me() || data.author_id !== me().id) announce(`New comment from ${data.author_username}.`);
        break;
      case 'auction.extended':
        listing.ends_at = data.ends_at;
        paint();
        announce('The auction has been extended.');
        break;
      case 'auction.closed':
        listing.status = 'closed';
        listing.buy_now_price = null;
        if (data.final_price) listing.current_price = data.final_price;
        listing.winner = data.winner_id ? { id: data.winner_id, username: data.winner_username || `user #${data.winner_id}` } : null;
        stopPolling();
        paint();
        if (listing.winner && me() && listing.winner.id === me().id) announce('The auction has ended. You won!');
        else announce(listing.winner ? `The auction has ended. Winner: ${listing.winner.username}.` : 'The auction has ended with no bids.');
        scheduleRefetch();
        break;
      case 'listing.updated':
        if (data.title !== undefined) listing.title = data.title;
        if (data.description !== undefined) listing.description = data.description;
        if (data.image_url !== undefined) listing.image_url = data.image_url;
        paint();
        break;
      case 'listing.deleted':
        showGone();
        break;
      default:
        break;
    }
  });

  ctx.everySecond(tick);
  ctx.onResync(() => { refetchListing(); loadBids(); loadComments(); });
  ctx.onSession(() => { refetchListing(); });

  (async () => {
    try {
      listing = await api.get(`/api/listings/${id}`, { signal: ctx.signal });
    } catch (err) {
      if (!ctx.alive || err.name === 'AbortError') return;
      if (err.status === 404) {
        showGone();
        return;
      }
      errorBox.textContent = err instanceof ApiError ? `Could not load this listing: ${err.message}` : 'Could not load this listing.';
      errorBox.hidden = false;
      return;
    }
    if (!ctx.alive) return;
    build();
    paint();
    loadBids();
    loadComments();
  })();

  return null;
}
