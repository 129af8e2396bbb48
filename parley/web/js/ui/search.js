// Full-text message search (all my chats, or the open one), results open the message.

import * as actions from '../actions.js';
import { clear, h } from '../dom.js';
import { displayName, formatShort } from '../format.js';
import { errorText, t } from '../i18n.js';
import { plainText } from '../markdown.js';
import { state } from '../state.js';
import { chatTitle } from './avatar.js';
import { modal } from './dialogs.js';

export function searchDialog({ chatId = null, onReveal }) {
  const input = h('input', { class: 'input', type: 'search', placeholder: t('search.placeholder'), 'aria-label': t('search.placeholder'), testid: 'message-search-input', autocomplete: 'off' });
  const results = h('div', { class: 'pick-list', testid: 'message-search-results' });
  const hint = h('div', { class: 'search-hint', testid: 'message-search-hint' }, t('search.operators'));
  const suggestions = h('div', { class: 'pick-list search-suggest', role: 'listbox', testid: 'message-search-suggestions', hidden: true });
  const scope = chatId != null ? state.chats.get(chatId) : null;
  const dialog = modal({
    title: scope ? t('search.titleIn', { chat: chatTitle(scope) }) : t('search.title'),
    testid: 'message-search-dialog',
    body: [input, hint, suggestions, results],
  });
  let timer = 0;
  let seq = 0;
  const run = async () => {
    const q = input.value.trim();
    const mine = ++seq;
    if (!q) return clear(results);
    let hits;
    try {
      hits = await actions.searchMessages(q, chatId ?? undefined);
    } catch (error) {
      hits = error;
    }
    if (mine !== seq) return undefined;
    if (!Array.isArray(hits)) return clear(results).append(h('div', { class: 'list-empty' }, errorText(hits)));
    clear(results).append(...(hits.length ? hits.map((m) => hitEl(m, q, () => { dialog.close(); onReveal(m.chat_id, m.seq); }))
      : [h('div', { class: 'list-empty' }, t('search.nothing'))]));
    return undefined;
  };
  const pick = (token) => {
    input.value = `${input.value.replace(/\S*$/, '')}${token} `;
    suggestions.hidden = true;
    input.focus();
    clearTimeout(timer);
    run();
  };
  input.addEventListener('input', () => {
    suggest(suggestions, input.value, pick);
    clearTimeout(timer);
    timer = setTimeout(run, 250);
  });
  input.focus();
}

function hitEl(msg, q, onClick) {
  const chat = state.chats.get(msg.chat_id);
  return h('button', { class: 'search-hit', testid: `search-hit-${msg.id}`, onclick: onClick },
    h('span', { class: 'search-hit-meta' },
      h('strong', null, displayName(msg.sender)),
      chat ? h('span', null, t('search.inChat', { chat: chatTitle(chat) })) : null,
      h('span', null, `· ${formatShort(msg.created_at)}`)),
    h('span', { class: 'search-hit-text' }, highlight(plainText(msg.content || ''), q)));
}

/** The content with the query's words wrapped in <mark> (built as nodes, never HTML). */
function highlight(text, q) {
  const words = q.replace(/"/g, ' ').split(/\s+/).filter((w) => w.length > 1 && !/^-|^[a-z]+:/i.test(w)).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  if (!words.length) return [text];
  const re = new RegExp(`(${words.join('|')})`, 'gi');
  return text.split(re).map((part, i) => (i % 2 ? h('mark', null, part) : part));
}

// ---- operators: `in:` and `from:` complete to a chat id and a username ---------------------

const MAX_SUGGESTIONS = 8;

function suggest(box, value, pick) {
  const match = /(^|\s)(in|from):(\S*)$/i.exec(value);
  const options = match ? candidates(match[2].toLowerCase(), match[3].replace(/^[@#]/, '').toLowerCase()) : [];
  clear(box).append(...options.map(([token, label], i) => h('button', {
    class: 'pick-item search-suggestion', type: 'button', role: 'option', testid: `search-suggestion-${i}`,
    onclick: () => pick(token),
  }, h('span', { class: 'pick-text' }, h('strong', null, label), h('span', { class: 'msg-file-size' }, token)))));
  box.hidden = !options.length;
}

function candidates(operator, typed) {
  if (operator === 'in') {
    return [...state.chats.values()]
      .filter((chat) => chatTitle(chat).toLowerCase().includes(typed) || String(chat.id).startsWith(typed))
      .slice(0, MAX_SUGGESTIONS)
      .map((chat) => [`in:${chat.id}`, chatTitle(chat)]);
  }
  const people = new Map();
  for (const user of [state.me, ...state.users.values()]) if (user?.username) people.set(user.id, user);
  return [...people.values()]
    .filter((user) => user.username.toLowerCase().startsWith(typed) || displayName(user).toLowerCase().includes(typed))
    .slice(0, MAX_SUGGESTIONS)
    .map((user) => [`from:${user.username}`, displayName(user)]);
}
