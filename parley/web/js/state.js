// The client's store: chats, loaded history, pending sends, presence, typing. It is the
// only writer of `state`: every other module reads it and changes it through the
// mutations below, which emit the events they affect. Views subscribe with on(event, fn).
// No DOM here, so the unit tests (tests/js/) run it in Node.

const listeners = new Map();

export function on(event, fn) {
  if (!listeners.has(event)) listeners.set(event, new Set());
  listeners.get(event).add(fn);
  return () => listeners.get(event).delete(fn);
}

export function emit(event, detail) {
  for (const fn of listeners.get(event) || []) fn(detail);
}

export const state = {
  me: null,
  chats: new Map(), // id → Chat
  history: new Map(), // chat id → {bySeq: Map<seq, Message>, hasMore, hasNewer, loading, loaded}
  byId: new Map(), // message id → Message (for quoted replies)
  pending: new Map(), // chat id → Map<client_id, PendingMessage>
  users: new Map(), // user id → User-ish (peers, senders, search hits)
  presence: new Map(), // user id → {online, last_seen_at}
  typing: new Map(), // chat id → Map<user id, expires at (ms)>
  blocked: new Set(), // user ids I blocked
  blockList: [], // my blocks as listed by GET /block ({user_id, expires_at})
  readMarkers: new Map(), // chat id → Map<user id, seq>: others' read markers ("Seen by")
  activeChatId: null,
  threads: new Map(), // root id → {root, replies: Map<id, Message>, loaded} (threads opened)
  openThreadId: null, // the root whose thread panel is open
  threadsUnread: 0, // unread replies in the threads I follow (the Threads button's badge)
  connection: 'connecting',
  pins: new Map(), // chat id → [Message], most recently pinned first
  keptUnread: null, // the chat marked unread: not marked read again while it stays open
};

// ---- chats -----------------------------------------------------------------

export function activityOf(chat) {
  return (chat.last_message && chat.last_message.created_at) || chat.created_at || '';
}

/** My chats by activity; a direct chat not created yet (`virtual`) is not listed. */
export function sortedChats() {
  return [...state.chats.values()].filter((c) => !c.virtual).sort((a, b) => activityOf(b).localeCompare(activityOf(a)) || b.id - a.id);
}

export function upsertChat(chat) {
  const old = state.chats.get(chat.id);
  const merged = { ...old, ...chat };
  if (old) {
    // A fresher copy from a message frame may already be ahead of this snapshot.
    merged.last_seq = Math.max(old.last_seq || 0, chat.last_seq || 0);
    if (old.last_message && (!chat.last_message || old.last_message.seq > chat.last_message.seq)) {
      merged.last_message = old.last_message;
    }
  }
  if (chat.peer) {
    rememberUser(chat.peer);
    if ('online' in chat.peer) state.presence.set(chat.peer.id, { online: chat.peer.online, last_seen_at: chat.peer.last_seen_at });
  }
  state.chats.set(chat.id, merged);
  emit('chats');
  return merged;
}

export function setChats(list) {
  const ids = new Set(list.map((c) => c.id));
  // A direct chat shown before it exists (`virtual`) is not listed by the server: it stays.
  for (const [id, chat] of [...state.chats]) if (!ids.has(id) && !chat.virtual) state.chats.delete(id);
  for (const chat of list) upsertChat(chat);
  emit('chats');
}

export function removeChat(id) {
  state.chats.delete(id);
  state.history.delete(id);
  state.pending.delete(id);
  emit('chats');
  if (state.activeChatId === id) setActiveChat(null);
}

/** Muted now: `muted_until` is "forever" or a time still ahead. */
export function isMuted(chat) {
  const until = chat && chat.muted_until;
  if (!until) return false;
  return until === 'forever' || Date.parse(until) > Date.now();
}

/** Unread messages for the title and favicon: muted chats count only their mentions. */
export function unreadTotal() {
  let n = 0;
  for (const chat of state.chats.values()) n += isMuted(chat) ? chat.mention_count || 0 : chat.unread_count || 0;
  return n;
}

/** The direct chat with `userId`, if I have one. */
export function directWith(userId) {
  for (const chat of state.chats.values()) {
    if (chat.type === 'direct' && !chat.virtual && chat.peer?.id === userId) return chat;
  }
  return null;
}

/**
 * A conversation with someone shown before it exists: created on the server only when
 * the first message is sent. Its id is negative so it never collides with a real one.
 */
