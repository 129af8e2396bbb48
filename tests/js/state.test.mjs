// The client's store (parley/web/js/state.js): every mutation, what it leaves in `state`
// and the events it emits. Each test imports a fresh copy of the module (its own state).

import assert from 'node:assert/strict';
import { afterEach, mock, test } from 'node:test';

let copies = 0;
/** A fresh store, with a log of every event it emits: [[event, detail], …]. */
async function fresh() {
  copies += 1;
  const store = await import(`../../parley/web/js/state.js?copy=${copies}`);
  const events = [];
  for (const name of ['chats', 'active', 'presence', 'messages', 'history', 'incoming', 'typing', 'me', 'blocks']) {
    store.on(name, (detail) => events.push([name, detail]));
  }
  return { store, state: store.state, events, names: () => events.map(([name]) => name) };
}

const user = (id, extra = {}) => ({ id, username: `user${id}`, display_name: null, ...extra });
const chat = (id, extra = {}) => ({ id, type: 'group', title: `chat ${id}`, last_seq: 0, unread_count: 0, created_at: '2024-01-01T00:00:00Z', ...extra });
const message = (chatId, seq, extra = {}) => ({
  id: chatId * 1000 + seq, chat_id: chatId, seq, sender: user(2), content: `m${seq}`, mentions: [],
  created_at: `2024-03-01T10:00:${String(seq).padStart(2, '0')}Z`, ...extra,
});

afterEach(() => mock.timers.reset());

// ---- events ----------------------------------------------------------------------------

test('on() subscribes, its return value unsubscribes, emit() reaches every subscriber', async () => {
  const { store } = await fresh();
  const heard = [];
  const off = store.on('custom', (d) => heard.push(['a', d]));
  store.on('custom', (d) => heard.push(['b', d]));
  store.emit('custom', 1);
  off();
  store.emit('custom', 2);
  store.emit('nobody-listens');
  assert.deepEqual(heard, [['a', 1], ['b', 1], ['b', 2]]);
});

test('the initial state', async () => {
  const { state } = await fresh();
  assert.equal(state.me, null);
  assert.equal(state.activeChatId, null);
  assert.equal(state.connection, 'connecting');
  assert.deepEqual(state.blockList, []);
  for (const key of ['chats', 'history', 'byId', 'pending', 'users', 'presence', 'typing']) assert.equal(state[key].size, 0, key);
  assert.equal(state.blocked.size, 0);
});

// ---- chats -------------------------------------------------------------------------------

test('upsertChat adds a chat, emits chats, returns the stored copy', async () => {
  const { store, state, names } = await fresh();
  const stored = store.upsertChat(chat(1, { unread_count: 2 }));
  assert.equal(state.chats.get(1), stored);
  assert.equal(stored.unread_count, 2);
  assert.deepEqual(names(), ['chats']);
});

test('upsertChat merges fields, keeping a fresher last_seq and last_message than the snapshot', async () => {
  const { store, state } = await fresh();
  store.upsertChat(chat(1, { last_seq: 9, last_message: message(1, 9), title: 'old' }));
  store.upsertChat(chat(1, { last_seq: 7, last_message: message(1, 7), title: 'new', my_role: 'owner' }));
  const merged = state.chats.get(1);
  assert.equal(merged.title, 'new');
  assert.equal(merged.my_role, 'owner');
  assert.equal(merged.last_seq, 9);
  assert.equal(merged.last_message.seq, 9);
  store.upsertChat({ id: 1, last_seq: 12, last_message: message(1, 12) });
  assert.equal(state.chats.get(1).last_seq, 12);
  assert.equal(state.chats.get(1).last_message.seq, 12);
  assert.equal(state.chats.get(1).title, 'new'); // a partial update keeps the rest
});

