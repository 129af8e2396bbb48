// Entry point of the chat page: load who I am and my chats, mount the views, connect.

import * as actions from './actions.js';
import { $, h, hydrateIcons, icon } from './dom.js';
import { displayName } from './format.js';
import { makeFrameHandler } from './frames.js';
import { errorText, locale, onLocaleChange, t, translateDom } from './i18n.js';
import { mountNotifications } from './notify.js';
import { Socket } from './socket.js';
import * as store from './state.js';
import { isDnd, statusBadge, userAvatar } from './ui/avatar.js';
import * as composer from './ui/composer.js';
import { blockDialog, chatInfoDialog } from './ui/chatinfo.js';
import { confirmDialog, newChatDialog, signOut } from './ui/dialogs.js';
import { settingsDialog } from './ui/settings.js';
import { reportDialog, twoFactorGate } from './ui/trust.js';
import { renderHeader } from './ui/header.js';
import { mentionsDialog } from './ui/mentions.js';
import { muteMenu, profileMenu } from './ui/menu.js';
import { mountMessages, revealMessage } from './ui/messages.js';
import { mountPinBar } from './ui/pinbar.js';
import { searchDialog } from './ui/search.js';
import { mountThreadPanel, openThread, threadsDialog } from './ui/thread.js';
import { mountSidebar } from './ui/sidebar.js';
import { quickSwitcher } from './ui/switcher.js';
import { attempt, toast } from './ui/toast.js';
import { registerWorker } from './ui/push.js';
import { goToLogin, refreshSession } from './api.js';

const { state } = store;
const STATUS_KEYS = { connecting: 'conn.connecting', connected: 'conn.connected', reconnecting: 'conn.reconnecting', offline: 'conn.offline' };

async function main() {
  translateDom();
  hydrateIcons();
  if ((await loadInitialState()) === TWO_FACTOR_FIRST) {
    showTwoFactorGate();
    return;
  }
  mountSidebar({ onOpen: openChat, onOpenPerson: openPerson });
  mountMessages({ onReply: composer.startReply, onEdit: composer.startEdit, onDelete: confirmDelete, onReport: reportDialog, onThread: openThread });
  mountThreadPanel();
  mountPinBar({ onReveal: reveal });
  composer.mountComposer({ onOpen: openChat });
  mountNotifications({ onOpen: openChat });
  bindChrome();
  bindKeys();
  subscribe();
  renderMe();
  const socket = new Socket({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
    onFrame: (frame) => handle(frame),
    onStatus: showConnection,
    onBanned: goToLogin,
    beforeReconnect: checkSession,
  });
  const handle = makeFrameHandler(socket);
  actions.useSocket(socket);
  socket.start();
  registerWorker();
  actions.restoreOutbox();
  // E-mails (digests) are written in the language the app is used in.
  const syncLanguage = (code) => {
    if (state.me && state.me.language && state.me.language !== code) {
      actions.updateProfile({ language: code }).catch(() => {});
    }
  };
  syncLanguage(locale());
  onLocaleChange(syncLanguage);
  document.body.classList.remove('is-loading');
  const link = new URLSearchParams(location.search);
  const fromHash = Number(location.hash.slice(1));
  if (Number(link.get('chat')) > 0) openLink(Number(link.get('chat')), Number(link.get('message')));
  else if (fromHash > 0) openChat(fromHash);
  else welcomeIfNew();
  // A push notification clicked while this tab is open (sw.js): the chat at the message.
  navigator.serviceWorker?.addEventListener('message', (event) => {
    const { type, chat_id: chatId, message_id: messageId } = event.data || {};
    if (type === 'open-link' && chatId > 0) openLink(chatId, messageId);
  });
  // A link to a chat followed in this tab (an e-mail's): open it.
  window.addEventListener('hashchange', () => {
    const chatId = Number(location.hash.slice(1));
    if (chatId > 0 && chatId !== state.activeChatId) openChat(chatId);
  });
}

const TWO_FACTOR_FIRST = 'two-factor-first';

