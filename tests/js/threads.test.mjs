// Threads in the client's store (parley/web/js/state.js): replies only in a thread are
// not the chat's unread; an open thread takes its replies and its root's updates.

import assert from 'node:assert/strict';
import { test } from 'node:test';

let copies = 0;
async function fresh() {
  copies += 1;
  const store = await import(`../../parley/web/js/state.js?threads=${copies}`);
  store.setMe({ id: 1, username: 'me', display_name: null });
  store.upsertChat({ id: 7, type: 'group', title: 'team', last_seq: 1, unread_count: 0, mention_count: 0 });
  return store;
}

const user = (id) => ({ id, username: `user${id}`, display_name: null });
const message = (seq, extra = {}) => ({
  id: 100 + seq, chat_id: 7, seq, sender: user(2), content: `m${seq}`, mentions: [],
  created_at: '2026-12-07T10:00:00Z', thread_root_id: null, also_in_chat: false, thread: null, ...extra,
});

test('isThreadOnly: a reply not also sent to the chat', async () => {
  const store = await fresh();
  assert.equal(store.isThreadOnly(message(2)), false);
  assert.equal(store.isThreadOnly(message(2, { thread_root_id: 101 })), true);
  assert.equal(store.isThreadOnly(message(2, { thread_root_id: 101, also_in_chat: true })), false);
});

test('a thread-only reply is not the chat\'s unread; one that mentions me is a mention', async () => {
  const store = await fresh();
  const chat = store.state.chats.get(7);
  store.receiveMessage(message(2, { thread_root_id: 101 }));
  assert.equal(chat.unread_count, 0);
  assert.equal(chat.last_seq, 2);
  store.receiveMessage(message(3, { thread_root_id: 101, also_in_chat: true }));
  assert.equal(chat.unread_count, 1);
  store.receiveMessage(message(4, { thread_root_id: 101, mentions: [1] }));
  assert.equal(chat.unread_count, 1);
  assert.equal(chat.mention_count, 1);
});

test('an open thread takes new replies and its root\'s updates, in seq order', async () => {
  const store = await fresh();
  const heard = [];
  store.on('thread', (id) => heard.push(id));
  const root = message(1);
  store.putThread(root, [message(3, { thread_root_id: root.id })]);
  store.receiveMessage(message(2, { thread_root_id: root.id }));
  store.receiveMessage(message(5, { thread_root_id: 999 })); // another thread, not loaded
  assert.deepEqual(store.repliesOf(root.id).map((m) => m.seq), [2, 3]);
  const summary = { reply_count: 2, last_reply_at: '2026-12-07T10:01:00Z', participant_ids: [2] };
  store.updateMessage({ ...root, thread: summary });
  assert.deepEqual(store.threadOf(root.id).root.thread, summary);
  assert.ok(heard.every((id) => id === root.id) && heard.length >= 3);
});
