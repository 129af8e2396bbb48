// @-autocompletion in the composer: typing "@" (at the start or after a space) lists the
// chat's members; ↑/↓ move, Enter or Tab insert "@username ", Escape closes, a click picks.

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { displayName } from '../format.js';
import { t } from '../i18n.js';
import { state } from '../state.js';
import { userAvatar } from './avatar.js';
import { completionList } from './completion.js';

const MAX = 8;
const CACHE_MS = 60000;
const members = new Map(); // chat id → {at, users}

async function membersOf(chat) {
  if (chat.type === 'direct') return [chat.peer, state.me].filter(Boolean);
  const cached = members.get(chat.id);
  if (cached && Date.now() - cached.at < CACHE_MS) return cached.users;
  const list = await actions.listMembers(chat.id);
  const users = list.map((m) => m.user);
  members.set(chat.id, { at: Date.now(), users });
  return users;
}

/** The "@word" just before the caret, or null. */
function tokenAt(input) {
  const upto = input.value.slice(0, input.selectionStart);
  const m = upto.match(/(^|\s)@([\p{L}\p{N}_.-]*)$/u);
  if (!m) return null;
  return { start: upto.length - m[2].length - 1, query: m[2].toLowerCase() };
}

export function mountMentionBox(input, box) {
  let token = null;
  const list = completionList(input, box, {
    option: (user, i) => [{ id: `mention-option-${i}`, testid: `mention-option-${user.username}` },
      user.id === 'all' ? h('span', { class: 'avatar avatar-xs mention-all' }, '@') : userAvatar(user, { size: 'avatar-xs' }),
      h('span', { class: 'mention-name' }, displayName(user)),
      h('span', { class: 'mention-username' }, user.id === 'all' ? t('composer.mentionAll') : `@${user.username}`)],
    insert: (user) => {
      if (!token) return false;
      const before = input.value.slice(0, token.start);
      const after = input.value.slice(input.selectionStart);
      const insert = `@${user.username} `;
      input.value = before + insert + after.replace(/^\s+/, '');
      const caret = before.length + insert.length;
      input.setSelectionRange(caret, caret);
      return true;
    },
    onRender: (items, active) => {
      if (items.length) input.setAttribute('aria-activedescendant', `mention-option-${active}`);
    },
    onClose: () => {
      token = null;
      input.removeAttribute('aria-activedescendant');
    },
  });

  const update = () => {
    token = tokenAt(input);
    const chat = state.chats.get(state.activeChatId);
    if (!token || !chat || chat.virtual) return list.close();
    return list.showLatest(async () => {
      const users = await membersOf(chat);
      if (!token) return null; // closed meanwhile
      const q = token.query;
      const hit = (u) => u.username.toLowerCase().startsWith(q)
        || displayName(u).toLowerCase().split(/\s+/).some((w) => w.startsWith(q));
      const items = users.filter((u) => u.id !== state.me.id && hit(u)).slice(0, MAX);
      if (chat.type !== 'direct' && ['owner', 'admin'].includes(chat.my_role) && 'all'.startsWith(q)) {
        items.push({ id: 'all', username: 'all', display_name: '@all' });
      }
      return items;
    });
  };

  input.addEventListener('click', () => update());
  return { update, close: list.close, handleKey: list.handleKey };
}
