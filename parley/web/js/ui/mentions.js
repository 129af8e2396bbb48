// The mentions view: messages that mention me, newest first, across my chats; a click
// opens the chat at the message (loaded with ?around=) and highlights it.

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { displayName, formatShort } from '../format.js';
import { t } from '../i18n.js';
import { renderMarkdown } from '../markdown.js';
import { state } from '../state.js';
import { chatTitle, userAvatar } from './avatar.js';
import { pagedDialog } from './dialogs.js';
import { mentionOptions } from './messages.js';

export function mentionsDialog({ onReveal }) {
  pagedDialog({
    name: 'mentions',
    title: t('mentions.title'),
    listClass: 'mention-list',
    empty: t('mentions.empty'),
    loadPage: (oldest) => actions.loadMentions(oldest ?? undefined),
    cursorOf: (msg) => msg.id,
    itemEl: (msg, dialog) => itemEl(msg, () => { dialog.close(); onReveal(msg.chat_id, msg.seq); }),
  });
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
