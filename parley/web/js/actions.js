// What the user does, in one place: loading, sending, editing, reading, chats and people,
// profile and session, chat management, blocks and (for admins) bans. Each action goes
// over the WebSocket when it is up, else over HTTP, and lands in the store through
// state.js's mutations (never by writing `state` here). Pending sends are acknowledged by
// their echoed client_id.

import { api, forgetSession, goToLogin, rememberSession, request } from './api.js';
import * as outbox from './outbox.js';
import * as store from './state.js';

const { state } = store;
const PAGE = 50;
const ACK_TIMEOUT_MS = 12000;
const TYPING_EVERY_MS = 3000;
const BLOCK_RELOAD_SLACK_MS = 2000;

let socket = null;
export const useSocket = (s) => { socket = s; };

export function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

// ---- loading ---------------------------------------------------------------------

export async function loadChats() {
  store.setChats(await api.get('/chats'));
}

export async function loadChat(chatId) {
  return store.upsertChat(await api.get(`/chats/${chatId}`));
}

/** The newest page; merged into what is loaded (so a reload refreshes edits too). */
export async function loadLatest(chatId) {
  store.setHistoryLoading(chatId, true);
  try {
    const page = await api.get(`/chats/${chatId}/messages`, { limit: PAGE });
    const first = !store.historyOf(chatId).loaded;
    store.putPage(chatId, page, { hasMore: first ? page.length >= PAGE && page[0].seq > 1 : undefined });
  } finally {
    store.setHistoryLoading(chatId, false);
  }
}

/**
 * The messages around `seq` (a search hit, a mention): they replace the loaded history
 * of the chat, which then pages both ways (older on scroll up, newer on scroll down).
 */
export async function loadAround(chatId, seq) {
  store.setHistoryLoading(chatId, true);
  try {
    const page = await api.get(`/chats/${chatId}/messages`, { around: seq, limit: PAGE });
    const lastSeq = state.chats.get(chatId)?.last_seq || 0;
    store.putPage(chatId, page, {
      replace: true,
      hasMore: page.length > 0 && page[0].seq > 1,
      hasNewer: page.length > 0 && page[page.length - 1].seq < lastSeq,
    });
  } finally {
    store.setHistoryLoading(chatId, false);
  }
}

/**
 * Where to open a chat with unread messages: its read marker (`read_seq`) when the newest
 * page would not reach back to it, else null (the newest page shows the divider).
 */
export function unreadStart(chat) {
  const read = chat.read_seq || 0;
  if ((chat.last_seq || 0) - read < PAGE - 10) return null;
  return Math.max(1, read);
}

/** After loadAround: the page just newer than what is shown. */
export async function loadNewer(chatId) {
  const hist = store.historyOf(chatId);
  if (!hist.hasNewer || hist.loading) return false;
  store.setHistoryLoading(chatId, true);
  try {
    const page = await api.get(`/chats/${chatId}/messages`, { limit: PAGE, after: store.newestSeq(chatId) });
    store.putPage(chatId, page, { hasNewer: page.length < PAGE ? false : undefined });
    return page.length > 0;
  } finally {
    store.setHistoryLoading(chatId, false);
  }
}

/** Back from an older window to the newest page. */
export async function resetToLatest(chatId) {
  store.forgetHistory(chatId);
  await loadLatest(chatId);
}

/** The page just older than what is shown; false when there is nothing more. */
export async function loadOlder(chatId) {
  const hist = store.historyOf(chatId);
  const before = store.oldestSeq(chatId);
  if (!hist.hasMore || hist.loading || before == null) return false;
  store.setHistoryLoading(chatId, true);
  try {
    const page = await api.get(`/chats/${chatId}/messages`, { limit: PAGE, before });
    store.putPage(chatId, page, { hasMore: page.length >= PAGE && page[0].seq > 1 });
    return page.length > 0;
  } finally {
    store.setHistoryLoading(chatId, false);
  }
}

/** Catch up from `afterSeq` over HTTP (a gap noticed in the live stream). */
export async function fillGap(chatId, afterSeq) {
  let after = afterSeq;
  for (let i = 0; i < 20; i += 1) {
    const page = await api.get(`/chats/${chatId}/messages`, { limit: 200, after });
    store.putMessages(chatId, page);
    if (page.length < 200) return;
    after = page[page.length - 1].seq;
  }
}

export async function fetchMessage(id) {
  const msg = await api.get(`/messages/${id}`);
  store.rememberMessage(msg);
  return msg;
}

// ---- sending ---------------------------------------------------------------------------