export function virtualDirect(user) {
  const id = -Number(user.id);
  rememberUser(user);
  const chat = { id, type: 'direct', virtual: true, peer: user, title: null, member_count: 2, my_role: 'member', last_seq: 0, unread_count: 0 };
  state.chats.set(id, chat);
  const hist = historyOf(id);
  hist.loaded = true;
  hist.hasMore = false;
  return chat;
}

/** A conversation shown before it existed and left unstarted: it leaves no trace. */
export function discardVirtualDirect(id) {
  if (!state.chats.get(id)?.virtual) return;
  state.chats.delete(id);
  state.history.delete(id);
}

export function setActiveChat(id) {
  if (id !== state.activeChatId) state.keptUnread = null;
  state.activeChatId = id;
  emit('active', id);
  emit('chats');
}

// ---- users and presence ------------------------------------------------------

export function rememberUser(user) {
  if (!user || user.id == null) return;
  state.users.set(user.id, { ...state.users.get(user.id), ...user });
  if ('online' in user && !state.presence.has(user.id)) {
    state.presence.set(user.id, { online: user.online, last_seen_at: user.last_seen_at });
  }
}

/** A `user_updated` frame: a name, bio or avatar changed (not presence: its own frame). */
export function updateUser(user) {
  const { online, last_seen_at: _seen, ...profile } = user;
  rememberUser(profile);
  for (const chat of state.chats.values()) {
    if (chat.peer?.id === user.id) {
      chat.peer = { ...chat.peer, ...profile };
      if (chat.type === 'direct') chat.title = profile.display_name || chat.title;
    }
  }
  if (state.me?.id === user.id) {
    state.me = { ...state.me, ...profile };
    emit('me');
  }
  emit('chats');
  emit('messages'); // the open chat's avatars and names
}

export function setPresence(userId, online, lastSeenAt) {
  state.presence.set(userId, { online, last_seen_at: lastSeenAt });
  emit('presence', userId);
}

export const isOnline = (userId) => Boolean(state.presence.get(userId)?.online);

// ---- me, blocks, connection ----------------------------------------------------

/** My profile (merged into what is known), from GET /profile, an edit or `hello`. */
export function setMe(user) {
  state.me = { ...state.me, ...user };
  rememberUser(state.me);
  emit('me');
  return state.me;
}

/** My blocks as listed by GET /block. */
export function setBlocks(list) {
  state.blocked = new Set(list.map((b) => b.user_id));
  state.blockList = list;
  emit('blocks');
}

/** "connecting" | "connected" | "reconnecting" | "offline" (the socket's status). */
export function setConnection(status) {
  if (state.connection === status) return;
  state.connection = status;
  emit('connection');
}

// ---- history -----------------------------------------------------------------

export function historyOf(chatId) {
  if (!state.history.has(chatId)) {
    // hasNewer: a window around an older message is loaded, not the newest page.
    state.history.set(chatId, { bySeq: new Map(), hasMore: true, hasNewer: false, loading: false, loaded: false });
  }
  return state.history.get(chatId);
}

/** Drop what is loaded of a chat's history: the next look loads it afresh. */
export function forgetHistory(chatId) {
  state.history.delete(chatId);
}

/** I blocked this user: outside direct chats their messages leave history and previews. */
export function hideSender(userId) {
  for (const chat of state.chats.values()) {
    if (chat.type === 'direct') continue;
    if (chat.last_message?.sender?.id === userId) delete chat.last_message;
    const hist = state.history.get(chat.id);
    if (!hist) continue;
    let changed = false;
    for (const [seq, msg] of hist.bySeq) {
      if (msg.sender?.id === userId) { hist.bySeq.delete(seq); changed = true; }
    }
    if (changed) emit('messages', chat.id);
  }
  emit('chats');
}

/** A page of history is being fetched (true) or has been (false). */
export function setHistoryLoading(chatId, loading) {
  historyOf(chatId).loading = loading;
  emit('history', chatId);
}

/**
 * A page of history from HTTP: its messages, and what it tells about the pages beside
 * it (`hasMore` older, `hasNewer` newer; left as they are when not given). `replace`
 * drops what was loaded first (a window around another message).
 */
export function putPage(chatId, messages, { replace = false, hasMore, hasNewer } = {}) {
  const hist = historyOf(chatId);
  if (replace) hist.bySeq = new Map();
  hist.loaded = true;
  if (hasMore !== undefined) hist.hasMore = hasMore;
  if (hasNewer !== undefined) hist.hasNewer = hasNewer;
  putMessages(chatId, messages);
}

export function newestSeq(chatId) {
  const hist = state.history.get(chatId);
  if (!hist || !hist.bySeq.size) return 0;
  return Math.max(...hist.bySeq.keys());
}