test('upsertChat remembers a direct chat\'s peer and their presence', async () => {
  const { store, state } = await fresh();
  store.upsertChat(chat(1, { type: 'direct', peer: user(5, { online: true, last_seen_at: null }) }));
  assert.equal(state.users.get(5).username, 'user5');
  assert.deepEqual(state.presence.get(5), { online: true, last_seen_at: null });
  store.upsertChat(chat(1, { type: 'direct', peer: user(5, { online: false, last_seen_at: '2024-03-01T00:00:00Z' }) }));
  assert.deepEqual(state.presence.get(5), { online: false, last_seen_at: '2024-03-01T00:00:00Z' });
});

test('setChats replaces the list: chats no longer listed are dropped', async () => {
  const { store, state, names } = await fresh();
  store.upsertChat(chat(1));
  store.upsertChat(chat(2));
  store.setChats([chat(2, { title: 'renamed' }), chat(3)]);
  assert.deepEqual([...state.chats.keys()].sort(), [2, 3]);
  assert.equal(state.chats.get(2).title, 'renamed');
  assert.equal(names().at(-1), 'chats');
});

test('removeChat drops the chat with its history and pending sends, and closes it when open', async () => {
  const { store, state, events } = await fresh();
  store.upsertChat(chat(1));
  store.upsertChat(chat(2));
  store.putMessages(1, [message(1, 1)]);
  store.putPending({ chat_id: 1, client_id: 'c1', status: 'pending' });
  store.setActiveChat(1);
  events.length = 0;
  store.removeChat(1);
  assert.equal(state.chats.has(1), false);
  assert.equal(state.history.has(1), false);
  assert.equal(state.pending.has(1), false);
  assert.equal(state.activeChatId, null);
  assert.deepEqual(events, [['chats', undefined], ['active', null], ['chats', undefined]]);
  events.length = 0;
  store.removeChat(2); // not the open one: the open chat stays as it is
  assert.deepEqual(events, [['chats', undefined]]);
});

test('setActiveChat sets the open chat and emits active then chats', async () => {
  const { store, state, events } = await fresh();
  store.setActiveChat(4);
  assert.equal(state.activeChatId, 4);
  assert.deepEqual(events, [['active', 4], ['chats', undefined]]);
});

test('sortedChats: newest activity first, ties by id, virtual chats left out', async () => {
  const { store } = await fresh();
  store.upsertChat(chat(1, { created_at: '2024-01-01T00:00:00Z' }));
  store.upsertChat(chat(2, { created_at: '2024-01-01T00:00:00Z' }));
  store.upsertChat(chat(3, { last_message: message(3, 1, { created_at: '2024-02-01T00:00:00Z' }) }));
  store.virtualDirect(user(9));
  assert.deepEqual(store.sortedChats().map((c) => c.id), [3, 2, 1]);
  assert.equal(store.activityOf({}), '');
});

test('isMuted: "forever", a time ahead, not a time past nor none', async () => {
  const { store } = await fresh();
  mock.timers.enable({ apis: ['Date'], now: Date.parse('2024-03-01T12:00:00Z') });
  assert.equal(store.isMuted({ muted_until: 'forever' }), true);
  assert.equal(store.isMuted({ muted_until: '2024-03-01T13:00:00Z' }), true);
  assert.equal(store.isMuted({ muted_until: '2024-03-01T11:00:00Z' }), false);
  assert.equal(store.isMuted({ muted_until: null }), false);
  assert.equal(store.isMuted(null), false);
});

test('unreadTotal: unread of every chat, mentions only for muted ones', async () => {
  const { store } = await fresh();
  store.upsertChat(chat(1, { unread_count: 3 }));
  store.upsertChat(chat(2, { unread_count: 10, mention_count: 2, muted_until: 'forever' }));
  store.upsertChat(chat(3, { unread_count: 0 }));
  assert.equal(store.unreadTotal(), 5);
});

test('directWith finds my direct chat with someone (never a virtual one)', async () => {
  const { store } = await fresh();
  store.upsertChat(chat(1, { type: 'group' }));
  store.upsertChat(chat(2, { type: 'direct', peer: user(7) }));
  assert.equal(store.directWith(7).id, 2);
  assert.equal(store.directWith(8), null);
  store.virtualDirect(user(8));
  assert.equal(store.directWith(8), null);
});

