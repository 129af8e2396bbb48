// The sidebar: my chats by activity (unread badge, last message, typing), and the
// search box for people and public channels.

import * as actions from '../actions.js';
import { clear, h, icon } from '../dom.js';
import { displayName, formatShort } from '../format.js';
import * as store from '../state.js';
import { chatAvatar, chatTitle, userAvatar } from './avatar.js';
import { attempt } from './toast.js';

const { state } = store;
let openChat = () => {};
let frame = 0;

export function mountSidebar({ onOpen }) {
  openChat = onOpen;
  const schedule = () => {
    if (!frame) frame = requestAnimationFrame(() => { frame = 0; renderList(); });
  };
  for (const event of ['chats', 'presence', 'typing', 'me']) store.on(event, schedule);
  mountSearch();
  renderList();
}

// ---- chat list ----------------------------------------------------------------------

function renderList() {
  const list = document.getElementById('chat-list');
  const chats = store.sortedChats();
  list.setAttribute('role', chats.length ? 'list' : 'none');
  if (!chats.length) {
    clear(list).append(h('div', { class: 'list-empty' }, 'No chats yet. Search for someone to talk to.'));
    return;
  }
  list.replaceChildren(...chats.map((chat) => h('div', { role: 'listitem' }, chatItem(chat))));
  const unread = chats.reduce((n, c) => n + (c.unread_count || 0), 0);
  document.title = unread ? `(${unread}) Parley` : 'Parley';
}

function preview(chat) {
  const typers = store.typingUsers(chat.id);
  if (typers.length) {
    const who = chat.type === 'direct' ? '' : `${displayName(state.users.get(typers[0]))} `;
    return h('span', { class: 'typing-text' }, `${who}typing…`);
  }
  const msg = chat.last_message;
  if (!msg) return chat.type === 'channel' ? 'Channel' : chat.type === 'group' ? 'Group' : 'Say hello 👋';
  let text = msg.deleted ? 'Message deleted' : msg.content;
  if (!text && msg.attachments?.length) text = `📎 ${msg.attachments[0].filename}`;
  const mine = state.me && msg.sender.id === state.me.id;
  const who = mine ? 'You: ' : chat.type === 'direct' ? '' : `${displayName(msg.sender)}: `;
  return `${who}${text}`;
}

function chatItem(chat) {
  const unread = chat.unread_count || 0;
  const active = chat.id === state.activeChatId;
  const typeIcon = chat.type === 'group' ? icon('group') : null;
  return h('button', {
    class: `chat-item${active ? ' is-active' : ''}${unread ? ' has-unread' : ''}`,
    testid: `chat-item-${chat.id}`,
    dataset: { chatId: chat.id, chatType: chat.type },
    'aria-current': active ? 'true' : null,
    onclick: () => openChat(chat.id),
  },
  chatAvatar(chat, { presence: chat.type === 'direct' }),
  h('span', { class: 'chat-item-body' },
    h('span', { class: 'chat-item-row' },
      h('span', { class: 'chat-item-title', testid: 'chat-item-title' }, typeIcon, h('span', null, chatTitle(chat))),
      h('span', { class: 'chat-item-time' }, formatShort(store.activityOf(chat)))),
    h('span', { class: 'chat-item-row' },
      h('span', { class: 'chat-item-preview', testid: 'chat-item-preview' }, preview(chat)),
      unread ? h('span', { class: 'badge', testid: 'unread-badge' }, unread > 99 ? '99+' : unread) : null)));
}

// ---- search: people and public channels ------------------------------------------------

function mountSearch() {
  const input = document.getElementById('search-input');
  let timer = 0;
  let seq = 0;
  input.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = input.value.trim();
      const mine = ++seq;
      if (!q) return showResults(null);
      const [users, channels] = await Promise.all([
        actions.searchUsers(q).catch(() => []),
        actions.searchChannels(q).catch(() => []),
      ]);
      if (mine === seq) showResults({ users, channels });
    }, 200);
  });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') resetSearch();
  });
}

export function resetSearch() {
  const input = document.getElementById('search-input');
  input.value = '';
  showResults(null);
}

function showResults(results) {
  const box = document.getElementById('search-results');
  const list = document.getElementById('chat-list');
  box.hidden = !results;
  list.hidden = Boolean(results);
  if (!results) return clear(box);
  const people = results.users.filter((u) => u.id !== state.me.id);
  clear(box).append(
    h('div', { class: 'section-label' }, 'People'),
    people.length ? h('div', { class: 'pick-list' }, people.map(personRow)) : h('div', { class: 'list-empty' }, 'No people found'),
    h('div', { class: 'section-label' }, 'Public channels'),
    results.channels.length ? h('div', { class: 'pick-list' }, results.channels.map(channelRow)) : h('div', { class: 'list-empty' }, 'No channels found'),
  );
}

function personRow(user) {
  store.rememberUser(user);
  return h('button', {
    class: 'pick-item', testid: `search-user-${user.id}`,
    onclick: () => attempt(async () => {
      const chat = await actions.startDirect(user.id);
      resetSearch();
      openChat(chat.id);
    }),
  },
  userAvatar(user, { size: 'avatar-sm' }),
  h('span', { class: 'pick-text' },
    h('span', { class: 'pick-title' }, displayName(user)),
    h('span', { class: 'pick-sub' }, `@${user.username}`)),
  h('span', { class: 'btn btn-small', testid: `start-direct-${user.id}` }, 'Message'));
}

export function channelRow(chat, { onDone = resetSearch } = {}) {
  const joined = state.chats.has(chat.id);
  const open = (join) => attempt(async () => {
    if (join) await actions.joinChannel(chat.id);
    onDone();
    openChat(chat.id);
  });
  return h('div', { class: 'pick-item', testid: `search-channel-${chat.id}` },
    chatAvatar(chat, { size: 'avatar-sm' }),
    h('span', { class: 'pick-text' },
      h('span', { class: 'pick-title' }, chat.title),
      h('span', { class: 'pick-sub' }, `${chat.member_count ?? 0} members${chat.description ? ` · ${chat.description}` : ''}`)),
    joined
      ? h('button', { class: 'btn btn-small', testid: `open-channel-${chat.id}`, onclick: () => open(false) }, 'Open')
      : h('button', { class: 'btn btn-small btn-primary', testid: `join-channel-${chat.id}`, onclick: () => open(true) }, 'Join'));
}