export function sendMessage(chatId, content, { replyTo = null, attachments = [], threadRootId = null, alsoInChat = false } = {}) {
  const item = {
    client_id: newClientId(),
    chat_id: chatId,
    content,
    reply_to: replyTo,
    attachments,
    thread_root_id: threadRootId,
    also_in_chat: Boolean(threadRootId && alsoInChat),
    status: 'pending',
    created_at: new Date().toISOString(),
  };
  store.putPending(item);
  outbox.keep(item, state.me?.id);
  deliver(item);
  lastTyping.delete(chatId); // the receiver cleared our typing mark on this message
  return item;
}

export function retrySend(clientId) {
  const item = store.setPendingStatus(clientId, 'pending');
  if (item) deliver(item);
}

export function discardSend(chatId, clientId) {
  settle(clientId);
  store.dropPending(chatId, clientId);
  outbox.drop(clientId);
}

/** A message of mine came back (echo or HTTP answer): it leaves the outbox. */
export function delivered(msg) {
  if (msg.client_id && (!msg.sender || msg.sender.id === state.me?.id)) outbox.drop(msg.client_id);
}

/**
 * At start: what was written but not acknowledged before the page closed (maybe offline)
 * shows as pending again and is sent with its client_id (never doubled).
 */
export async function restoreOutbox() {
  if (!state.me) return;
  for (const row of await outbox.of(state.me.id)) {
    if (store.findPending(row.client_id)) continue;
    const item = { ...row, status: 'pending' };
    delete item.user_id;
    store.putPending(item);
    deliver(item);
  }
}

function sendBody(item) {
  const body = { content: item.content, client_id: item.client_id };
  if (item.reply_to) body.reply_to = item.reply_to;
  if (item.attachments.length) body.attachment_ids = item.attachments.map((a) => a.id);
  if (item.thread_root_id) body.thread_root_id = item.thread_root_id;
  if (item.also_in_chat) body.also_in_chat = true;
  return body;
}

// The delivery of each send, by client_id, until it is echoed or discarded: its timer
// (the echo's deadline or an automatic retry) and how many automatic retries it had.
// Not state: nothing renders it.
const deliveries = new Map();

function deliveryOf(clientId) {
  if (!deliveries.has(clientId)) deliveries.set(clientId, { timer: 0, retries: 0 });
  return deliveries.get(clientId);
}

function settle(clientId) {
  clearTimeout(deliveries.get(clientId)?.timer);
  deliveries.delete(clientId);
}

const isPending = (item) => store.findPending(item.client_id)?.status === 'pending';

function deliver(item) {
  const delivery = deliveryOf(item.client_id);
  clearTimeout(delivery.timer);
  delivery.queued = false;
  if (socket && socket.send({ type: 'send', chat_id: item.chat_id, ...sendBody(item) })) {
    // No echo in time: resend over HTTP with the same client_id (idempotent on the server).
    delivery.timer = setTimeout(() => {
      if (isPending(item)) deliverHttp(item);
      else deliveries.delete(item.client_id);
    }, ACK_TIMEOUT_MS);
  } else {
    deliverHttp(item);
  }
}

async function deliverHttp(item) {
  try {
    const msg = await api.post(`/chats/${item.chat_id}/messages`, sendBody(item));
    settle(item.client_id);
    store.receiveMessage(msg);
    delivered(msg);
  } catch (error) {
    if (TRANSIENT.has(error.code)) {
      // Out of reach (offline, server down): it stays pending in the outbox and goes out
      // when the socket says hello again (retryTransientFailures).
      deliveryOf(item.client_id).queued = true;
      return;
    }
    failPending(item.client_id, error.detail, error.code);
  }
}

/** An `error` frame whose ref is one of our pending client_ids; rate limits retry by themselves. */
export function failPending(clientId, detail, code) {
  const item = store.findPending(clientId);
  const delivery = deliveries.get(clientId);
  if (item && delivery) {
    clearTimeout(delivery.timer);
    if (code === 'rate_limited' && delivery.retries < 3) {
      delivery.retries += 1;
      delivery.timer = setTimeout(() => deliver(item), 1000 * delivery.retries + Math.random() * 500);
      return item;
    }
  }
  return store.setPendingStatus(clientId, 'failed', detail, code);
}

const TRANSIENT = new Set(['network_error', 'unavailable', 'http_502', 'http_503', 'http_504']);

/** After a reconnect: resend what failed only because the server was out of reach. */
export function retryTransientFailures() {
  for (const items of state.pending.values()) {
    for (const item of items.values()) {
      const queued = item.status === 'pending' && deliveries.get(item.client_id)?.queued;
      if (queued || (item.status === 'failed' && TRANSIENT.has(item.code))) retrySend(item.client_id);
    }
  }
}