test('virtualDirect: a direct chat shown before it exists, negative id, empty loaded history', async () => {
  const { store, state } = await fresh();
  const v = store.virtualDirect(user(8, { display_name: 'Eight' }));
  assert.equal(v.id, -8);
  assert.equal(v.virtual, true);
  assert.equal(state.chats.get(-8), v);
  assert.equal(state.users.get(8).display_name, 'Eight');
  const hist = state.history.get(-8);
  assert.equal(hist.loaded, true);
  assert.equal(hist.hasMore, false);
});

test('discardVirtualDirect drops a virtual chat and its history, and nothing else', async () => {
  const { store, state } = await fresh();
  store.virtualDirect(user(8));
  store.upsertChat(chat(1));
  store.historyOf(1);
  store.discardVirtualDirect(1);
  store.discardVirtualDirect(null);
  assert.equal(state.chats.has(1), true);
  assert.equal(state.history.has(1), true);
  store.discardVirtualDirect(-8);
  assert.equal(state.chats.has(-8), false);
  assert.equal(state.history.has(-8), false);
});

// ---- users, presence, me, blocks, connection --------------------------------------------

test('rememberUser merges what is known; presence only when none is known yet', async () => {
  const { store, state } = await fresh();
  store.rememberUser(user(3, { display_name: 'Three', online: true, last_seen_at: null }));
  store.rememberUser({ id: 3, avatar_url: '/a.png', online: false, last_seen_at: 'x' });
  assert.deepEqual(state.users.get(3), { id: 3, username: 'user3', display_name: 'Three', avatar_url: '/a.png', online: false, last_seen_at: 'x' });
  assert.deepEqual(state.presence.get(3), { online: true, last_seen_at: null });
  store.rememberUser(null);
  store.rememberUser({ username: 'no id' });
  assert.equal(state.users.size, 1);
});

test('setPresence and isOnline', async () => {
  const { store, events } = await fresh();
  assert.equal(store.isOnline(4), false);
  store.setPresence(4, true, null);
  assert.equal(store.isOnline(4), true);
  store.setPresence(4, false, '2024-03-01T00:00:00Z');
  assert.equal(store.isOnline(4), false);
  assert.deepEqual(events, [['presence', 4], ['presence', 4]]);
});

test('setMe merges my profile, remembers me as a user, emits me', async () => {
  const { store, state, names } = await fresh();
  const me = store.setMe(user(1, { display_name: 'Me' }));
  assert.equal(state.me, me);
  store.setMe({ avatar_url: '/me.png' });
  assert.deepEqual(state.me, { id: 1, username: 'user1', display_name: 'Me', avatar_url: '/me.png' });
  assert.equal(state.users.get(1).avatar_url, '/me.png');
  assert.deepEqual(names(), ['me', 'me']);
});

test('setBlocks: who I blocked, the list with expiries, emits blocks', async () => {
  const { store, state, names } = await fresh();
  const list = [{ user_id: 5, expires_at: null }, { user_id: 6, expires_at: '2024-03-02T00:00:00Z' }];
  store.setBlocks(list);
  assert.deepEqual([...state.blocked].sort(), [5, 6]);
  assert.equal(state.blockList, list);
  store.setBlocks([]);
  assert.equal(state.blocked.size, 0);
  assert.deepEqual(names(), ['blocks', 'blocks']);
});

test('setConnection records the socket\'s status', async () => {
  const { store, state } = await fresh();
  store.setConnection('reconnecting');
  assert.equal(state.connection, 'reconnecting');
});

// ---- history -------------------------------------------------------------------------------

test('historyOf makes an empty, not yet loaded history once', async () => {
  const { store, state } = await fresh();
  const hist = store.historyOf(1);
  assert.deepEqual({ ...hist, bySeq: [...hist.bySeq] }, { bySeq: [], hasMore: true, hasNewer: false, loading: false, loaded: false });
  assert.equal(store.historyOf(1), hist);
  assert.equal(state.history.get(1), hist);
});

