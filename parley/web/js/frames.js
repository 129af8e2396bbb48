// Server frames → store. Also the sync handshake: after every `hello` the client asks for
// what it missed, and after a reconnect it refreshes the chat list and the open chat.

import * as actions from './actions.js';
import { errorText } from './i18n.js';
import * as store from './state.js';
import { toast } from './ui/toast.js';

const { state } = store;

export function makeFrameHandler(socket) {
  let greetings = 0;
  const handlers = {
    hello: (f) => onHello(socket, f, greetings++ > 0),
    message: (f) => onMessage(f.message),
    message_updated: (f) => store.updateMessage(f.message),
    typing: onTyping,
    read: onRead,
    presence: (f) => store.setPresence(f.user_id, f.status === 'online', f.last_seen_at),
    user_updated: (f) => store.updateUser(f.user),
    chat_updated: (f) => { store.upsertChat(f.chat); store.emit('chat_updated', f.chat.id); },
    chat_removed: (f) => store.removeChat(f.chat_id),
    synced: onSynced,
    error: onError,
    ephemeral: (f) => store.emit('ephemeral', f), // integrations: a bot's answer only I see
    thread_read: (f) => store.emit('thread_read', f), // my read marker in a thread moved
  };
  return (frame) => handlers[frame.type]?.(frame);
}

/** last_seen_seq per chat: what we hold for loaded chats, the listed last_seq for others. */
function syncMap() {
  const chats = {};
  for (const chat of state.chats.values()) {
    const hist = state.history.get(chat.id);
    chats[chat.id] = hist && hist.loaded && !hist.hasNewer ? store.newestSeq(chat.id) : chat.last_seq || 0;
  }
  return chats;
}

async function onHello(socket, frame, isReconnect) {
  if (frame.user) store.setMe(frame.user);
  socket.send({ type: 'sync', chats: syncMap() });
  actions.retryTransientFailures();
  if (!isReconnect) return;
  // Edits, deletions and reactions made while we were away come with a reload.
  for (const id of [...state.history.keys()]) {
    if (id !== state.activeChatId) store.forgetHistory(id);
  }
  try {
    await actions.loadChats();
    const active = state.activeChatId;
    // An older window (opened at a search hit or mention) pages forward by itself.
    if (active && state.chats.has(active) && !state.history.get(active)?.hasNewer) await actions.loadLatest(active);
  } catch { /* the next reconnect tries again */ }
}

async function onMessage(msg) {
  if (!state.chats.has(msg.chat_id)) {
    try {
      await actions.loadChat(msg.chat_id);
    } catch {
      return;
    }
  }
  const hist = state.history.get(msg.chat_id);
  const newest = store.newestSeq(msg.chat_id);
  if (hist && hist.loaded && !hist.hasNewer && newest && msg.seq > newest + 1) {
    actions.fillGap(msg.chat_id, newest).catch(() => {});
  }
  store.receiveMessage(msg);
  // presence of mind: one of my scheduled messages went out (the composer's count follows)
  if (msg.client_id?.startsWith('scheduled-') && msg.sender?.id === state.me?.id) store.emit('scheduled', msg.chat_id);
  actions.delivered(msg);
}

function onTyping(frame) {
  store.noteTyping(frame.chat_id, frame.user_id);
  if (!state.users.has(frame.user_id)) {
    // Someone who has not written yet: fetch the name once, the indicator re-renders.
    store.rememberUser({ id: frame.user_id });
    actions.loadUser(frame.user_id).then(() => store.emit('typing', frame.chat_id)).catch(() => {});
  }
}

function onRead(frame) {
  if (!state.me || frame.user_id !== state.me.id) {
    store.noteReadMarker(frame.chat_id, frame.user_id, frame.seq); // "Seen by"
    return;
  }
  const chat = state.chats.get(frame.chat_id);
  if (chat && frame.seq < (chat.read_seq || 0)) {
    // marked unread (in another tab): the server counts what is unread again
    store.keepUnread(frame.chat_id, frame.seq);
    actions.loadChat(frame.chat_id).catch(() => {});
  } else {
    store.markChatRead(frame.chat_id, frame.seq);
  }
}

function onSynced(frame) {
  for (const chatId of frame.truncated || []) {
    // More was missed than the server replays: start that history over from HTTP.
    store.forgetHistory(chatId);
    if (chatId === state.activeChatId) actions.loadLatest(chatId).catch(() => {});
  }
  store.emit('synced');
}

function onError(frame) {
  if (frame.ref && actions.failPending(frame.ref, frame.detail, frame.code)) return;
  // a scheduled message dropped at its time names its id: the composer's count follows
  if (typeof frame.ref === 'number') store.emit('scheduled', state.activeChatId);
  toast(errorText(frame), { error: true });
}