// ---- editing, reactions, reading, typing ------------------------------------------------

export async function editMessage(msg, content) {
  if (socket && socket.send({ type: 'edit', message_id: msg.id, content })) return;
  store.updateMessage(await api.patch(`/messages/${msg.id}`, { content }));
}

export async function deleteMessage(msg) {
  if (socket && socket.send({ type: 'delete', message_id: msg.id })) return;
  await api.del(`/messages/${msg.id}`);
  store.updateMessage({ ...msg, deleted: true, content: '', attachments: [] });
}

export async function toggleReaction(msg, emoji) {
  const mine = msg.reactions.find((r) => r.emoji === emoji)?.user_ids.includes(state.me.id);
  const type = mine ? 'unreact' : 'react';
  if (socket && socket.send({ type, message_id: msg.id, emoji })) return;
  if (mine) {
    await api.del(`/messages/${msg.id}/reactions/${encodeURIComponent(emoji)}`);
    await fetchAndUpdate(msg.id);
  } else {
    store.updateMessage(await api.post(`/messages/${msg.id}/reactions`, { emoji }));
  }
}

async function fetchAndUpdate(id) {
  store.updateMessage(await api.get(`/messages/${id}`));
}

/** Tell the server (and our other tabs) that everything up to the newest message is read. */
export function markRead(chatId) {
  const chat = state.chats.get(chatId);
  const seq = store.newestSeq(chatId);
  if (!chat || !seq || !isMember(chat)) return;
  if (state.keptUnread === chatId) return; // marked unread: left so until opened again
  if (seq <= (chat.read_seq || 0) && !chat.unread_count) return;
  store.markChatRead(chatId, seq);
  if (!(socket && socket.send({ type: 'read', chat_id: chatId, seq }))) {
    api.post(`/chats/${chatId}/read`, { seq }).catch(() => {});
  }
}

export const isMember = (chat) => chat.type !== 'channel' || chat.my_role != null;

const lastTyping = new Map();
export function sendTyping(chatId) {
  const now = Date.now();
  if (now - (lastTyping.get(chatId) || 0) < TYPING_EVERY_MS) return;
  lastTyping.set(chatId, now);
  socket?.send({ type: 'typing', chat_id: chatId });
}

// ---- files -------------------------------------------------------------------------------

export function uploadAttachment(chatId, file) {
  const form = new FormData();
  form.append('file', file, file.name);
  return api.upload(`/chats/${chatId}/attachments`, form);
}

// ---- chats and people --------------------------------------------------------------------

export async function startDirect(userId) {
  return store.upsertChat(await api.post('/chats', { type: 'direct', user_id: userId }));
}

export async function createChat(fields) {
  return store.upsertChat(await api.post('/chats', fields));
}

export async function joinChannel(chatId) {
  return store.upsertChat(await api.post(`/chats/${chatId}/join`));
}

export async function leaveChat(chatId) {
  await api.del(`/chats/${chatId}/members/${state.me.id}`);
  store.removeChat(chatId);
}

export async function deleteChat(chatId) {
  await api.del(`/chats/${chatId}`);
  store.removeChat(chatId);
}

export async function loadUser(userId) {
  const user = await api.get(`/users/${userId}`);
  store.rememberUser(user);
  return user;
}

/** A user by id: from the store when their name is known, else loaded. */
export async function userById(userId) {
  const known = state.users.get(userId);
  return known?.username ? known : loadUser(userId);
}

export const addMembers = (chatId, userIds) => api.post(`/chats/${chatId}/members`, { user_ids: userIds });
export const searchUsers = (q) => api.get('/users', { q, limit: 20 });
export const searchChannels = (q) => api.get('/chats/public', { q });
export const searchMessages = (q, chatId) => api.get('/search', { q, chat_id: chatId, limit: 50 });

// ---- link previews and a chat's files ----------------------------------------------------

export async function removePreview(msg) {
  await api.del(`/messages/${msg.id}/preview`);
  store.updateMessage({ ...msg, preview: null });
}

export const chatFiles = (chatId, before, limit) => api.get(`/chats/${chatId}/files`, { before, limit });

/** Messages that mention me, newest first (`before`: a message id, for the next page). */
export const loadMentions = (before) => api.get('/mentions', { before, limit: 30 });

// ---- threads ---------------------------------------------------------------------------

/** A thread's root and its newest replies (up to 200). */
export async function loadThread(rootId) {
  const page = await api.get(`/messages/${rootId}/thread`, { limit: 200 });
  store.putThread(page.root, page.replies);
  return page;
}