test('forgetHistory drops a chat\'s loaded history', async () => {
  const { store, state } = await fresh();
  store.putMessages(1, [message(1, 1)]);
  store.forgetHistory(1);
  assert.equal(state.history.has(1), false);
  assert.equal(store.newestSeq(1), 0);
});

test('setHistoryLoading sets the flag and emits history', async () => {
  const { store, events } = await fresh();
  store.setHistoryLoading(1, true);
  assert.equal(store.historyOf(1).loading, true);
  store.setHistoryLoading(1, false);
  assert.equal(store.historyOf(1).loading, false);
  assert.deepEqual(events, [['history', 1], ['history', 1]]);
});

test('putPage stores a page, marks the history loaded, sets only the flags given', async () => {
  const { store, events } = await fresh();
  store.putPage(1, [message(1, 5), message(1, 6)], { hasMore: false });
  let hist = store.historyOf(1);
  assert.deepEqual([hist.loaded, hist.hasMore, hist.hasNewer], [true, false, false]);
  store.putPage(1, [message(1, 7)], { hasNewer: true });
  hist = store.historyOf(1);
  assert.deepEqual([hist.hasMore, hist.hasNewer], [false, true]);
  assert.deepEqual([...hist.bySeq.keys()].sort(), [5, 6, 7]);
  assert.deepEqual(events, [['messages', 1], ['messages', 1]]);
});

test('putPage with replace: a window around another message replaces what was loaded', async () => {
  const { store } = await fresh();
  store.putPage(1, [message(1, 90), message(1, 91)]);
  store.putPage(1, [message(1, 10), message(1, 11)], { replace: true, hasMore: true, hasNewer: true });
  const hist = store.historyOf(1);
  assert.deepEqual([...hist.bySeq.keys()], [10, 11]);
  assert.deepEqual([store.oldestSeq(1), store.newestSeq(1)], [10, 11]);
});

test('newestSeq and oldestSeq: 0 and null for nothing loaded', async () => {
  const { store } = await fresh();
  assert.equal(store.newestSeq(1), 0);
  assert.equal(store.oldestSeq(1), null);
  store.putMessages(1, [message(1, 4), message(1, 2), message(1, 9)]);
  assert.equal(store.newestSeq(1), 9);
  assert.equal(store.oldestSeq(1), 2);
});

test('putMessages stores by seq and id, remembers senders, settles pending sends, emits once', async () => {
  const { store, state, events } = await fresh();
  store.putPending({ chat_id: 1, client_id: 'c1', status: 'pending' });
  events.length = 0;
  const echo = message(1, 3, { client_id: 'c1', sender: user(2, { display_name: 'Two' }) });
  store.putMessages(1, [message(1, 2), echo]);
  assert.equal(store.historyOf(1).bySeq.get(3), echo);
  assert.equal(state.byId.get(echo.id), echo);
  assert.equal(state.users.get(2).display_name, 'Two');
  assert.equal(store.pendingOf(1).has('c1'), false);
  assert.deepEqual(events, [['messages', 1]]);
});

test('rememberMessage keeps a message fetched by id (a quoted reply) and emits messages', async () => {
  const { store, state, events } = await fresh();
  const quoted = message(4, 1);
  store.rememberMessage(quoted);
  assert.equal(state.byId.get(quoted.id), quoted);
  assert.equal(state.history.has(4), false);
  assert.deepEqual(events, [['messages', 4]]);
});

// ---- a message frame -------------------------------------------------------------------------

/** Me (user 1) and chat 1; `history(store)` sets up its history (default: loaded, empty). */
async function withChat(extra = {}, history = (store) => store.putPage(1, [])) {
  const env = await fresh();
  env.store.setMe(user(1));
  env.store.upsertChat(chat(1, { last_seq: 4, unread_count: 0, ...extra }));
  history(env.store);
  env.events.length = 0;
  return env;
}

test('receiveMessage: someone else\'s new message counts as unread, updates the preview, is stored', async () => {
  const { store, state, events } = await withChat();
  const msg = message(1, 5);
  store.receiveMessage(msg);
  const c = state.chats.get(1);
  assert.deepEqual([c.last_seq, c.unread_count, c.last_message], [5, 1, msg]);
  assert.equal(store.historyOf(1).bySeq.get(5), msg);
  assert.deepEqual(events, [['chats', undefined], ['incoming', msg], ['messages', 1]]);
});