export function oldestSeq(chatId) {
  const hist = state.history.get(chatId);
  if (!hist || !hist.bySeq.size) return null;
  return Math.min(...hist.bySeq.keys());
}

/** Store messages of one chat (from HTTP pages or frames); emits once. */
export function putMessages(chatId, messages) {
  const hist = historyOf(chatId);
  for (const msg of messages) {
    hist.bySeq.set(msg.seq, msg);
    state.byId.set(msg.id, msg);
    rememberUser(msg.sender);
    if (msg.client_id) state.pending.get(chatId)?.delete(msg.client_id);
  }
  emit('messages', chatId);
}

/** A single message fetched by id (a quoted reply not loaded): kept for lookups by id. */
export function rememberMessage(msg) {
  state.byId.set(msg.id, msg);
  emit('messages', msg.chat_id);
}

/** A message frame: update the chat's preview/unread and the loaded history. */
export function receiveMessage(msg) {
  const chat = state.chats.get(msg.chat_id);
  // Outside direct chats I do not see the messages of people I block (as the server).
  if (chat && chat.type !== 'direct' && msg.sender && state.blocked.has(msg.sender.id)) return;
  const notice = msg.kind === 'notice'; // never unread, never the last message
  if (chat) {
    const isNew = msg.seq > (chat.last_seq || 0) && !notice;
    if (!notice && (!chat.last_message || msg.seq >= chat.last_message.seq)) chat.last_message = msg;
    chat.last_seq = Math.max(chat.last_seq || 0, msg.seq);
    const mine = state.me && msg.sender && msg.sender.id === state.me.id;
    // A chat's unread count is its main timeline's: replies only in a thread count there.
    if (isNew && !mine && !isThreadOnly(msg)) chat.unread_count = (chat.unread_count || 0) + 1;
    if (isNew && !mine && chat.type !== 'direct' && mentionsMe(msg)) chat.mention_count = (chat.mention_count || 0) + 1;
    emit('chats');
    if (isNew && !mine) emit('incoming', msg);
  }
  if (msg.sender) clearTyping(msg.chat_id, msg.sender.id);
  if (msg.thread_root_id) putReply(msg);
  const hist = state.history.get(msg.chat_id);
  // While the first page is loading, keep the message too: the page may have been read
  // before it was stored, and dropping it here (with its pending copy) would lose it.
  if (hist && !hist.hasNewer && (hist.loaded || hist.loading)) putMessages(msg.chat_id, [msg]);
  else if (msg.client_id) state.pending.get(msg.chat_id)?.delete(msg.client_id);
}

export const mentionsMe = (msg) => Boolean(state.me && msg.mentions?.includes(state.me.id));

export function updateMessage(msg) {
  const thread = state.threads.get(msg.id);
  if (thread) { thread.root = msg; emit('thread', msg.id); }
  if (msg.thread_root_id && state.threads.get(msg.thread_root_id)?.replies.has(msg.id)) putReply(msg);
  if (state.byId.has(msg.id)) state.byId.set(msg.id, msg);
  const hist = state.history.get(msg.chat_id);
  if (hist && hist.bySeq.has(msg.seq)) putMessages(msg.chat_id, [msg]);
  notePin(msg);
  const chat = state.chats.get(msg.chat_id);
  if (chat && chat.last_message && chat.last_message.id === msg.id) {
    chat.last_message = msg;
    emit('chats');
  }
}

export function markChatRead(chatId, seq) {
  const chat = state.chats.get(chatId);
  if (!chat) return;
  chat.read_seq = Math.max(chat.read_seq || 0, seq);
  if (seq >= (chat.last_seq || 0)) {
    chat.unread_count = 0;
    chat.mention_count = 0;
  } else {
    // Read up to a message in the middle (a window opened at the read marker): what is
    // left unread is at most what comes after it.
    chat.unread_count = Math.min(chat.unread_count || 0, chat.last_seq - chat.read_seq);
  }
  emit('chats');
}

// ---- threads -------------------------------------------------------------------

/** A thread reply that is not also shown in the chat's main timeline. */
export const isThreadOnly = (msg) => Boolean(msg.thread_root_id) && !msg.also_in_chat;

export function threadOf(rootId) {
  if (!state.threads.has(rootId)) state.threads.set(rootId, { root: null, replies: new Map(), loaded: false });
  return state.threads.get(rootId);
}

export function putThread(root, replies) {
  const thread = threadOf(root.id);
  thread.root = root;
  for (const msg of replies) thread.replies.set(msg.id, msg);
  thread.loaded = true;
  emit('thread', root.id);
}