/** The threads I follow, most recent reply first; `before`: a page's last `last_reply_at`. */
export const loadThreads = (before) => api.get('/threads', { before, limit: 30 });

export const followThread = (rootId, follow) => request(follow ? 'PUT' : 'DELETE', `/messages/${rootId}/follow`);

const threadRead = new Map(); // root id → the seq last told to the server
export function markThreadRead(rootId, seq) {
  if (!seq || (threadRead.get(rootId) || 0) >= seq) return;
  threadRead.set(rootId, seq);
  api.post(`/messages/${rootId}/thread/read`, { seq }).then(refreshThreadsUnread, () => threadRead.delete(rootId));
}

let unreadTimer = 0;
/** Recounts the unread replies of the threads I follow (soon, once for a burst of calls). */
export function refreshThreadsUnread() {
  clearTimeout(unreadTimer);
  unreadTimer = setTimeout(async () => {
    try {
      const threads = await loadThreads();
      store.setThreadsUnread(threads.reduce((n, entry) => n + entry.unread_count, 0));
    } catch { /* the next reply or read tries again */ }
  }, 300);
}

/** Mute a chat until a time, "forever", or null to unmute (per member, on the server). */
export async function muteChat(chatId, mutedUntil) {
  return store.upsertChat(await api.patch(`/chats/${chatId}/settings`, { muted_until: mutedUntil }));
}

// ---- profile and session ----------------------------------------------------------------

export async function loadMe() {
  const me = store.setMe(await api.get('/profile'));
  rememberSession();
  return me;
}
export const updateProfile = async (fields) => store.setMe(await api.patch('/profile', fields));

// ---- presence of mind -----------------------------------------------------------------------

/** My status ({emoji, text, until} or null), do-not-disturb (a time or null), receipts. */
export const setStatus = (status) => updateProfile({ status });
export const setDnd = (until) => updateProfile({ dnd_until: until });
export const setShareReadReceipts = (share) => updateProfile({ share_read_receipts: share });

/** My notification level for a chat: "all" | "mentions" | "none" (null: its default). */
export async function setNotify(chatId, notify) {
  return store.upsertChat(await api.patch(`/chats/${chatId}/settings`, { notify }));
}

export const putDraft = (chatId, content) => api.putJson(`/chats/${chatId}/draft`, { content });

export async function loadReadMarkers(chatId) {
  const chat = await api.get(`/chats/${chatId}`);
  store.setReadMarkers(chatId, chat.read_markers || []);
}

export const scheduleMessage = (chatId, content, sendAt) =>
  api.post(`/chats/${chatId}/messages`, { content, send_at: sendAt });
export const listScheduled = (chatId) => api.get('/scheduled', { chat_id: chatId });
export const updateScheduled = (id, fields) => api.patch(`/scheduled/${id}`, fields);
export const deleteScheduled = (id) => api.del(`/scheduled/${id}`);
export const removeAvatar = async () => { await api.del('/profile/avatar'); store.setMe({ avatar_url: null }); };

export async function uploadAvatar(file) {
  const form = new FormData();
  form.append('file', file, file.name);
  return store.setMe(await api.put('/profile/avatar', form));
}

export const changePassword = (currentPassword, newPassword) =>
  api.post('/password', { current_password: currentPassword, new_password: newPassword });

export async function logout() {
  socket?.stop();
  forgetSession();
  await outbox.clear();
  navigator.serviceWorker?.controller?.postMessage({ type: 'forget-data' });
  try {
    await api.post('/logout');
  } finally {
    goToLogin();
  }
}

// ---- managing a chat ----------------------------------------------------------------------

export async function updateChat(chatId, fields) {
  return store.upsertChat(await api.patch(`/chats/${chatId}`, fields));
}

export const setRole = (chatId, userId, role) => api.patch(`/chats/${chatId}/members/${userId}`, { role });
export const removeMember = (chatId, userId) => api.del(`/chats/${chatId}/members/${userId}`);

/** The members list also tells my own role, which chat-wide frames leave out. */
export async function listMembers(chatId) {
  const members = await api.get(`/chats/${chatId}/members`);
  const chat = state.chats.get(chatId);
  const mine = members.find((m) => m.user.id === state.me?.id);
  if (chat && mine && chat.my_role !== mine.role) store.upsertChat({ id: chatId, my_role: mine.role });
  for (const m of members) store.rememberUser(m.user);
  return members;
}

// ---- blocks -------------------------------------------------------------------------------

export const BLOCK_DURATIONS = [
  { key: 'hour', seconds: 3600 },
  { key: 'day', seconds: 86400 },
  { key: 'week', seconds: 7 * 86400 },
  { key: 'forever', seconds: null },
];