test('receiveMessage: my own message is not unread and rings no bell', async () => {
  const { store, state, names } = await withChat();
  store.receiveMessage(message(1, 5, { sender: user(1) }));
  assert.equal(state.chats.get(1).unread_count, 0);
  assert.equal(state.chats.get(1).last_seq, 5);
  assert.ok(!names().includes('incoming'));
});

test('receiveMessage: a message seen before (a replay) counts nothing twice', async () => {
  const { store, state, names } = await withChat({ last_message: message(1, 4) });
  store.receiveMessage(message(1, 3));
  assert.equal(state.chats.get(1).unread_count, 0);
  assert.equal(state.chats.get(1).last_message.seq, 4);
  assert.ok(!names().includes('incoming'));
});

test('receiveMessage: a mention of me counts in a group, not in a direct chat', async () => {
  const group = await withChat({ type: 'group', mention_count: 0 });
  group.store.receiveMessage(message(1, 5, { mentions: [1] }));
  group.store.receiveMessage(message(1, 6, { mentions: [3] }));
  assert.equal(group.state.chats.get(1).mention_count, 1);
  assert.equal(group.state.chats.get(1).unread_count, 2);
  const direct = await withChat({ type: 'direct' });
  direct.store.receiveMessage(message(1, 5, { mentions: [1] }));
  assert.equal(direct.state.chats.get(1).mention_count, undefined);
});

test('mentionsMe: whether my id is among the message\'s mentions', async () => {
  const { store } = await fresh();
  assert.equal(store.mentionsMe(message(1, 1, { mentions: [1] })), false); // nobody signed in
  store.setMe(user(1));
  assert.equal(store.mentionsMe(message(1, 1, { mentions: [1] })), true);
  assert.equal(store.mentionsMe(message(1, 1, { mentions: [2] })), false);
  assert.equal(store.mentionsMe({ mentions: undefined }), false);
});

test('receiveMessage while the first page loads keeps the message (it may be newer than the page)', async () => {
  const { store } = await withChat({}, (s) => s.setHistoryLoading(1, true));
  store.receiveMessage(message(1, 5));
  assert.equal(store.historyOf(1).bySeq.has(5), true);
});

test('receiveMessage for a history not loaded, or an older window, stores nothing but settles the send', async () => {
  const notLoaded = () => {};
  const olderWindow = (s) => s.putPage(1, [message(1, 2)], { replace: true, hasNewer: true });
  for (const history of [notLoaded, olderWindow]) {
    const { store } = await withChat({}, history);
    store.putPending({ chat_id: 1, client_id: 'c9', status: 'pending' });
    store.receiveMessage(message(1, 5, { sender: user(1), client_id: 'c9' }));
    assert.equal(store.historyOf(1).bySeq.has(5), false);
    assert.equal(store.findPending('c9'), null);
  }
});

test('receiveMessage for a chat not listed still stores into a loaded history', async () => {
  const { store, state } = await fresh();
  store.putPage(3, [message(3, 1)]);
  store.receiveMessage(message(3, 2));
  assert.equal(state.chats.has(3), false);
  assert.equal(store.newestSeq(3), 2);
});

test('receiveMessage ends the sender\'s typing mark', async () => {
  const { store } = await withChat();
  mock.timers.enable({ apis: ['Date', 'setTimeout'], now: 0 });
  store.noteTyping(1, 2);
  assert.deepEqual(store.typingUsers(1), [2]);
  store.receiveMessage(message(1, 5));
  assert.deepEqual(store.typingUsers(1), []);
});