async function loadInitialState() {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await actions.loadMe();
      await actions.loadChats();
      await actions.loadBlocks().catch(() => {});
      return null;
    } catch (error) {
      if (error.status === 401) return new Promise(() => {}); // on the way to /login
      if (error.code === '2fa_required') return TWO_FACTOR_FIRST; // retrying cannot help
      toast(t('app.loadRetry', { error: errorText(error) }), { error: true });
      await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * 2 ** attempt)));
    }
  }
}

/** PARLEY_REQUIRE_2FA and no second factor yet: only its setup, no chats and no socket;
 * once it is on, the page starts again as usual. */
function showTwoFactorGate() {
  $('#layout').hidden = true;
  document.body.classList.add('auth-page', 'needs-2fa');
  document.body.append(twoFactorGate({ onDone: () => location.reload(), onSignOut: signOut }));
  document.body.classList.remove('is-loading');
}

/** The handshake's 401 is invisible to scripts: ask the API, which refreshes or signs out. */
async function checkSession() {
  try {
    await actions.loadMe();
    // PARLEY_REQUIRE_2FA refuses the handshake of a user without a second factor, but
    // not /profile: ask a route it guards, whose 2fa_required answer reloads the page.
    if (!state.me?.two_factor) await actions.loadBlocks();
  } catch (error) {
    if (error.status === 401) await refreshSession();
  }
}

function showConnection(status) {
  store.setConnection(status);
  const el = $('#connection-status');
  el.dataset.state = status;
  const label = STATUS_KEYS[status] ? t(STATUS_KEYS[status]) : status;
  el.querySelector('.conn-label').textContent = label;
  el.title = label;
}

function renderMe() {
  if (!state.me) return;
  const avatar = Object.assign(userAvatar(state.me, { size: 'avatar-sm' }), { id: 'me-avatar' });
  if (isDnd(state.me)) avatar.append(h('span', { class: 'dnd-moon', testid: 'dnd-moon', title: t('mind.dnd.active') }, icon('moon')));
  $('#me-avatar').replaceWith(avatar);
  $('#me-name').replaceChildren(displayName(state.me), statusBadge(state.me) || '');
}

// ---- opening chats ----------------------------------------------------------------------

/** Opens a chat; with `around`, at that message (loaded with ?around= when not loaded). */
async function openChat(chatId, { around = null } = {}) {
  const previous = state.activeChatId;
  if (!state.chats.has(chatId)) {
    const ok = await attempt(() => actions.loadChat(chatId));
    if (!ok) return;
  }
  const chat = state.chats.get(chatId);
  const before = previous != null ? state.chats.get(previous) : null;
  // The conversation shown before it existed has just been created: what is being typed
  // in the composer stays (it was not written for another chat).
  const started = Boolean(before?.virtual && chat.type === 'direct' && chat.peer?.id === before.peer?.id);
  if (previous !== chatId) store.discardVirtualDirect(previous); // if it was never started
  store.setActiveChat(chatId);
  if (previous !== chatId) composer.switchChat(previous, chatId, { keepInput: started });
  history.replaceState(null, '', chat.virtual ? '/chat' : `/chat#${chatId}`);
  const hist = store.historyOf(chatId);
  if (around != null && !hist.bySeq.has(around)) {
    await attempt(() => actions.loadAround(chatId, around));
  } else if (!hist.loaded && !hist.loading) {
    // Unread messages start further back than the newest page reaches: open at my read
    // marker (the "new messages" divider goes there, and only what is shown gets read).
    const unreadFrom = chat.unread_count > 0 ? actions.unreadStart(chat) : null;
    await attempt(() => (unreadFrom != null ? actions.loadAround(chatId, unreadFrom) : actions.loadLatest(chatId)));
  }
  if (around != null) await revealMessage(chatId, around);
  else composer.focusComposer();
}

