// Inbox: conversations (peer avatar, last message, unread count), start a chat by searching users, and the
// chat view with live messages and "load older". Messages arrive on the private topic user.<me>.
import { api, currentUser } from './api.js';
import { refreshUnread, setTitle, setUnread } from './badge.js';
import { avatar, formatStamp, h, icon, linkify, randomKey, replace, setText } from './dom.js';
import { busy, clearErrors, field, formAlert, setFieldError, showApiError } from './forms.js';

const MESSAGES_PAGE = 30;

export function mount(ctx) {
  setTitle('Inbox');
  let chats = []; // [{id, peer, last_message, unread}]
  let chatsCursor = null;
  let openId = null;
  let chatView = null; // the open chat's controller

  // ---------- sidebar ----------
  const searchInput = h('input', { class: 'input', type: 'search', placeholder: 'Search users…', autocomplete: 'off', maxlength: '64' });
  const results = h('ul', { class: 'search-results', id: 'user-results', 'aria-live': 'polite' });
  const searchForm = h('form', { role: 'search', 'aria-label': 'Find a user to message' },
    field({ label: 'Start a conversation', control: searchInput, name: 'q', hint: 'Type a username.' }));
  const chatList = h('ul', { class: 'chat-list', id: 'chat-list' });
  const noChats = h('p', { class: 'muted', text: 'No conversations yet.' });
  const moreChats = h('button', { type: 'button', class: 'btn btn-sm btn-outline', text: 'Show more conversations', hidden: true });
  const side = h('aside', { class: 'card inbox-side', 'aria-label': 'Conversations' },
    searchForm, results,
    h('h2', { class: 'section-title', text: 'Conversations' }),
    noChats, chatList, h('div', { class: 'load-more' }, moreChats));
  const panel = h('section', { class: 'card chat-panel', id: 'chat-panel' });

  replace(ctx.root, h('div', { class: 'page-head' }, h('h1', { text: 'Inbox' })), h('div', { class: 'inbox' }, side, panel));

  function chatItem(chat) {
    const last = chat.last_message;
    const lastText = last ? `${currentUser() && last.sender_id === currentUser().id ? 'You: ' : ''}${last.text}` : 'No messages yet';
    const unread = h('span', { class: `badge ${chat.unread ? 'badge-primary' : ''}`, 'aria-label': `${chat.unread} unread`, text: String(chat.unread || 0), hidden: !chat.unread });
    return h('li', {}, h('a', {
      class: 'chat-item', href: `/inbox/${chat.id}`, dataset: { chatId: chat.id }, 'aria-current': chat.id === openId ? 'page' : null,
    },
    avatar(chat.peer.avatar_url, chat.peer.username, 'md'),
    h('span', { class: 'info' },
      h('span', { class: 'peer', text: chat.peer.username }),
      h('span', { class: 'last', text: lastText })),
    h('span', { class: 'small muted stamp' }, last ? formatStamp(last.created_at) : ''), ' ', unread));
  }

  function renderChats() {
    chats.sort((a, b) => Date.parse((b.last_message || {}).created_at || 0) - Date.parse((a.last_message || {}).created_at || 0));
    chatList.replaceChildren(...chats.map(chatItem));
    noChats.hidden = chats.length > 0;
    moreChats.hidden = !chatsCursor;
  }

  async function loadChats(append = false) {
    try {
      const page = await api.get('/api/chats', { query: { cursor: append ? chatsCursor : undefined }, signal: ctx.signal });
      if (!ctx.alive) return;
      const items = page.items || [];
      if (append) {
        const known = new Set(chats.map((c) => c.id));
        chats.push(...items.filter((c) => !known.has(c.id)));
      } else {
        chats = items;
      }
      chatsCursor = page.next_cursor || null;
      renderChats();
      if (chatView) chatView.peerKnown(chats.find((c) => c.id === openId));
    } catch (err) {
      if (ctx.alive && err.name !== 'AbortError') setText(noChats, `Conversations could not be loaded: ${err.message}`);
    }
  }
  moreChats.addEventListener('click', () => loadChats(true));

  // user search
  let searchTimer = null;
  let searchSeq = 0;
  async function searchUsers() {
    const q = searchInput.value.trim();
    const seq = ++searchSeq;
    if (!q) {
      results.replaceChildren();
      return;
    }
    try {
      const page = await api.get('/api/users', { query: { q, limit: 8 }, signal: ctx.signal });
      if (!ctx.alive || seq !== searchSeq) return;
      const me = currentUser();
      const people = (page.items || []).filter((u) => !me || u.id !== me.id);
      if (!people.length) {
        replace(results, h('li', { class: 'muted', text: `No users match “${q}”.` }));
        return;
      }
      replace(results, people.map((u) => {
        const button = h('button', { type: 'button', class: 'btn btn-sm btn-primary', 'aria-label': `Message ${u.username}`, text: 'Message' });
        button.addEventListener('click', () => startChat(u, button));
        return h('li', {}, avatar(u.avatar_url, u.username, 'sm'), h('span', { class: 'name', text: u.username }), button);
      }));
    } catch (err) {
      if (ctx.alive && err.name !== 'AbortError') replace(results, h('li', { class: 'field-error', text: err.message }));
    }
  }
  searchInput.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(searchUsers, 250);
  });
  searchForm.addEventListener('submit', (event) => {
    event.preventDefault();
    clearTimeout(searchTimer);
    searchUsers();
  });
  ctx.cleanup(() => clearTimeout(searchTimer));

  async function startChat(user, button) {
    await busy(button, '…', async () => {
      try {
        const chat = await api.post('/api/chats', { user_id: user.id });
        if (!chats.some((c) => c.id === chat.id)) {
          chats.unshift({ unread: 0, last_message: null, ...chat, peer: chat.peer || user });
          renderChats();
        }
        searchInput.value = '';
        results.replaceChildren();
        ctx.navigate(`/inbox/${chat.id}`);
      } catch (err) {
        replace(results, h('li', { class: 'field-error', text: `Could not start the chat: ${err.message}` }));
      }
    });
  }

  // ---------- chat panel ----------
  function showWelcome() {
    replace(panel, h('div', { class: 'welcome' },
      h('h2', { text: 'Welcome to your inbox!' }),
      h('p', { text: 'Select a conversation to start messaging.' }),
      h('p', { class: 'muted', text: 'You can start a new one by searching for a user.' })));
  }

  function openChat(chatId) {
    if (chatView) chatView.destroy();
    chatView = null;
    openId = chatId;
    for (const a of chatList.querySelectorAll('.chat-item')) {
      if (Number(a.dataset.chatId) === chatId) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    if (!chatId) {
      setTitle('Inbox');
      showWelcome();
      return;
    }
    chatView = chatPanel(chatId);
    const known = chats.find((c) => c.id === chatId);
    if (known) {
      chatView.peerKnown(known);
    } else {
      // Not on the first page of conversations (or brand new): ask for this one.
      const view = chatView;
      api.get(`/api/chats/${chatId}`, { signal: ctx.signal }).then((chat) => {
        if (ctx.alive && chatView === view) view.peerKnown(chat);
      }).catch(() => { /* the panel reports a missing chat itself */ });
    }
  }

  function chatPanel(chatId) {
    const messages = new Map(); // id -> message
    let cursor = null;
    let alive = true;
    let readTimer = null;
    const peerBox = h('div', { class: 'chat-head' }, h('h2', { id: 'chat-title', text: 'Conversation' }));
    const older = h('button', { type: 'button', class: 'btn btn-sm btn-outline', id: 'load-older', text: 'Load older messages', hidden: true });
    const log = h('div', { class: 'messages', id: 'messages', role: 'log', 'aria-live': 'polite', 'aria-labelledby': 'chat-title', tabindex: '0' });
    const text = h('textarea', { class: 'input', maxlength: '1000', rows: '2', placeholder: 'Write a message…' });
    const send = h('button', { type: 'submit', class: 'btn btn-success', 'aria-label': 'Send message' }, icon('send'), h('span', { text: 'Send' }));
    const alert = formAlert();
    const textField = field({ label: 'Message', control: text, name: 'text', hint: 'Enter sends, Shift+Enter starts a new line.' });
    const form = h('form', { class: 'chat-form', id: 'chat-form', novalidate: true }, alert, h('div', { class: 'row' }, textField, send));
    replace(panel, peerBox, h('div', { class: 'load-more' }, older), log, form);

    function messageEl(m) {
      const mine = currentUser() && m.sender_id === currentUser().id;
      return h('div', { class: `msg ${mine ? 'mine' : ''}`, dataset: { messageId: m.id } },
        h('p', { class: 'text' }, linkify(m.text)),
        h('time', { datetime: m.created_at, text: formatStamp(m.created_at) }));
    }

    /** mode: 'older' keeps the reader's place, 'new' follows the conversation if they were at the end. */
    function render(mode = 'initial', forceBottom = false) {
      const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 60;
      const fromBottom = log.scrollHeight - log.scrollTop;
      const sorted = [...messages.values()].sort((a, b) => Date.parse(a.created_at) - Date.parse(b.created_at) || a.id - b.id);
      log.replaceChildren(...sorted.map(messageEl));
      if (!sorted.length) log.append(h('p', { class: 'muted', text: 'No messages yet. Say hello!' }));
      older.hidden = !cursor;
      if (mode === 'older') log.scrollTop = log.scrollHeight - fromBottom;
      else if (mode === 'initial' || atBottom || forceBottom) log.scrollTop = log.scrollHeight;
    }

    async function load(olderPage = false) {
      try {
        const page = await api.get(`/api/chats/${chatId}/messages`, {
          query: { limit: MESSAGES_PAGE, cursor: olderPage ? cursor : undefined }, signal: ctx.signal,
        });
        if (!alive) return;
        for (const m of page.items || []) messages.set(m.id, m);
        if (olderPage || cursor === null) cursor = page.next_cursor || null;
        render(olderPage ? 'older' : 'initial');
        markRead();
      } catch (err) {
        if (!alive || err.name === 'AbortError') return;
        if (err.status === 403 || err.status === 404) {
          replace(panel, h('div', { class: 'welcome' }, h('h2', { text: 'Conversation not found' }), h('p', { text: 'It does not exist or is not yours.' })));
        } else {
          replace(log, h('p', { class: 'field-error', text: `Messages could not be loaded: ${err.message}` }));
        }
      }
    }
    older.addEventListener('click', () => load(true));

    function markRead() {
      clearTimeout(readTimer);
      readTimer = setTimeout(async () => {
        if (!alive || document.visibilityState === 'hidden') return;
        const chat = chats.find((c) => c.id === chatId);
        try {
          const result = await api.post(`/api/chats/${chatId}/read`, {});
          if (chat && chat.unread) {
            chat.unread = 0;
            renderChats();
          }
          // The answer carries the new total (a chat.unread push follows too).
          if (result && typeof result.unread === 'number') setUnread(result.unread);
          else refreshUnread();
        } catch { /* the next message or visit retries */ }
      }, 300);
    }
    const onVisible = () => { if (document.visibilityState === 'visible') markRead(); };
    document.addEventListener('visibilitychange', onVisible);

    text.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      clearErrors(form, alert);
      const value = text.value.trim();
      if (!value) {
        setFieldError(form, 'text', 'Write a message first.');
        text.focus();
        return;
      }
      await busy(send, 'Sending…', async () => {
        try {
          const message = await api.post(`/api/chats/${chatId}/messages`, { text: value }, { headers: { 'Idempotency-Key': randomKey() } });
          if (!alive) return;
          text.value = '';
          receive(message);
        } catch (err) {
          if (alive) showApiError(form, alert, err);
        }
      });
      text.focus();
    });

    function receive(message) {
      const mine = currentUser() && message.sender_id === currentUser().id;
      messages.set(message.id, message);
      render('new', mine);
      const chat = chats.find((c) => c.id === chatId);
      if (chat) {
        chat.last_message = message;
        renderChats();
      }
      if (!mine) markRead();
    }

    load();
    return {
      chatId,
      receive,
      reload: () => load(),
      peerKnown(chat) {
        if (!chat) return;
        const title = h('h2', { id: 'chat-title' }, h('a', { href: `/users/${chat.peer.id}`, text: chat.peer.username }));
        replace(peerBox, avatar(chat.peer.avatar_url, chat.peer.username, 'md'), title);
        setTitle(`Chat with ${chat.peer.username}`);
      },
      destroy() {
        alive = false;
        clearTimeout(readTimer);
        document.removeEventListener('visibilitychange', onVisible);
      },
    };
  }
  ctx.cleanup(() => { if (chatView) chatView.destroy(); });

  // ---------- live ----------
  ctx.onPrivate((event, data) => {
    if (event !== 'chat.message') return;
    const message = data.message;
    if (!message) return;
    const chatId = Number(data.chat_id || message.chat_id);
    if (chatView && chatView.chatId === chatId) {
      chatView.receive(message);
      return;
    }
    const chat = chats.find((c) => c.id === chatId);
    if (!chat) {
      loadChats();
      return;
    }
    chat.last_message = message;
    if (currentUser() && message.sender_id !== currentUser().id) chat.unread = (chat.unread || 0) + 1;
    renderChats();
  });
  ctx.onResync(() => {
    loadChats();
    if (chatView) chatView.reload();
  });

  loadChats();
  openChat(ctx.params[0] ? Number(ctx.params[0]) : null);

  return {
    update() {
      const next = ctx.params[0] ? Number(ctx.params[0]) : null;
      if (next !== openId) openChat(next);
      const target = next ? panel.querySelector('textarea') : null;
      if (target) target.focus();
    },
  };
}

