// Threads: the thread panel beside the chat (full screen on a phone) with the root, its
// replies and a composer of its own ("also send to chat"), and the Threads view: the
// threads I follow, most recent reply first, with their unread counts.

import * as actions from '../actions.js';
import { $, clear, h, icon } from '../dom.js';
import { displayName, formatAgo, formatFull, formatShort, formatTime } from '../format.js';
import { onLocaleChange, t } from '../i18n.js';
import { renderMarkdown } from '../markdown.js';
import * as store from '../state.js';
import { chatTitle, userAvatar } from './avatar.js';
import { pagedDialog } from './dialogs.js';
import { mentionOptions } from './messages.js';
import { attempt } from './toast.js';

const { state } = store;
let panel;
let list;
let input;
let alsoBox;
let titleEl;

export function mountThreadPanel() {
  mountThreadsBadge();
  panel = $('#thread-panel');
  titleEl = h('span', { class: 'thread-panel-chat', testid: 'thread-panel-chat' });
  const close = h('button', { class: 'icon-btn', testid: 'thread-close', title: t('common.close'), 'aria-label': t('common.close'), onclick: closeThread }, icon('close'));
  list = h('div', { class: 'thread-list', testid: 'thread-list', role: 'log', 'aria-live': 'polite' });
  list.addEventListener('scroll', () => markRead(), { passive: true });
  input = h('textarea', { testid: 'thread-input', rows: 2, maxlength: 4000, placeholder: t('threads.placeholder'), 'aria-label': t('threads.placeholder') });
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) { event.preventDefault(); send(); }
    if (event.key === 'Escape') closeThread();
  });
  alsoBox = h('input', { type: 'checkbox', testid: 'thread-also-in-chat' });
  const send_ = h('button', { class: 'send-btn', testid: 'thread-send', title: t('composer.send'), 'aria-label': t('composer.send'), onclick: send }, icon('send'));
  const heading = h('strong', null, t('threads.title'));
  const alsoLabel = h('span', null, t('threads.alsoInChat'));
  panel.append(
    h('header', { class: 'thread-panel-head' },
      h('span', { class: 'thread-panel-title' }, heading, titleEl), close),
    list,
    h('div', { class: 'thread-composer' },
      h('div', { class: 'composer-row' }, input, send_),
      h('label', { class: 'thread-also' }, alsoBox, alsoLabel)));
  onLocaleChange(() => {
    heading.textContent = t('threads.title');
    alsoLabel.textContent = t('threads.alsoInChat');
    input.placeholder = t('threads.placeholder');
    input.setAttribute('aria-label', t('threads.placeholder'));
    for (const [el, key] of [[close, 'common.close'], [send_, 'composer.send']]) {
      el.title = t(key);
      el.setAttribute('aria-label', t(key));
    }
  });
  store.on('thread', (id) => { if (id === state.openThreadId) render(); });
  store.on('messages', (chatId) => { if (openRoot()?.chat_id === chatId) render(); });
  store.on('active', () => { if (openRoot() && openRoot().chat_id !== state.activeChatId) closeThread(); });
  onLocaleChange(() => { if (state.openThreadId) render(); });
  document.addEventListener('visibilitychange', () => markRead());
}

const openRoot = () => (state.openThreadId ? store.threadOf(state.openThreadId).root : null);

/** Opens the thread of a message: its own, or its root's when it is a reply. */
export async function openThread(msg) {
  const rootId = msg.thread_root_id || msg.id;
  store.setOpenThread(rootId);
  panel.hidden = false;
  $('#layout').dataset.thread = 'open';
  render();
  input.focus();
  await attempt(() => actions.loadThread(rootId));
}

export function closeThread() {
  if (!panel || panel.hidden) return;
  store.setOpenThread(null);
  panel.hidden = true;
  delete $('#layout').dataset.thread;
}

function send() {
  const root = openRoot();
  const content = input.value.trim();
  if (!root || !content) return;
  actions.sendMessage(root.chat_id, content, { threadRootId: root.id, alsoInChat: alsoBox.checked });
  input.value = '';
  alsoBox.checked = false;
}