/** A link to a message (`/chat?chat=ID&message=MESSAGE_ID`): the chat, at the message. */
async function openLink(chatId, messageId) {
  let seq = null;
  if (messageId > 0) {
    try {
      const msg = await actions.fetchMessage(messageId);
      if (msg.chat_id === chatId) seq = msg.seq;
    } catch (error) {
      toast(errorText(error), { error: true });
    }
  }
  await openChat(chatId, { around: seq });
}

/** A person from search or the switcher: their direct chat, or one shown before it exists. */
function openPerson(user) {
  const existing = store.directWith(user.id);
  if (existing) return openChat(existing.id);
  const chat = store.virtualDirect(user);
  return openChat(chat.id);
}

function showActive() {
  const chatId = state.activeChatId;
  const open = chatId != null && state.chats.has(chatId);
  $('#chat-view').hidden = !open;
  $('#empty-state').hidden = open;
  $('#layout').dataset.view = open ? 'chat' : 'list';
  if (!open) {
    history.replaceState(null, '', '/chat');
    return;
  }
  renderHeader();
  renderTyping();
}

function closeChat() {
  store.setActiveChat(null);
}

/** First visit after registering: open #general with a short welcome. */
function welcomeIfNew() {
  let fresh = false;
  try {
    fresh = sessionStorage.getItem('parley.welcome') === '1';
    sessionStorage.removeItem('parley.welcome');
  } catch { /* storage disabled */ }
  if (!fresh) return;
  const general = store.sortedChats().find((c) => c.type === 'channel' && c.title === 'general');
  if (!general) return;
  openChat(general.id);
  const close = h('button', { class: 'icon-btn', testid: 'welcome-close', title: t('common.close'), 'aria-label': t('common.close'), dataset: { icon: 'close' } });
  const banner = h('div', { class: 'welcome', testid: 'welcome-banner', role: 'status' },
    h('div', { class: 'welcome-text' },
      h('strong', null, t('welcome.title', { name: displayName(state.me) })),
      h('span', null, t('welcome.text'))),
    close);
  close.addEventListener('click', () => banner.remove());
  hydrateIcons(banner);
  $('#chat-view').insertBefore(banner, $('.messages-wrap'));
  const remove = store.on('active', () => { banner.remove(); remove(); });
}

// ---- header buttons, dialogs ------------------------------------------------------------

function bindChrome() {
  $('#profile-button').addEventListener('click', (event) => profileMenu(event.currentTarget, {
    onMentions: showMentions,
  }));
  $('#mentions-button').addEventListener('click', showMentions);
  $('#threads-button').addEventListener('click', () => threadsDialog({ onOpen: openThreadOf }));
  $('#settings-button').addEventListener('click', () => settingsDialog());
  // The second factor went away meanwhile (an admin reset it): start again, which shows
  // the setup page (loadInitialState) instead of a chat whose requests all fail.
  window.addEventListener('parley:2fa-required', () => location.reload(), { once: true });
  $('#new-chat-button').addEventListener('click', () => newChatDialog({ onOpen: openChat }));
  $('#message-search-button').addEventListener('click', () => searchDialog({ onReveal: reveal }));
  $('#chat-search-button').addEventListener('click', () => searchDialog({ chatId: state.activeChatId, onReveal: reveal }));
  $('#back-button').addEventListener('click', closeChat);
  $('#chat-info-button').addEventListener('click', () => {
    const chat = state.chats.get(state.activeChatId);
    if (chat) chatInfoDialog(chat, { onBlockToggle: toggleBlock });
  });
  $('#block-button').addEventListener('click', toggleBlock);
  $('#mute-button').addEventListener('click', (event) => {
    const chat = state.chats.get(state.activeChatId);
    if (!chat) return;
    if (store.isMuted(chat)) attempt(() => actions.muteChat(chat.id, null));
    else muteMenu(event.currentTarget, (until) => attempt(() => actions.muteChat(chat.id, until)));
  });
  $('#join-button').addEventListener('click', () => attempt(async () => {
    await actions.joinChannel(state.activeChatId);
    composer.refreshAvailability();
  }));
}