let blockTimer = 0;

/** My blocks with their expiry; reloads itself when the next timed block ends. */
export async function loadBlocks() {
  const list = await api.get('/block');
  store.setBlocks(list);
  clearTimeout(blockTimer);
  const next = Math.min(...list.filter((b) => b.expires_at).map((b) => Date.parse(b.expires_at)));
  if (Number.isFinite(next)) {
    blockTimer = setTimeout(() => loadBlocks().catch(() => {}), Math.max(1000, next - Date.now() + BLOCK_RELOAD_SLACK_MS));
  }
  return list;
}

export async function blockUser(userId, durationSeconds = null) {
  const body = { user_id: userId };
  if (durationSeconds) body.duration_seconds = durationSeconds;
  await api.post('/block', body);
  await loadBlocks();
  // Their messages leave my groups and channels: previews and unread counts come again
  // from the server, which no longer counts them.
  store.hideSender(userId);
  await loadChats();
}

export async function unblockUser(userId) {
  await api.del(`/block/${userId}`);
  await loadBlocks();
  // Their messages are back: groups and channels load their history again.
  await loadChats();
  for (const id of [...state.history.keys()]) {
    if (state.chats.get(id)?.type !== 'direct') store.forgetHistory(id);
  }
  const active = state.chats.get(state.activeChatId);
  if (active && active.type !== 'direct') await loadLatest(active.id);
}

// ---- bans (admins) -----------------------------------------------------------------------

export const listBans = () => api.get('/admin/bans');
export const liftBan = (userId) => api.del(`/admin/bans/${userId}`);

export function banUser(userId, durationSeconds, reason) {
  const body = { user_id: userId };
  if (durationSeconds) body.duration_seconds = durationSeconds;
  if (reason) body.reason = reason;
  return api.post('/admin/bans', body);
}

// ---- integrations: bots, webhooks, commands -------------------------------------------------

export const listBots = () => api.get('/bots');
export const createBot = (username, displayName) => api.post('/bots', { username, display_name: displayName });
export const updateBot = (botId, fields) => api.patch(`/bots/${botId}`, fields);
export const rotateBotToken = (botId) => api.post(`/bots/${botId}/token`);
export const deleteBot = (botId) => api.del(`/bots/${botId}`);
export const botDeliveries = (botId) => api.get(`/bots/${botId}/deliveries`);
export const listWebhooks = (chatId) => api.get(`/chats/${chatId}/webhooks`);
export const createWebhook = (chatId, name) => api.post(`/chats/${chatId}/webhooks`, { name });
export const deleteWebhook = (chatId, hookId) => api.del(`/chats/${chatId}/webhooks/${hookId}`);
export const listCommands = (chatId) => api.get(`/chats/${chatId}/commands`);
export const runCommand = (chatId, command, text) => api.post(`/chats/${chatId}/commands`, { command, text });
export const startExport = (chatId = null) => api.post(chatId ? `/chats/${chatId}/export` : '/export');
export const exportStatus = (exportId) => api.get(`/export/${exportId}`);

// ---- pins, forwarding, mark as unread ---------------------------------------------------

/** The chat's pinned messages (most recently pinned first), kept in the store. */
export async function loadPins(chatId) {
  const pins = await api.get(`/chats/${chatId}/pins`);
  store.setPins(chatId, pins);
  return pins;
}

export async function togglePin(msg) {
  if (msg.pinned_at) {
    await api.del(`/chats/${msg.chat_id}/pins/${msg.id}`);
    store.updateMessage({ ...msg, pinned_at: null, pinned_by: null });
  } else {
    store.updateMessage(await api.post(`/chats/${msg.chat_id}/pins`, { message_id: msg.id }));
  }
}

/** Sends a copy of `msg` to each chat (at most 10), after `comment` when given. */
export async function forwardMessage(msg, chatIds, comment) {
  const body = { chat_ids: chatIds };
  if (comment && comment.trim()) body.comment = comment.trim();
  const copies = await api.post(`/messages/${msg.id}/forward`, body);
  for (const copy of copies) store.receiveMessage(copy);
  return copies;
}

/** Marks `msg` and what follows it unread; reading stops until the chat is opened again. */
export async function markUnread(msg) {
  await api.post(`/chats/${msg.chat_id}/unread`, { seq: msg.seq });
  store.keepUnread(msg.chat_id, msg.seq - 1);
  await loadChat(msg.chat_id).catch(() => {});
}

/** The address of a message: opening it opens the chat at the message (members only). */
export const messageLink = (msg) => `${location.origin}/chat?chat=${msg.chat_id}&message=${msg.id}`;
