// Notices (a member joined, the chat was renamed, a message was pinned…): one quiet
// centred line each, and a run of consecutive notices collapsed into one expandable line.

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { displayName } from '../format.js';
import { t } from '../i18n.js';
import * as store from '../state.js';

const { state } = store;
const asked = new Set(); // user ids whose names were fetched once

function nameOf(id, chatId, known = null) {
  if (state.me && id === state.me.id) return displayName(state.me);
  const user = state.users.get(id) || known;
  if (user && (user.display_name || user.username)) return displayName(user);
  if (id != null && !asked.has(id)) {
    asked.add(id);
    actions.loadUser(id).then(() => store.emit('messages', chatId)).catch(() => {});
  }
  return `#${id}`;
}

/** "Alice added Bob", in the reader's language. */
export function noticeText(msg) {
  const notice = msg.notice || {};
  const actor = nameOf(msg.sender?.id ?? notice.actor_id, msg.chat_id, msg.sender);
  const users = (notice.user_ids || []).map((id) => nameOf(id, msg.chat_id)).join(', ');
  return t(`notice.${notice.action}`, { actor, users, title: notice.title || '' });
}

/** The line of a run of notices: the first one, "and N more changes" when collapsed. */
export function noticeRunEl(run, { expanded, onToggle, onOpen }) {
  const line = (msg) => h('div', { class: 'notice-line', testid: `notice-${msg.seq}`, dataset: { seq: msg.seq, action: msg.notice?.action } },
    msg.notice?.action === 'pinned' && msg.reply_to
      ? h('button', { class: 'notice-link', onclick: () => onOpen(msg.reply_to) }, noticeText(msg))
      : h('span', null, noticeText(msg)));
  const el = h('div', { class: 'notice', role: 'note', testid: 'notice', dataset: { seq: run[0].seq } });
  if (run.length === 1 || expanded) {
    el.append(...run.map(line));
    if (run.length > 1) el.append(h('button', { class: 'notice-toggle', testid: 'notice-collapse', onclick: onToggle }, t('notice.collapse')));
    return el;
  }
  el.append(h('div', { class: 'notice-line', testid: `notice-${run[0].seq}`, dataset: { seq: run[0].seq, action: run[0].notice?.action } },
    h('span', null, t('notice.more', { first: noticeText(run[0]), count: run.length - 1 })),
    ' ',
    h('button', { class: 'notice-toggle', testid: 'notice-expand', 'aria-expanded': 'false', onclick: onToggle }, t('notice.expand'))));
  return el;
}