function render() {
  const rootId = state.openThreadId;
  if (!rootId || !panel) return;
  const thread = store.threadOf(rootId);
  const chat = thread.root ? state.chats.get(thread.root.chat_id) : null;
  titleEl.textContent = chat ? chatTitle(chat) : '';
  const stick = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  if (!thread.root) {
    clear(list).append(h('div', { class: 'list-empty' }, t('common.loading')));
    return;
  }
  const replies = store.repliesOf(rootId);
  const pending = [...store.pendingOf(thread.root.chat_id).values()].filter((p) => p.thread_root_id === rootId);
  const count = thread.root.thread?.reply_count || replies.length;
  clear(list).append(
    replyEl(thread.root, 'thread-root'),
    h('div', { class: 'thread-divider', testid: 'thread-divider' }, t('threads.replies', { count })),
    ...replies.map((m) => replyEl(m, `thread-reply-${m.seq}`)),
    ...pending.map((p) => replyEl({ ...p, sender: state.me }, `thread-pending-${p.client_id}`, true)));
  if (stick || pending.length) list.scrollTop = list.scrollHeight;
  markRead();
}

function replyEl(msg, testid, pending = false) {
  return h('div', { class: `thread-msg${pending ? ' is-pending' : ''}`, testid, dataset: { seq: msg.seq ?? '' } },
    userAvatar(state.users.get(msg.sender?.id) || msg.sender, { size: 'avatar-sm' }),
    h('div', { class: 'thread-msg-main' },
      h('div', { class: 'msg-head' },
        h('span', { class: 'msg-sender' }, displayName(msg.sender)),
        h('time', { class: 'msg-time', datetime: msg.created_at, title: formatFull(msg.created_at) }, formatTime(msg.created_at)),
        msg.also_in_chat ? h('span', { class: 'thread-also-tag' }, t('threads.alsoSent')) : null),
      h('div', { class: 'msg-content md', testid: 'message-content' },
        msg.deleted ? t('messages.deleted') : renderMarkdown(msg.content || '', mentionOptions(msg)))));
}

/** Tells the server I have read the thread once its newest reply is in view. */
function markRead() {
  const rootId = state.openThreadId;
  if (!rootId || panel.hidden || document.visibilityState !== 'visible') return;
  if (list.scrollHeight - list.scrollTop - list.clientHeight > 60) return;
  const replies = store.repliesOf(rootId);
  if (replies.length) actions.markThreadRead(rootId, replies[replies.length - 1].seq);
}

// ---- the Threads view -----------------------------------------------------------------

/** The Threads button's badge: whether a followed thread has unread replies. */
function mountThreadsBadge() {
  const button = $('#threads-button');
  const badge = h('span', { class: 'threads-dot', testid: 'threads-unread', hidden: true });
  button.append(badge);
  store.on('threads_unread', (count) => {
    badge.hidden = !count;
    button.dataset.unread = String(count);
  });
  store.on('incoming', (msg) => { if (msg.thread_root_id) actions.refreshThreadsUnread(); });
  store.on('thread_read', () => actions.refreshThreadsUnread());
  actions.refreshThreadsUnread();
}

export function threadsDialog({ onOpen }) {
  pagedDialog({
    name: 'threads',
    title: t('threads.viewTitle'),
    listClass: 'thread-view-list',
    empty: t('threads.empty'),
    loadPage: (last) => actions.loadThreads(last ?? undefined),
    cursorOf: (entry) => entry.last_reply_at,
    itemEl: (entry, dialog) => threadItem(entry, () => { dialog.close(); onOpen(entry.root); }),
  });
}

function threadItem({ root, unread_count: unread, last_reply_at: last }, onClick) {
  const chat = state.chats.get(root.chat_id);
  return h('button', { class: 'search-hit thread-hit', testid: `thread-hit-${root.id}`, onclick: onClick },
    h('span', { class: 'search-hit-meta' },
      userAvatar(root.sender, { size: 'avatar-xs' }),
      h('strong', null, displayName(root.sender)),
      chat ? h('span', null, t('search.inChat', { chat: chatTitle(chat) })) : null,
      h('span', null, `· ${formatShort(root.created_at)}`),
      unread ? h('span', { class: 'badge', testid: 'thread-unread', title: t('sidebar.unreadCount', { count: unread }) }, unread > 99 ? '99+' : String(unread)) : null),
    h('span', { class: 'search-hit-text md' }, root.deleted ? t('messages.deleted') : renderMarkdown(root.content || '', mentionOptions(root))),
    h('span', { class: 'thread-hit-count' }, `${t('threads.replies', { count: root.thread?.reply_count || 0 })} · ${t('threads.lastReply', { ago: formatAgo(last) })}`));
}
