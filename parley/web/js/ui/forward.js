// The Forward dialog: pick up to 10 chats, add an optional comment, send a copy to each.

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { errorText, t } from '../i18n.js';
import * as store from '../state.js';
import { chatTitle } from './avatar.js';
import { modal } from './dialogs.js';
import { toast } from './toast.js';

const MAX_TARGETS = 10;

export function forwardDialog(msg) {
  const chosen = new Set();
  const chats = store.sortedChats().filter((c) => !c.virtual && actions.isMember(c));
  const filter = h('input', { type: 'search', class: 'input', testid: 'forward-filter', placeholder: t('forward.filter'), 'aria-label': t('forward.filter') });
  const list = h('div', { class: 'forward-list', testid: 'forward-chats', role: 'group', 'aria-label': t('forward.chats') });
  const counter = h('div', { class: 'forward-count', testid: 'forward-count', 'aria-live': 'polite' });
  const comment = h('textarea', { class: 'input', rows: 2, maxlength: 4000, testid: 'forward-comment', placeholder: t('forward.comment'), 'aria-label': t('forward.comment') });
  const send = h('button', { class: 'btn btn-primary', testid: 'forward-send', disabled: true }, t('forward.send'));
  const rows = chats.map((chat) => {
    const box = h('input', { type: 'checkbox', testid: `forward-chat-${chat.id}`, value: String(chat.id) });
    box.addEventListener('change', () => {
      if (box.checked) chosen.add(chat.id); else chosen.delete(chat.id);
      update();
    });
    return { chat, box, el: h('label', { class: 'forward-row' }, box, h('span', null, chatTitle(chat))) };
  });
  function update() {
    for (const { chat, box } of rows) box.disabled = !chosen.has(chat.id) && chosen.size >= MAX_TARGETS;
    counter.textContent = t('forward.chosen', { count: chosen.size, max: MAX_TARGETS });
    send.disabled = chosen.size === 0;
  }
  filter.addEventListener('input', () => {
    const q = filter.value.trim().toLowerCase();
    for (const { chat, el } of rows) el.hidden = Boolean(q) && !chatTitle(chat).toLowerCase().includes(q);
  });
  list.append(...rows.map((r) => r.el));
  const dialog = modal({
    title: t('forward.title'), testid: 'forward-dialog',
    body: [filter, list, counter, comment],
    footer: [h('button', { class: 'btn', testid: 'forward-cancel', onclick: () => dialog.close() }, t('common.cancel')), send],
  });
  send.addEventListener('click', async () => {
    send.disabled = true;
    try {
      await actions.forwardMessage(msg, [...chosen], comment.value);
      dialog.close();
      toast(t('forward.done', { count: chosen.size }));
    } catch (error) {
      toast(errorText(error), { error: true });
      send.disabled = false;
    }
  });
  update();
  filter.focus();
  return dialog;
}
