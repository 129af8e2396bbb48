// Entry point of the chat page: load who I am and my chats, mount the views, connect.

import * as actions from './actions.js';
import { $, hydrateIcons } from './dom.js';
import { displayName } from './format.js';
import { makeFrameHandler } from './frames.js';
import { Socket } from './socket.js';
import * as store from './state.js';
import { userAvatar } from './ui/avatar.js';
import * as composer from './ui/composer.js';
import * as manage from './manage.js';
import { blockDialog, chatInfoDialog } from './ui/chatinfo.js';
import { confirmDialog, newChatDialog, profileDialog } from './ui/dialogs.js';
import { settingsDialog } from './ui/settings.js';
import { renderHeader } from './ui/header.js';
import { mountMessages, revealMessage } from './ui/messages.js';
import { searchDialog } from './ui/search.js';
import { mountSidebar } from './ui/sidebar.js';
import { attempt, toast } from './ui/toast.js';
import { refreshSession } from './api.js';

const { state } = store;
const STATUS_LABELS = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…', offline: 'Offline' };

async function main() {
  hydrateIcons();
  await loadInitialState();
  mountSidebar({ onOpen: openChat });
  mountMessages({ onReply: composer.startReply, onEdit: composer.startEdit, onDelete: confirmDelete });
  composer.mountComposer();
  bindChrome();
  subscribe();
  renderMe();
  const socket = new Socket({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
    onFrame: (frame) => handle(frame),
    onStatus: showConnection,
    beforeReconnect: checkSession,
  });
  const handle = makeFrameHandler(socket);
  actions.useSocket(socket);
  socket.start();
  document.body.classList.remove('is-loading');
  const fromHash = Number(location.hash.slice(1));
  if (fromHash) openChat(fromHash);
}

async function loadInitialState() {
  for (let attempt = 0; ; attempt += 1) {
    try {
      await actions.loadMe();
      await actions.loadChats();
      await manage.loadBlocks().catch(() => {});
      return;
    } catch (error) {
      if (error.status === 401) return new Promise(() => {}); // on the way to /login
      toast(`${error.detail || 'Cannot load your chats'}. Retrying…`, { error: true });
      await new Promise((r) => setTimeout(r, Math.min(10000, 1000 * 2 ** attempt)));
    }
  }
}

/** The handshake's 401 is invisible to scripts: ask the API, which refreshes or signs out. */
async function checkSession() {
  try {
    await actions.loadMe();
  } catch (error) {
    if (error.status === 401) await refreshSession();
  }
}

function showConnection(status) {
  state.connection = status;
  const el = $('#connection-status');
  el.dataset.state = status;
  el.querySelector('.conn-label').textContent = STATUS_LABELS[status] || status;
  el.title = STATUS_LABELS[status] || status;
}

function renderMe() {
  if (!state.me) return;
  $('#me-avatar').replaceWith(Object.assign(userAvatar(state.me, { size: 'avatar-sm' }), { id: 'me-avatar' }));
  $('#me-name').textContent = displayName(state.me);
}

// ---- opening chats ----------------------------------------------------------------------

async function openChat(chatId) {
  const previous = state.activeChatId;
  if (!state.chats.has(chatId)) {
    const ok = await attempt(() => actions.loadChat(chatId));
    if (!ok) return;
  }
  store.setActiveChat(chatId);
  if (previous !== chatId) composer.switchChat(previous, chatId);
  history.replaceState(null, '', `/chat#${chatId}`);
  const hist = store.historyOf(chatId);
  if (!hist.loaded && !hist.loading) {
    store.emit('history', chatId);
    await attempt(() => actions.loadLatest(chatId));
  }
  composer.focusComposer();
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

// ---- header buttons, dialogs ------------------------------------------------------------

function bindChrome() {
  $('#profile-button').addEventListener('click', profileDialog);
  $('#settings-button').addEventListener('click', () => settingsDialog());
  $('#logout-button').addEventListener('click', () => actions.logout());
  $('#new-chat-button').addEventListener('click', () => newChatDialog({ onOpen: openChat }));
  $('#message-search-button').addEventListener('click', () => searchDialog({ onReveal: reveal }));
  $('#chat-search-button').addEventListener('click', () => searchDialog({ chatId: state.activeChatId, onReveal: reveal }));
  $('#back-button').addEventListener('click', closeChat);
  $('#chat-info-button').addEventListener('click', () => {
    const chat = state.chats.get(state.activeChatId);
    if (chat) chatInfoDialog(chat, { onBlockToggle: toggleBlock });
  });
  $('#block-button').addEventListener('click', toggleBlock);
  $('#join-button').addEventListener('click', () => attempt(async () => {
    await actions.joinChannel(state.activeChatId);
    composer.refreshAvailability();
  }));
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !document.querySelector('dialog[open]') && window.innerWidth <= 760) closeChat();
  });
}

async function reveal(chatId, seq) {
  await openChat(chatId);
  await revealMessage(chatId, seq);
}

async function toggleBlock() {
  const chat = state.chats.get(state.activeChatId);
  if (!chat || !chat.peer) return;
  const peer = chat.peer;
  if (state.blocked.has(peer.id)) {
    await attempt(() => manage.unblockUser(peer.id));
    return;
  }
  const seconds = await blockDialog(peer); // undefined: cancelled; null: forever
  if (seconds !== undefined) await attempt(() => manage.blockUser(peer.id, seconds));
}

async function confirmDelete(msg) {
  const ok = await confirmDialog({ title: 'Delete message?', text: 'It will be removed for everyone in this chat.', confirm: 'Delete', danger: true });
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
}

function renderTyping() {
  const names = store.typingUsers(state.activeChatId).map((id) => displayName(state.users.get(id)));
  let text = '';
  if (names.length === 1) text = `${names[0]} is typing…`;
  else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
  else if (names.length > 2) text = 'Several people are typing…';
  $('#typing-indicator').textContent = text;
}

main();
