// The mentions view: messages that mention me, newest first, across my chats; a click
// opens the chat at the message (loaded with ?around=) and highlights it.

import * as actions from '../actions.js';
import { clear, h } from '../dom.js';
import { displayName, formatShort } from '../format.js';
import { errorText, t } from '../i18n.js';
import { renderMarkdown } from '../markdown.js';
import { state } from '../state.js';
import { chatTitle, userAvatar } from './avatar.js';
import { modal } from './dialogs.js';
import { mentionOptions } from './messages.js';

export function mentionsDialog({ onReveal }) {
  const list = h('div', { class: 'pick-list mention-list', testid: 'mentions-list' },
    h('div', { class: 'list-empty' }, t('common.loading')));
  const more = h('button', { class: 'btn btn-small', testid: 'mentions-more', hidden: true }, t('mentions.more'));
  const dialog = modal({ title: t('mentions.title'), testid: 'mentions-dialog', body: [list, more] });
  let oldest = null;
  const load = async () => {
    more.disabled = true;
    let page;
    try {
      page = await actions.loadMentions(oldest ?? undefined);
    } catch (error) {
      clear(list).append(h('div', { class: 'list-empty' }, errorText(error)));
      return;
    }
    if (oldest == null) clear(list);
    if (oldest == null && !page.length) list.append(h('div', { class: 'list-empty' }, t('mentions.empty')));
    list.append(...page.map((msg) => itemEl(msg, () => { dialog.close(); onReveal(msg.chat_id, msg.seq); })));
    if (page.length) oldest = page[page.length - 1].id;
    more.hidden = page.length < 30;
    more.disabled = false;
  };
  more.addEventListener('click', load);
  load();
}

function itemEl(msg, onClick) {
  const chat = state.chats.get(msg.chat_id);
  return h('button', { class: 'search-hit mention-hit', testid: `mention-hit-${msg.id}`, dataset: { chatId: msg.chat_id, seq: msg.seq }, onclick: onClick },
    h('span', { class: 'search-hit-meta' },
      userAvatar(msg.sender, { size: 'avatar-xs' }),
      h('strong', null, displayName(msg.sender)),
      chat ? h('span', null, t('search.inChat', { chat: chatTitle(chat) })) : null,
      h('span', null, `· ${formatShort(msg.created_at)}`)),
    h('span', { class: 'search-hit-text md' }, renderMarkdown(msg.content || '', mentionOptions(msg))));
}