test('updateMessage replaces a loaded message and a preview showing it; ignores others', async () => {
  const { store, state, events } = await withChat({ last_message: message(1, 4) });
  store.putMessages(1, [message(1, 3), message(1, 4)]);
  events.length = 0;
  store.updateMessage(message(1, 4, { content: 'edited' }));
  assert.equal(store.historyOf(1).bySeq.get(4).content, 'edited');
  assert.equal(state.chats.get(1).last_message.content, 'edited');
  assert.deepEqual(events, [['messages', 1], ['chats', undefined]]);
  events.length = 0;
  store.updateMessage(message(1, 3, { deleted: true, content: '' }));
  assert.equal(store.historyOf(1).bySeq.get(3).deleted, true);
  assert.equal(state.chats.get(1).last_message.content, 'edited');
  assert.deepEqual(events, [['messages', 1]]);
  events.length = 0;
  store.updateMessage(message(1, 99, { content: 'not loaded' }));
  store.updateMessage(message(7, 1));
  assert.equal(store.historyOf(1).bySeq.has(99), false);
  assert.deepEqual(events, []);
});

test('markChatRead: read_seq only moves forward; counters clear when the newest is read', async () => {
  const { store, state, events } = await withChat({ last_seq: 10, read_seq: 2, unread_count: 8, mention_count: 1 });
  store.markChatRead(1, 6);
  let c = state.chats.get(1);
  // Read up to 6 of 10: at most 4 are left unread.
  assert.deepEqual([c.read_seq, c.unread_count, c.mention_count], [6, 4, 1]);
  store.markChatRead(1, 10);
  c = state.chats.get(1);
  assert.deepEqual([c.read_seq, c.unread_count, c.mention_count], [10, 0, 0]);
  store.markChatRead(1, 3);
  assert.equal(state.chats.get(1).read_seq, 10);
  store.markChatRead(42, 1); // a chat I do not have: nothing happens
  assert.deepEqual(events.map(([n]) => n), ['chats', 'chats', 'chats']);
});

// ---- pending sends ---------------------------------------------------------------------------

test('putPending, findPending, pendingOf', async () => {
  const { store, events } = await fresh();
  const item = { chat_id: 2, client_id: 'c1', content: 'hi', status: 'pending' };
  store.putPending(item);
  assert.equal(store.findPending('c1'), item);
  assert.equal(store.pendingOf(2).get('c1'), item);
  assert.equal(store.findPending('nope'), null);
  assert.deepEqual(events, [['messages', 2]]);
});

test('setPendingStatus: failed with the error\'s text and code, then pending again', async () => {
  const { store, events } = await fresh();
  store.putPending({ chat_id: 2, client_id: 'c1', status: 'pending' });
  const failed = store.setPendingStatus('c1', 'failed', 'Too fast', 'rate_limited');
  assert.deepEqual([failed.status, failed.error, failed.code], ['failed', 'Too fast', 'rate_limited']);
  const again = store.setPendingStatus('c1', 'pending');
  assert.deepEqual([again.status, again.error, again.code], ['pending', null, null]);
  assert.equal(store.setPendingStatus('gone', 'failed', 'x'), null);
  assert.deepEqual(events, [['messages', 2], ['messages', 2], ['messages', 2]]);
});

test('dropPending discards a send', async () => {
  const { store, events } = await fresh();
  store.putPending({ chat_id: 2, client_id: 'c1', status: 'failed' });
  store.dropPending(2, 'c1');
  store.dropPending(3, 'c2'); // nothing there: still harmless
  assert.equal(store.findPending('c1'), null);
  assert.deepEqual(events, [['messages', 2], ['messages', 2], ['messages', 3]]);
});

// ---- typing -----------------------------------------------------------------------------------

test('noteTyping marks someone for 6 s, then the mark expires and a re-render is asked', async () => {
  const { store, events } = await fresh();
  mock.timers.enable({ apis: ['Date', 'setTimeout'], now: 1000 });
  store.setMe(user(1));
  events.length = 0;
  store.noteTyping(5, 2);
  store.noteTyping(5, 3);
  assert.deepEqual(store.typingUsers(5), [2, 3]);
  assert.deepEqual(events, [['typing', 5], ['typing', 5]]);
  mock.timers.tick(5000);
  store.noteTyping(5, 3); // typing again: 6 s more for them
  assert.equal(events.length, 3);
  mock.timers.tick(1100); // the first two marks' expiry: each asks a re-render
  assert.equal(events.length, 5);
  assert.deepEqual(store.typingUsers(5), [3]);
  mock.timers.tick(6000);
  assert.equal(events.length, 6);
  assert.deepEqual(store.typingUsers(5), []);
});

