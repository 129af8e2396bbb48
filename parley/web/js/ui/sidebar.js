// The sidebar: my chats by activity (unread badge, last message, typing), and the
// search box for people and public channels.

import * as actions from '../actions.js';
import { clear, h, icon } from '../dom.js';
import { displayName, formatShort } from '../format.js';
import { t } from '../i18n.js';
import { plainText } from '../markdown.js';
import * as store from '../state.js';
import { chatAvatar, chatDescription, chatTitle, statusBadge, userAvatar } from './avatar.js';
import { attempt } from './toast.js';

const { state } = store;
let openChat = () => {};
let openPerson = () => {};
let frame = 0;

export function mountSidebar({ onOpen, onOpenPerson }) {
  openChat = onOpen;
  openPerson = onOpenPerson;
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
    clear(list).append(h('div', { class: 'list-empty' }, t('sidebar.noChats')));
    return;
  }
  list.replaceChildren(...chats.map((chat) => h('div', { role: 'listitem' }, chatItem(chat))));
}

function preview(chat) {
  // presence of mind: my unsent text (kept on the server) outside the open chat
  if (chat.draft?.content && chat.id !== state.activeChatId) {
    return h('span', { class: 'draft-preview', testid: 'draft-label' },
      h('span', { class: 'draft-label' }, `${t('mind.draft')}: `), plainText(chat.draft.content));
  }
  const typers = store.typingUsers(chat.id);
  if (typers.length) {
    const text = chat.type === 'direct' ? t('sidebar.typing') : t('sidebar.typingName', { name: displayName(state.users.get(typers[0])) });
    return h('span', { class: 'typing-text' }, text);
  }
  const msg = chat.last_message;
  if (!msg) return chat.type === 'channel' ? t('chat.type.channel') : chat.type === 'group' ? t('chat.type.group') : t('sidebar.sayHello');
  let text = msg.deleted ? t('sidebar.deleted') : plainText(msg.content);
  if (!text && msg.attachments?.length) text = `📎 ${msg.attachments[0].filename}`;
  const mine = state.me && msg.sender.id === state.me.id;
  if (mine) return t('sidebar.you', { text });
  return chat.type === 'direct' ? text : `${displayName(msg.sender)}: ${text}`;
}

function chatItem(chat) {
  const unread = chat.unread_count || 0;
  const mentions = chat.mention_count || 0;
  const muted = store.isMuted(chat);
  const active = chat.id === state.activeChatId;
  const typeIcon = chat.type === 'group' ? icon('group') : null;
  return h('button', {
    class: `chat-item${active ? ' is-active' : ''}${unread ? ' has-unread' : ''}${muted ? ' is-muted' : ''}`,
    testid: `chat-item-${chat.id}`,
    dataset: { chatId: chat.id, chatType: chat.type, muted: String(muted) },
    'aria-current': active ? 'true' : null,
    onclick: () => openChat(chat.id),
  },
  chatAvatar(chat, { presence: chat.type === 'direct' }),
  h('span', { class: 'chat-item-body' },
    h('span', { class: 'chat-item-row' },
      h('span', { class: 'chat-item-title', testid: 'chat-item-title' }, typeIcon, h('span', null, chatTitle(chat)),
        chat.type === 'direct' ? statusBadge(state.users.get(chat.peer?.id) || chat.peer) : null,
        muted ? h('span', { class: 'muted-icon', testid: 'muted-icon', title: t('chat.muted') }, icon('bell-off')) : null),
      h('span', { class: 'chat-item-time' }, formatShort(store.activityOf(chat)))),
    h('span', { class: 'chat-item-row' },
      h('span', { class: 'chat-item-preview', testid: 'chat-item-preview' }, preview(chat)),
      mentions ? h('span', { class: 'badge badge-mention', testid: 'mention-badge', title: t('sidebar.mentionCount', { count: mentions }) }, '@') : null,
      unread ? h('span', { class: `badge${muted ? ' is-muted' : ''}`, testid: 'unread-badge', title: t('sidebar.unreadCount', { count: unread }) }, unread > 99 ? '99+' : unread) : null)));
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
    h('div', { class: 'section-label' }, t('sidebar.people')),
    people.length ? h('div', { class: 'pick-list' }, people.map(personRow)) : h('div', { class: 'list-empty' }, t('sidebar.noPeople')),
    h('div', { class: 'section-label' }, t('sidebar.channels')),
    results.channels.length ? h('div', { class: 'pick-list' }, results.channels.map(channelRow)) : h('div', { class: 'list-empty' }, t('sidebar.noChannels')),
  );
}

function personRow(user) {
  store.rememberUser(user);
  return h('button', {
    class: 'pick-item', testid: `search-user-${user.id}`,
    onclick: () => {
      // Shows the conversation; the direct chat is created when the first message is sent.
      resetSearch();
      openPerson(user);
    },
  },
  userAvatar(user, { size: 'avatar-sm' }),
  h('span', { class: 'pick-text' },
    h('span', { class: 'pick-title' }, displayName(user)),
    h('span', { class: 'pick-sub' }, `@${user.username}`)),
  h('span', { class: 'btn btn-small', testid: `start-direct-${user.id}` }, t('sidebar.message')));
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
      h('span', { class: 'pick-sub' }, `${t('chat.members', { count: chat.member_count ?? 0 })}${chatDescription(chat) ? ` · ${chatDescription(chat)}` : ''}`)),
    joined
      ? h('button', { class: 'btn btn-small', testid: `open-channel-${chat.id}`, onclick: () => open(false) }, t('sidebar.open'))
      : h('button', { class: 'btn btn-small btn-primary', testid: `join-channel-${chat.id}`, onclick: () => open(true) }, t('sidebar.join')));
}