function putReply(msg) {
  const thread = state.threads.get(msg.thread_root_id);
  if (!thread) return;
  thread.replies.set(msg.id, msg);
  if (msg.client_id) state.pending.get(msg.chat_id)?.delete(msg.client_id);
  emit('thread', msg.thread_root_id);
}

/** Thread replies, ascending. */
export const repliesOf = (rootId) => [...(state.threads.get(rootId)?.replies.values() || [])].sort((a, b) => a.seq - b.seq);

export function setThreadsUnread(count) {
  if (state.threadsUnread === count) return;
  state.threadsUnread = count;
  emit('threads_unread', count);
}

export function setOpenThread(rootId) {
  state.openThreadId = rootId;
  emit('thread', rootId);
}

/** My read marker moved back (mark as unread, here or in another tab). */
export function keepUnread(chatId, seq) {
  const chat = state.chats.get(chatId);
  if (chat) chat.read_seq = seq;
  if (chatId === state.activeChatId) state.keptUnread = chatId;
  emit('chats');
}

// ---- pins ----------------------------------------------------------------------

export function setPins(chatId, pins) {
  state.pins.set(chatId, pins);
  emit('pins', chatId);
}

/** A message changed: it joins (first) or leaves its chat's pins as its pin says. */
function notePin(msg) {
  const pins = state.pins.get(msg.chat_id);
  if (!pins) return;
  const others = pins.filter((m) => m.id !== msg.id);
  const was = others.length !== pins.length;
  if (msg.pinned_at && !msg.deleted) {
    state.pins.set(msg.chat_id, was ? pins.map((m) => (m.id === msg.id ? msg : m)) : [msg, ...pins]);
  } else if (was) {
    state.pins.set(msg.chat_id, others);
  } else {
    return;
  }
  emit('pins', msg.chat_id);
}

// ---- pending sends -------------------------------------------------------------

export function pendingOf(chatId) {
  if (!state.pending.has(chatId)) state.pending.set(chatId, new Map());
  return state.pending.get(chatId);
}

export function putPending(item) {
  pendingOf(item.chat_id).set(item.client_id, item);
  emit('messages', item.chat_id);
}

/** The pending send with this client_id, in whichever chat; null when there is none. */
export function findPending(clientId) {
  for (const items of state.pending.values()) {
    if (items.has(clientId)) return items.get(clientId);
  }
  return null;
}

/** "pending" or "failed" (with the error's text and code); the item, or null if gone. */
export function setPendingStatus(clientId, status, error, code) {
  const item = findPending(clientId);
  if (!item) return null;
  item.status = status;
  item.error = error || null;
  item.code = code || null;
  emit('messages', item.chat_id);
  return item;
}

export function dropPending(chatId, clientId) {
  state.pending.get(chatId)?.delete(clientId);
  emit('messages', chatId);
}

// ---- typing ------------------------------------------------------------------------

const TYPING_MS = 6000;

export function noteTyping(chatId, userId) {
  if (state.me && userId === state.me.id) return;
  if (!state.typing.has(chatId)) state.typing.set(chatId, new Map());
  state.typing.get(chatId).set(userId, Date.now() + TYPING_MS);
  emit('typing', chatId);
  setTimeout(() => emit('typing', chatId), TYPING_MS + 50);
}

export function clearTyping(chatId, userId) {
  if (state.typing.get(chatId)?.delete(userId)) emit('typing', chatId);
}

export function typingUsers(chatId) {
  const now = Date.now();
  const map = state.typing.get(chatId);
  if (!map) return [];
  for (const [id, until] of map) if (until < now) map.delete(id);
  return [...map.keys()];
}

// ---- presence of mind: read markers and drafts ---------------------------------------

/** Others' read markers of a chat, as GET /chats/{id} lists them. */
export function setReadMarkers(chatId, markers) {
  state.readMarkers.set(chatId, new Map(markers.map((m) => [m.user_id, m.seq])));
  emit('history', chatId);
}

/** A `read` frame of another member: its marker moves forward. */
export function noteReadMarker(chatId, userId, seq) {
  if (!state.readMarkers.has(chatId)) state.readMarkers.set(chatId, new Map());
  const markers = state.readMarkers.get(chatId);
  if ((markers.get(userId) || 0) >= seq) return;
  markers.set(userId, seq);
  emit('history', chatId);
}

/** My draft of a chat as just typed (the server copy follows, debounced). */
export function setChatDraft(chatId, content) {
  const chat = state.chats.get(chatId);
  if (!chat) return;
  const draft = content.trim() ? { content, updated_at: new Date().toISOString() } : null;
  state.chats.set(chatId, { ...chat, draft });
  emit('chats');
}