test('noteTyping ignores my own typing (from my other tabs)', async () => {
  const { store, events } = await fresh();
  store.setMe(user(1));
  events.length = 0;
  store.noteTyping(5, 1);
  assert.deepEqual(store.typingUsers(5), []);
  assert.deepEqual(events, []);
});

test('clearTyping removes a mark, emitting only when there was one', async () => {
  const { store, events } = await fresh();
  mock.timers.enable({ apis: ['Date', 'setTimeout'], now: 0 });
  store.noteTyping(5, 2);
  events.length = 0;
  store.clearTyping(5, 2);
  store.clearTyping(5, 2);
  store.clearTyping(6, 2);
  assert.deepEqual(store.typingUsers(5), []);
  assert.deepEqual(events, [['typing', 5]]);
});

// ---- new-user defects: blocks and read markers ------------------------------------------

test('receiveMessage ignores a blocked sender outside direct chats, not in a direct chat', async () => {
  const { store, state } = await fresh();
  store.setChats([chat(1, { last_seq: 1 }), chat(2, { type: 'direct', last_seq: 1 })]);
  store.setBlocks([{ user_id: 2, expires_at: null }]);
  store.receiveMessage(message(1, 2));
  assert.equal(state.chats.get(1).unread_count, 0);
  assert.equal(state.chats.get(1).last_message, undefined);
  store.receiveMessage(message(2, 2));
  assert.equal(state.chats.get(2).unread_count, 1);
  assert.equal(state.chats.get(2).last_message.seq, 2);
});

test('hideSender drops the blocked sender from group previews and loaded history', async () => {
  const { store, state, events } = await fresh();
  store.setChats([chat(1, { last_seq: 2 }), chat(2, { type: 'direct', last_seq: 1 })]);
  store.putPage(1, [message(1, 1, { sender: user(3) }), message(1, 2)], { hasMore: false });
  store.receiveMessage(message(2, 1));
  state.chats.get(1).last_message = message(1, 2);
  events.length = 0;
  store.hideSender(2);
  assert.deepEqual([...state.history.get(1).bySeq.keys()], [1]);
  assert.equal(state.chats.get(1).last_message, undefined);
  assert.equal(state.chats.get(2).last_message.seq, 1); // a direct chat keeps it
  assert.deepEqual(events, [['messages', 1], ['chats', undefined]]);
});

test('markChatRead in the middle leaves at most what comes after the marker unread', async () => {
  const { store, state } = await fresh();
  store.setChats([chat(1, { last_seq: 100, unread_count: 60, read_seq: 40 })]);
  store.markChatRead(1, 70);
  assert.equal(state.chats.get(1).read_seq, 70);
  assert.equal(state.chats.get(1).unread_count, 30);
  store.markChatRead(1, 100);
  assert.equal(state.chats.get(1).unread_count, 0);
});

test('updateUser (user_updated) renews the known user, a direct chat\'s peer and me, not presence', async () => {
  const { store, state, events } = await fresh();
  store.setMe(user(1));
  store.setChats([chat(5, { type: 'direct', peer: user(2, { online: true }) })]);
  events.length = 0;
  store.updateUser(user(2, { display_name: 'Bo', avatar_url: '/a?v=2', online: false }));
  assert.equal(state.users.get(2).avatar_url, '/a?v=2');
  assert.equal(state.chats.get(5).peer.avatar_url, '/a?v=2');
  assert.equal(state.chats.get(5).title, 'Bo');
  assert.equal(state.presence.get(2).online, true); // presence has its own frame
  store.updateUser(user(1, { avatar_url: '/me?v=3' }));
  assert.equal(state.me.avatar_url, '/me?v=3');
  assert.deepEqual(events.map(([n]) => n), ['chats', 'messages', 'me', 'chats', 'messages']);
});

