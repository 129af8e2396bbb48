// Ctrl+K: a quick switcher over my chats and people. Type to filter, ↑/↓ to move,
// Enter (or a click) to open; a person without a direct chat opens a new conversation.

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { displayName } from '../format.js';
import { t } from '../i18n.js';
import * as store from '../state.js';
import { chatAvatar, chatTitle, userAvatar } from './avatar.js';
import { modal } from './dialogs.js';

const { state } = store;
const MAX = 12;

export function quickSwitcher({ onOpen, onOpenPerson }) {
  const input = h('input', {
    class: 'input', type: 'text', testid: 'switcher-input', autocomplete: 'off',
    placeholder: t('switcher.placeholder'), 'aria-label': t('switcher.placeholder'),
    role: 'combobox', 'aria-expanded': 'true', 'aria-controls': 'switcher-list',
  });
  const list = h('div', { class: 'pick-list switcher-list', id: 'switcher-list', role: 'listbox', testid: 'switcher-list' });
  const hint = h('p', { class: 'switcher-hint' }, t('switcher.hint'));
  const dialog = modal({ title: t('switcher.title'), testid: 'switcher-dialog', body: [input, list, hint] });
  let items = [];
  let active = 0;
  let seq = 0;
  let timer = 0;

  const pick = (item) => {
    dialog.close();
    if (item.chat) onOpen(item.chat.id);
    else onOpenPerson(item.user);
  };
  const render = () => {
    list.replaceChildren(...items.map((item, i) => h('div', {
      class: `pick-item switcher-item${i === active ? ' is-active' : ''}`, role: 'option', id: `switcher-${i}`,
      testid: 'switcher-item', 'aria-selected': String(i === active),
      dataset: { kind: item.chat ? 'chat' : 'user', id: item.chat ? item.chat.id : item.user.id },
      onmousedown: (e) => e.preventDefault(),
      onclick: () => pick(item),
    },
    item.chat ? chatAvatar(item.chat, { size: 'avatar-sm' }) : userAvatar(item.user, { size: 'avatar-sm' }),
    h('span', { class: 'pick-text' },
      h('span', { class: 'pick-title' }, item.chat ? chatTitle(item.chat) : displayName(item.user)),
      h('span', { class: 'pick-sub' }, item.chat ? t(`chat.type.${item.chat.type}`) : `@${item.user.username}`)))));
    if (!items.length) list.append(h('div', { class: 'list-empty' }, t('switcher.nothing')));
    input.setAttribute('aria-activedescendant', items.length ? `switcher-${active}` : '');
    list.children[active]?.scrollIntoView({ block: 'nearest' });
  };
  const matches = (text, q) => text.toLowerCase().includes(q);
  const update = () => {
    const q = input.value.trim().toLowerCase();
    const chats = store.sortedChats().filter((c) => !q || matches(chatTitle(c), q)
      || (c.peer && matches(c.peer.username || '', q)));
    items = chats.slice(0, MAX).map((chat) => ({ chat }));
    active = 0;
    render();
    clearTimeout(timer);
    if (!q) return;
    const mine = ++seq;
    timer = setTimeout(async () => {
      const users = await actions.searchUsers(q).catch(() => []);
      if (mine !== seq || !dialog.open) return;
      const known = new Set(items.filter((i) => i.chat?.peer).map((i) => i.chat.peer.id));
      const people = users.filter((u) => u.id !== state.me.id && !known.has(u.id)).map((user) => ({ user }));
      items = [...items, ...people].slice(0, MAX + 8);
      render();
    }, 150);
  };
  input.addEventListener('input', update);
  input.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      if (!items.length) return;
      active = (active + (event.key === 'ArrowDown' ? 1 : -1) + items.length) % items.length;
      render();
    } else if (event.key === 'Enter') {
      event.preventDefault();
      if (items[active]) pick(items[active]);
    }
  });
  update();
  input.focus();
}
