// The pinned bar under the chat header: the latest pin; a click jumps to it and moves on
// to the next older one, round and round.

import * as actions from '../actions.js';
import { h, icon } from '../dom.js';
import { displayName } from '../format.js';
import { onLocaleChange, t } from '../i18n.js';
import * as store from '../state.js';

const { state } = store;
let bar;
let reveal;
let index = 0;
let shownChat = null;

export function mountPinBar({ onReveal }) {
  bar = document.getElementById('pin-bar');
  reveal = onReveal;
  store.on('active', (chatId) => {
    if (chatId !== shownChat) index = 0;
    shownChat = chatId;
    if (chatId != null && !state.chats.get(chatId)?.virtual && !state.pins.has(chatId)) {
      actions.loadPins(chatId).catch(() => {});
    }
    render();
  });
  store.on('pins', (chatId) => { if (chatId === state.activeChatId) render(); });
  onLocaleChange(render);
}

function snippet(msg) {
  if (msg.content) return msg.content.replace(/\s+/g, ' ').slice(0, 120);
  if (msg.attachments?.length) return `📎 ${msg.attachments[0].filename}`;
  return '';
}

function render() {
  if (!bar) return;
  const pins = state.pins.get(state.activeChatId) || [];
  bar.hidden = !pins.length;
  bar.replaceChildren();
  if (!pins.length) return;
  if (index >= pins.length) index = 0;
  const msg = pins[index];
  const label = pins.length > 1 ? t('pins.numbered', { n: index + 1, count: pins.length }) : t('pins.title');
  bar.append(h('button', {
    class: 'pin-bar-main', testid: 'pin-bar-button', title: t('pins.jump'),
    dataset: { messageId: msg.id, index },
    onclick: () => {
      reveal(msg.chat_id, msg.seq);
      index = (index + 1) % pins.length;
      render();
    },
  },
  icon('pin'),
  h('span', { class: 'pin-bar-text' },
    h('span', { class: 'pin-bar-label', testid: 'pin-bar-label' }, label),
    h('span', { class: 'pin-bar-snippet', testid: 'pin-bar-snippet' },
      msg.sender ? h('b', null, `${displayName(msg.sender)}: `) : null, snippet(msg)))));
}