test('setChats keeps a direct chat shown before it exists (the server does not list it)', async () => {
  const { store, state } = await fresh();
  store.setMe(user(1));
  const shown = store.virtualDirect(user(2));
  store.setChats([chat(1), chat(3)]);
  store.setChats([chat(1)]);
  assert.ok(state.chats.has(shown.id));
  assert.ok(!state.chats.has(3));
});

// ---- presence of mind: read markers and drafts ------------------------------------------

test('read markers are set from the chat, move forward only, and re-render the history', async () => {
  const { store, state, events } = await fresh();
  store.setReadMarkers(5, [{ user_id: 2, seq: 3 }, { user_id: 3, seq: 1 }]);
  assert.deepEqual([...state.readMarkers.get(5)], [[2, 3], [3, 1]]);
  store.noteReadMarker(5, 2, 2); // behind: ignored
  store.noteReadMarker(5, 3, 4);
  store.noteReadMarker(6, 9, 1); // a chat never loaded
  assert.deepEqual([...state.readMarkers.get(5)], [[2, 3], [3, 4]]);
  assert.deepEqual([...state.readMarkers.get(6)], [[9, 1]]);
  assert.deepEqual(events, [['history', 5], ['history', 5], ['history', 6]]);
});

test('a draft typed here shows in the chat at once; blank text clears it', async () => {
  const { store, state, names } = await fresh();
  store.upsertChat(chat(1));
  store.setChatDraft(1, 'half a thought\n');
  assert.equal(state.chats.get(1).draft.content, 'half a thought\n');
  assert.ok(state.chats.get(1).draft.updated_at);
  store.setChatDraft(1, '   ');
  assert.equal(state.chats.get(1).draft, null);
  store.setChatDraft(99, 'no such chat');
  assert.equal(state.chats.has(99), false);
  assert.deepEqual(names(), ['chats', 'chats', 'chats']);
});

// ---- notices, pins, mark as unread ------------------------------------------------------

test('a notice takes its seq but is never unread, never the last message, never incoming', async () => {
  const { store, state, names } = await fresh();
  store.setMe(user(1));
  store.upsertChat(chat(7, { last_seq: 1, last_message: message(7, 1) }));
  store.receiveMessage(message(7, 2, { kind: 'notice', content: '', notice: { action: 'joined', actor_id: 2, user_ids: [2], title: null } }));
  const seen = state.chats.get(7);
  assert.equal(seen.last_seq, 2);
  assert.equal(seen.unread_count, 0);
  assert.equal(seen.last_message.seq, 1);
  assert.ok(!names().includes('incoming'));
  store.receiveMessage(message(7, 3));
  assert.equal(state.chats.get(7).unread_count, 1);
});

test('a message_updated moves a message into or out of its chat\'s pins, latest first', async () => {
  const { store, state } = await fresh();
  const older = message(7, 1, { pinned_at: '2024-03-01T10:00:00Z' });
  store.setPins(7, [older]);
  store.updateMessage(message(7, 2, { pinned_at: '2024-03-01T11:00:00Z' }));
  assert.deepEqual(state.pins.get(7).map((m) => m.seq), [2, 1]);
  store.updateMessage(message(7, 1, { pinned_at: null }));
  assert.deepEqual(state.pins.get(7).map((m) => m.seq), [2]);
  store.updateMessage(message(7, 2, { pinned_at: '2024-03-01T11:00:00Z', deleted: true }));
  assert.deepEqual(state.pins.get(7), []);
});

test('marking the open chat unread keeps it unread until another chat is opened', async () => {
  const { store, state } = await fresh();
  store.upsertChat(chat(7, { last_seq: 5, read_seq: 5 }));
  store.setActiveChat(7);
  store.keepUnread(7, 2);
  assert.equal(state.chats.get(7).read_seq, 2);
  assert.equal(state.keptUnread, 7);
  store.setActiveChat(8);
  assert.equal(state.keptUnread, null);
});