/** From the Threads view: the root's chat, then its thread beside it. */
async function openThreadOf(root) {
  await openChat(root.chat_id);
  if (state.activeChatId === root.chat_id) openThread(root);
}

function showMentions() {
  mentionsDialog({ onReveal: reveal });
}

/** Keys that work everywhere: Escape, Ctrl+K, Alt+↑/↓. */
function bindKeys() {
  // Capture phase: one Escape closes the open dialog even when a search field inside it
  // would otherwise use the key to clear itself first.
  window.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape' || event.defaultPrevented) return;
    const dialogs = document.querySelectorAll('dialog[open]');
    if (dialogs.length) {
      event.preventDefault();
      event.stopPropagation();
      dialogs[dialogs.length - 1].close();
    }
  }, true);
  document.addEventListener('keydown', (event) => {
    const mod = event.ctrlKey || event.metaKey;
    if (mod && !event.altKey && !event.shiftKey && event.key.toLowerCase() === 'k') {
      event.preventDefault();
      if (!document.querySelector('dialog[open]')) quickSwitcher({ onOpen: openChat, onOpenPerson: openPerson });
      return;
    }
    if (event.altKey && !mod && (event.key === 'ArrowUp' || event.key === 'ArrowDown')) {
      if (document.querySelector('dialog[open]')) return;
      event.preventDefault();
      stepChat(event.key === 'ArrowUp' ? -1 : 1);
      return;
    }
    if (event.key === 'Escape' && !event.defaultPrevented && !document.querySelector('dialog[open]') && window.innerWidth <= 760) closeChat();
  });
}

/** Alt+↑/↓: the chat above or below the open one in the sidebar's order. */
function stepChat(delta) {
  const chats = store.sortedChats();
  if (!chats.length) return;
  const index = chats.findIndex((c) => c.id === state.activeChatId);
  const next = index === -1 ? (delta > 0 ? 0 : chats.length - 1) : index + delta;
  if (next >= 0 && next < chats.length) openChat(chats[next].id);
}

function reveal(chatId, seq) {
  return openChat(chatId, { around: seq });
}

async function toggleBlock() {
  const chat = state.chats.get(state.activeChatId);
  if (!chat || !chat.peer) return;
  const peer = chat.peer;
  if (state.blocked.has(peer.id)) {
    await attempt(() => actions.unblockUser(peer.id));
    return;
  }
  const seconds = await blockDialog(peer); // undefined: cancelled; null: forever
  if (seconds !== undefined) await attempt(() => actions.blockUser(peer.id, seconds));
}

async function confirmDelete(msg) {
  const ok = await confirmDialog({ title: t('messages.deleteTitle'), text: t('messages.deleteText'), confirm: t('common.delete'), danger: true });
  if (ok) await attempt(() => actions.deleteMessage(msg));
}

// ---- store subscriptions -------------------------------------------------------------------

function subscribe() {
  store.on('active', showActive);
  store.on('chats', () => { if (state.activeChatId != null) { renderHeader(); composer.refreshAvailability(); } });
  store.on('presence', () => { if (state.activeChatId != null) renderHeader(); });
  store.on('blocks', () => { if (state.activeChatId != null) { renderHeader(); composer.refreshAvailability(); } });
  store.on('typing', (chatId) => { if (chatId === state.activeChatId) renderTyping(); });
  store.on('me', renderMe);
  onLocaleChange(() => {
    translateDom();
    showConnection(state.connection);
    store.emit('chats');
    store.emit('presence');
    store.emit('messages');
    if (state.activeChatId != null) { renderHeader(); renderTyping(); composer.refreshAvailability(); }
  });
}

function renderTyping() {
  const names = store.typingUsers(state.activeChatId).map((id) => displayName(state.users.get(id)));
  let text = '';
  if (names.length === 1) text = t('typing.one', { name: names[0] });
  else if (names.length === 2) text = t('typing.two', { first: names[0], second: names[1] });
  else if (names.length > 2) text = t('typing.many');
  $('#typing-indicator').textContent = text;
}

main();
