// The message list of the open chat: keyed rendering (an element is rebuilt only when its
// message changes), paging back on scroll, sticking to the bottom, marking read.

import * as actions from '../actions.js';
import { h, icon } from '../dom.js';
import { dayKey, displayName, formatAgo, formatDay, formatFull, formatSize, formatTime, isImage } from '../format.js';
import { errorText, onLocaleChange, t } from '../i18n.js';
import { renderMarkdown } from '../markdown.js';
import * as store from '../state.js';
import { mountMessageKeys } from './a11y.js';
import { statusBadge, userAvatar } from './avatar.js';
import { seenBy } from './mind.js';
import { openEmojiPicker } from './emoji.js';
import { attempt, toast } from './toast.js';
import { forwardDialog } from './forward.js';
import { popupMenu } from './menu.js';
import { noticeRunEl } from './notices.js';
import { previewEl } from './preview.js';
import { openViewer } from './viewer.js';

const { state } = store;
const QUICK_EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢'];
const GROUP_MS = 5 * 60 * 1000;

const cache = new Map(); // key → {version, el}
let list;
let statusEl;
let jumpButton;
let callbacks;
let stickToBottom = true;
let shownChat = null;
let frame = 0;
let jumpCount;
// The "new messages" divider goes after this seq (what was read when the chat opened).
let dividerAfter = null;
let positioned = false; // scrolled to the divider or a revealed message already
const expandedRuns = new Set(); // first seqs of runs of notices shown in full

export function mountMessages(cb) {
  callbacks = cb;
  list = document.getElementById('message-list');
  jumpButton = document.getElementById('jump-bottom');
  jumpCount = document.getElementById('jump-count');
  statusEl = h('div', { class: 'history-status', testid: 'history-status' });
  list.append(statusEl);
  list.addEventListener('scroll', onScroll, { passive: true });
  mountMessageKeys(list);
  jumpButton.addEventListener('click', jumpToLatest);
  window.addEventListener('focus', () => maybeMarkRead());
  document.addEventListener('visibilitychange', () => maybeMarkRead());
  document.addEventListener('click', (event) => {
    if (!event.target.closest('.emoji-picker, [data-action="react"]')) closePickers();
  });
  const schedule = (chatId) => {
    if (chatId === undefined || chatId === state.activeChatId) requestRender();
  };
  store.on('messages', schedule);
  store.on('history', schedule);
  store.on('active', () => requestRender());
  store.on('connection', relabelPending);
  store.on('chats', () => updateJump());
  onLocaleChange(() => { cache.clear(); requestRender(); });
}

/** Options for renderMarkdown: which @names are me (`@all` when it mentions me). */
export function mentionOptions(msg) {
  const mentioned = store.mentionsMe(msg);
  return {
    isMe: (name) => (state.me && name.toLowerCase() === String(state.me.username).toLowerCase()) || (name === 'all' && mentioned),
  };
}

function requestRender() {
  if (!frame) frame = requestAnimationFrame(() => { frame = 0; render(); });
}

// ---- rendering ------------------------------------------------------------------------

function render() {
  const chatId = state.activeChatId;
  if (chatId !== shownChat) {
    shownChat = chatId;
    cache.clear();
    expandedRuns.clear();
    stickToBottom = true;
    positioned = false;
    const chat = state.chats.get(chatId);
    dividerAfter = chat && chat.unread_count > 0 ? chat.read_seq || 0 : null;
    // presence of mind: others' read markers, for "Seen by" under my latest message
    if (chatId != null && chatId > 0) actions.loadReadMarkers(chatId).catch(() => {});
  }
  if (chatId == null) return;
  const anchor = stickToBottom ? null : firstVisible();
  const anchorTop = anchor ? anchor.getBoundingClientRect().top : 0;
  reconcile(buildItems(chatId));
  renderStatus(chatId);
  if (stickToBottom) scrollToBottom();
  else if (anchor && anchor.isConnected) list.scrollTop += anchor.getBoundingClientRect().top - anchorTop;
  positionAtDivider();
  updateJump();
  afterLayout(chatId);
}

function buildItems(chatId) {
  const hist = store.historyOf(chatId);
  // The main timeline: thread replies show in their thread (and here only when also_in_chat).
  const messages = [...hist.bySeq.values()].filter((m) => !store.isThreadOnly(m)).sort((a, b) => a.seq - b.seq);
  const pending = [...store.pendingOf(chatId).values()].filter((m) => !store.isThreadOnly(m));
  const items = [];
  let prev = null;
  // Only where the last read message is loaded too (else the divider would be a guess).
  let divider = dividerAfter != null && messages.length && messages[0].seq <= dividerAfter + 1;
  let run = [];
  for (const msg of [...messages, ...pending]) {
    if (msg.kind === 'notice') {
      if (!run.length && (!prev || dayKey(prev.created_at) !== dayKey(msg.created_at))) {
        items.push({ key: `d:${dayKey(msg.created_at)}`, version: formatDay(msg.created_at), build: () => daySeparator(msg.created_at) });
      }
      run.push(msg);
      prev = msg;
      continue;
    }
    if (run.length) { items.push(noticeItem(run)); run = []; }
    const day = dayKey(msg.created_at);
    if (!prev || dayKey(prev.created_at) !== day) {
      items.push({ key: `d:${day}`, version: formatDay(msg.created_at), build: () => daySeparator(msg.created_at) });
    }
    let startsGroup = false;
    if (divider && msg.seq > dividerAfter && msg.sender && msg.sender.id !== state.me.id && msg.kind !== 'notice') {
      divider = false;
      startsGroup = true; // the first unread message shows its sender
      items.push({ key: 'new', version: t('messages.newDivider'), build: () => h('div', { class: 'new-divider', testid: 'new-messages-divider', role: 'separator' }, h('span', null, t('messages.newDivider'))) });
    }
    const grouped = !startsGroup && isGrouped(prev, msg);
    if (msg.seq != null) items.push(messageItem(msg, grouped));
    else items.push(pendingItem(msg, grouped));
    prev = msg;
  }
  if (run.length) items.push(noticeItem(run));
  const mine = messages.filter((m) => m.sender?.id === state.me?.id && !m.deleted).at(-1);
  const seen = mine && seenBy(chatId, mine);
  if (seen) items.splice(items.findIndex((item) => item.key === `m:${mine.seq}`) + 1, 0, seen);
  return items;
}

function noticeItem(run) {
  const first = run[0].seq;
  const expanded = expandedRuns.has(first);
  const names = run.flatMap((m) => [m.sender?.id, ...(m.notice?.user_ids || [])]).map((id) => state.users.get(id)?.display_name);
  const version = JSON.stringify([run.map((m) => [m.seq, m.notice]), expanded, names]);
  const onToggle = () => {
    if (expandedRuns.has(first)) expandedRuns.delete(first); else expandedRuns.add(first);
    requestRender();
  };
  const onOpen = (messageId) => openMessageById(messageId);
  return { key: `n:${first}`, version, build: () => noticeRunEl(run, { expanded, onToggle, onOpen }) };
}

async function openMessageById(messageId) {
  const known = state.byId.get(messageId);
  const msg = known || await actions.fetchMessage(messageId).catch(() => null);
  if (msg) revealMessage(msg.chat_id, msg.seq);
}

function isGrouped(prev, msg) {
  if (!prev || msg.reply_to || prev.deleted || prev.kind === 'notice' || msg.forwarded_from || msg.pinned_at) return false;
  const prevSender = prev.sender ? prev.sender.id : state.me.id;
  const sender = msg.sender ? msg.sender.id : state.me.id;
  if (prevSender !== sender || dayKey(prev.created_at) !== dayKey(msg.created_at)) return false;
  return new Date(msg.created_at) - new Date(prev.created_at) < GROUP_MS;
}

function messageItem(msg, grouped) {
  const quoted = msg.reply_to ? state.byId.get(msg.reply_to) : null;
  const version = JSON.stringify([msg.content, msg.edited_at, msg.deleted, msg.reactions, grouped, msg.mentions,
    quoted ? [quoted.content, quoted.deleted] : null, msg.attachments?.length, msg.preview,
    msg.pinned_at, msg.forwarded_from,
    state.users.get(msg.sender.id)?.avatar_url, state.users.get(msg.sender.id)?.status, receiptOf(msg), msg.thread, msg.thread_root_id, msg.thread ? threadMinute() : 0]);
  return { key: `m:${msg.seq}`, version, build: () => messageEl(msg, grouped, quoted) };
}

function pendingItem(item, grouped) {
  const version = JSON.stringify([item.status, item.error, grouped]);
  return { key: `p:${item.client_id}`, version, build: () => pendingEl(item, grouped) };
}

function reconcile(items) {
  const keys = new Set();
  const els = items.map((item) => {
    keys.add(item.key);
    let entry = cache.get(item.key);
    if (!entry || entry.version !== item.version) {
      const el = item.build();
      if (entry) entry.el.replaceWith(el);
      entry = { version: item.version, el };
      cache.set(item.key, entry);
    }
    return entry.el;
  });
  for (const key of [...cache.keys()]) if (!keys.has(key)) cache.delete(key);
  let ref = statusEl.nextSibling;
  for (const el of els) {
    if (el === ref) ref = ref.nextSibling;
    else list.insertBefore(el, ref);
  }
  while (ref) {
    const next = ref.nextSibling;
    ref.remove();
    ref = next;
  }
}

function renderStatus(chatId) {
  const hist = store.historyOf(chatId);
  let text = '';
  if (hist.loading) text = t('common.loading');
  else if (hist.loaded && !hist.hasMore) text = hist.bySeq.size ? t('messages.beginning') : t('messages.empty');
  statusEl.textContent = text;
}

function daySeparator(iso) {
  return h('div', { class: 'day-sep', role: 'separator' }, formatDay(iso));
}

// ---- one message ---------------------------------------------------------------------------

function messageEl(msg, grouped, quoted) {
  const mine = msg.sender.id === state.me.id;
  const mentioned = !mine && !msg.deleted && store.mentionsMe(msg);
  const el = h('div', {
    class: `msg${grouped ? ' is-grouped' : ''}${msg.deleted ? ' is-deleted' : ''}${mine ? ' is-mine' : ''}${mentioned ? ' is-mention' : ''}`,
    testid: `message-${msg.seq}`, tabindex: -1,
    dataset: { seq: msg.seq, messageId: msg.id, senderId: msg.sender.id },
  },
  h('div', { class: 'msg-gutter' },
    userAvatar(state.users.get(msg.sender.id) || msg.sender),
    h('div', { class: 'msg-gutter-time', title: formatFull(msg.created_at) }, formatTime(msg.created_at))),
  h('div', { class: 'msg-head' },
    h('span', { class: 'msg-sender', testid: 'message-sender' }, displayName(msg.sender)),
    statusBadge(state.users.get(msg.sender.id)),
    h('time', { class: 'msg-time', datetime: msg.created_at, title: formatFull(msg.created_at), testid: 'message-time' }, formatTime(msg.created_at)),
    msg.pinned_at && !msg.deleted ? h('span', { class: 'msg-pinned', testid: 'message-pinned', title: t('pins.pinned') }, icon('pin')) : null),
  h('div', { class: 'msg-body' },
    msg.forwarded_from && !msg.deleted ? forwardedEl(msg.forwarded_from) : null,
    msg.reply_to ? quoteEl(msg.reply_to, quoted) : null,
    contentEl(msg),
    msg.deleted ? null : attachmentsEl(msg.attachments || []),
    msg.deleted ? null : previewEl(msg, mine),
    msg.deleted ? null : reactionsEl(msg),
    msg.thread_root_id ? threadOriginEl(msg) : threadSummaryEl(msg, callbacks.onThread),
    receiptEl(msg)));
  if (!msg.deleted) el.append(actionsEl(msg, mine));
  return el;
}

/** In a direct chat, my message's receipt: "sent" (✓) once stored, "seen" (✓✓) once the
 * peer's read marker passed it (a peer who shares no read receipts leaves it at ✓). */
export function receiptOf(msg) {
  const chat = state.chats.get(msg.chat_id);
  if (!chat || chat.type !== 'direct' || !chat.peer || msg.deleted || msg.kind === 'notice') return null;
  if (!state.me || msg.sender?.id !== state.me.id) return null;
  const peerSeq = state.readMarkers.get(msg.chat_id)?.get(chat.peer.id);
  return peerSeq != null && peerSeq >= msg.seq ? 'seen' : 'sent';
}

function receiptEl(msg) {
  const receipt = receiptOf(msg);
  if (!receipt) return null;
  const label = t(receipt === 'seen' ? 'mind.receipt.seen' : 'mind.receipt.sent');
  return h('span', { class: `msg-receipt is-${receipt}`, testid: 'message-receipt', dataset: { receipt }, role: 'img', title: label, 'aria-label': label },
    receipt === 'seen' ? '✓✓' : '✓');
}

// The summaries' "5 min ago" is rebuilt once a minute (a new version of the element).
const threadMinute = () => Math.floor(Date.now() / 60000);

/** Under a root with replies: up to 5 repliers' avatars, "3 replies · last reply 5 min ago". */
export function threadSummaryEl(msg, onOpen) {
  if (!msg.thread || !onOpen) return null;
  const { reply_count: count, last_reply_at: last, participant_ids: ids } = msg.thread;
  return h('button', { class: 'thread-summary', testid: 'thread-summary', onclick: () => onOpen(msg) },
    h('span', { class: 'thread-avatars' }, ids.slice(0, 5).map((id) => userAvatar(state.users.get(id) || { id, display_name: `#${id}` }, { size: 'avatar-xs' }))),
    h('span', { class: 'thread-count', testid: 'thread-reply-count' }, t('threads.replies', { count })),
    h('span', { class: 'thread-last' }, `· ${t('threads.lastReply', { ago: formatAgo(last) })}`));
}

/** On a reply also sent to the chat: which thread it answers. */
function threadOriginEl(msg) {
  return h('button', { class: 'thread-origin', testid: 'thread-origin', onclick: () => callbacks.onThread({ id: msg.thread_root_id, chat_id: msg.chat_id }) }, t('threads.repliedInThread'));
}

function contentEl(msg) {
  if (msg.deleted) return h('div', { class: 'msg-content', testid: 'message-content' }, h('span', { testid: 'message-deleted' }, t('messages.deleted')));
  const blocks = renderMarkdown(msg.content || '', mentionOptions(msg));
  const edited = msg.edited_at ? h('span', { class: 'msg-edited', testid: 'message-edited', title: t('messages.editedAt', { time: formatFull(msg.edited_at) }) }, t('messages.edited')) : null;
  // "(edited)" sits at the end of the last paragraph, not on a line of its own.
  const last = blocks[blocks.length - 1];
  if (edited && last && last.tagName === 'P') last.append(' ', edited);
  else if (edited) blocks.push(edited);
  return h('div', { class: 'msg-content md', testid: 'message-content' }, blocks);
}

function forwardedEl(from) {
  const name = from.sender ? displayName(from.sender) : t('messages.unknownSender');
  const text = t('messages.forwardedFrom', { name });
  if (from.chat_id == null) return h('div', { class: 'msg-forwarded', testid: 'message-forwarded' }, text);
  return h('a', { class: 'msg-forwarded', testid: 'message-forwarded', href: `/chat?chat=${from.chat_id}&message=${from.message_id}` }, text);
}

function quoteEl(replyId, quoted) {
  if (!quoted) {
    actions.fetchMessage(replyId).catch(() => {});
    return h('div', { class: 'msg-quote', testid: 'message-reply-quote' }, t('messages.loadingReply'));
  }
  const text = quoted.deleted ? t('messages.deletedShort') : quoted.content || (quoted.attachments?.length ? `📎 ${quoted.attachments[0].filename}` : '');
  return h('button', { class: 'msg-quote', testid: 'message-reply-quote', onclick: () => revealMessage(quoted.chat_id, quoted.seq) },
    h('span', { class: 'msg-quote-sender' }, displayName(quoted.sender)),
    h('span', { class: 'msg-quote-text' }, text));
}

function attachmentsEl(attachments) {
  if (!attachments.length) return null;
  const images = attachments.filter(isImage);
  return h('div', { class: 'msg-attachments' }, attachments.map((att) => {
    if (isImage(att)) {
      const img = h('img', { src: att.url, alt: att.filename, loading: 'lazy' });
      img.addEventListener('load', () => { if (stickToBottom) scrollToBottom(); });
      const view = (event) => { event.preventDefault(); openViewer(images, images.indexOf(att)); };
      return h('a', { class: 'msg-image', href: att.url, target: '_blank', rel: 'noopener', title: att.filename, testid: `attachment-${att.id}`, onclick: view }, img);
    }
    return h('a', { class: 'msg-file', href: att.url, download: att.filename, testid: `attachment-${att.id}` },
      icon('file'),
      h('span', { class: 'pick-text' },
        h('span', { class: 'msg-file-name' }, att.filename),
        h('span', { class: 'msg-file-size' }, formatSize(att.size || 0))));
  }));
}

function reactionsEl(msg) {
  if (!msg.reactions?.length) return null;
  return h('div', { class: 'reactions' }, msg.reactions.map((r) => {
    const mine = r.user_ids.includes(state.me.id);
    const names = r.user_ids.map((id) => displayName(state.users.get(id)) || `#${id}`).join(', ');
    return h('button', {
      class: `reaction${mine ? ' is-mine' : ''}`, testid: `reaction-${r.emoji}`, title: names,
      'aria-pressed': String(mine), onclick: () => attempt(() => actions.toggleReaction(msg, r.emoji)),
    }, h('span', null, r.emoji), h('span', { class: 'reaction-count' }, r.count));
  }));
}

function actionsEl(msg, mine) {
  const chat = state.chats.get(msg.chat_id);
  const moderator = chat && ['owner', 'admin'].includes(chat.my_role);
  const button = (name, title, testid, onclick, cls = '') => {
    const b = h('button', { class: `icon-btn ${cls}`.trim(), title, 'aria-label': title, testid, onclick, dataset: { action: name } });
    b.append(icon(name === 'react' ? 'smile' : name === 'delete' ? 'trash' : name));
    return b;
  };
  return h('div', { class: 'msg-actions', testid: 'message-actions' },
    button('react', t('messages.react'), 'message-react', (e) => togglePicker(e, msg)),
    button('reply', t('messages.reply'), 'message-reply', () => callbacks.onReply(msg)),
    callbacks.onThread ? button('thread', t('threads.replyInThread'), 'message-thread', () => callbacks.onThread(msg)) : null,
    mine ? button('edit', t('messages.edit'), 'message-edit', () => callbacks.onEdit(msg)) : null,
    mine || moderator ? button('delete', t('common.delete'), 'message-delete', () => callbacks.onDelete(msg), 'danger') : null,
    mine || !callbacks.onReport ? null : button('flag', t('report.action'), 'message-report', () => callbacks.onReport(msg)),
    button('more', t('messages.more'), 'message-more', (e) => moreMenu(e.currentTarget, msg, chat, moderator)));
}

/** Pin, Forward, Copy link, Mark as unread. */
function moreMenu(anchor, msg, chat, moderator) {
  const member = chat && actions.isMember(chat);
  const mayPin = member && (chat.type !== 'channel' || moderator);
  const items = [];
  if (mayPin) {
    items.push({
      label: msg.pinned_at ? t('pins.unpin') : t('pins.pin'), icon: 'pin', testid: 'message-pin',
      onSelect: () => attempt(() => actions.togglePin(msg)),
    });
  }
  items.push(
    { label: t('forward.action'), icon: 'forward', testid: 'message-forward', onSelect: () => forwardDialog(msg) },
    { label: t('messages.copyLink'), icon: 'link', testid: 'message-copy-link', onSelect: () => copyLink(msg) },
  );
  if (member) {
    items.push({
      label: t('messages.markUnread'), icon: 'unread', testid: 'message-mark-unread',
      onSelect: () => attempt(() => actions.markUnread(msg)),
    });
  }
  const el = anchor.closest('.msg');
  el?.classList.add('is-menu-open');
  popupMenu(anchor, items, { testid: 'message-menu', label: t('messages.more') });
  const menu = document.querySelector('[data-testid="message-menu"]');
  const watch = new MutationObserver(() => {
    if (!menu?.isConnected) { el?.classList.remove('is-menu-open'); watch.disconnect(); }
  });
  watch.observe(document.body, { childList: true });
}

async function copyLink(msg) {
  const link = actions.messageLink(msg);
  try {
    await navigator.clipboard.writeText(link);
    toast(t('messages.linkCopied'));
  } catch {
    window.prompt(t('messages.copyLink'), link); // no clipboard (insecure origin): shown to copy
  }
}

function togglePicker(event, msg) {
  const el = event.currentTarget.closest('.msg');
  const open = el.querySelector('.emoji-picker');
  closePickers();
  if (open) return;
  el.classList.add('is-menu-open');
  const react = (emoji) => attempt(() => actions.toggleReaction(msg, emoji));
  const anchor = event.currentTarget;
  const more = h('button', {
    testid: 'emoji-more', title: t('emoji.more'), 'aria-label': t('emoji.more'), class: 'emoji-more', 'aria-haspopup': 'dialog',
    onclick: () => {
      row.remove(); // the message keeps is-menu-open, so the anchor stays visible
      openEmojiPicker({ anchor, onPick: react, label: t('emoji.react'), onClose: () => el.classList.remove('is-menu-open') });
    },
  }, '+');
  const row = h('div', { class: 'emoji-picker', testid: 'emoji-picker', role: 'group', 'aria-label': t('emoji.react') }, QUICK_EMOJI.map((emoji) => h('button', {
    testid: `emoji-${emoji}`, title: emoji, 'aria-label': emoji,
    onclick: () => { closePickers(); react(emoji); },
  }, emoji)), more);
  el.append(row);
  el.querySelector('.emoji-picker button')?.focus();
}

function closePickers() {
  for (const picker of list?.querySelectorAll('.emoji-picker') || []) {
    picker.closest('.msg')?.classList.remove('is-menu-open');
    picker.remove();
  }
}

function pendingEl(item, grouped) {
  const failed = item.status === 'failed';
  return h('div', {
    class: `msg is-mine ${failed ? 'is-failed' : 'is-pending'}${grouped ? ' is-grouped' : ''}`,
    testid: `message-pending-${item.client_id}`,
    dataset: { clientId: item.client_id, status: item.status },
  },
  h('div', { class: 'msg-gutter' }, userAvatar(state.me)),
  h('div', { class: 'msg-head' },
    h('span', { class: 'msg-sender' }, displayName(state.me)),
    h('span', { class: 'msg-time' }, formatTime(item.created_at))),
  h('div', { class: 'msg-body' },
    h('div', { class: 'msg-content md', testid: 'message-content' }, renderMarkdown(item.content, mentionOptions(item))),
    item.attachments.length ? h('div', { class: 'msg-file-size' }, item.attachments.map((a) => `📎 ${a.filename}`).join('  ')) : null,
    h('div', { class: 'msg-status', testid: 'message-status' },
      failed ? [icon('alert'), item.error ? t('messages.notSentWhy', { error: item.error }) : t('messages.notSent'),
        h('button', { testid: 'message-retry', onclick: () => actions.retrySend(item.client_id) }, t('messages.retry')),
        h('button', { testid: 'message-discard', onclick: () => actions.discardSend(item.chat_id, item.client_id) }, t('messages.discard'))]
        : pendingLabel())));
}

/** A pending message is being sent, or waits (in the outbox) for the connection. */
const pendingLabel = () => t(state.connection === 'connected' ? 'messages.sending' : 'messages.waiting');

function relabelPending() {
  for (const el of list?.querySelectorAll('.msg.is-pending [data-testid="message-status"]') || []) {
    el.textContent = pendingLabel();
  }
}

// ---- scrolling, paging, reading ----------------------------------------------------------

const nearBottom = () => list.scrollHeight - list.scrollTop - list.clientHeight < 80;

function firstVisible() {
  const top = list.getBoundingClientRect().top;
  for (const el of list.children) {
    if (el !== statusEl && el.getBoundingClientRect().bottom > top) return el;
  }
  return null;
}

export function scrollToBottom(smooth = false) {
  stickToBottom = true;
  list.scrollTo({ top: list.scrollHeight, behavior: smooth ? 'smooth' : 'auto' });
  updateJump();
}

/** The jump-to-latest button: shown when scrolled up or looking at an older window. */
function updateJump() {
  if (!jumpButton) return;
  const chatId = state.activeChatId;
  const hist = chatId != null ? state.history.get(chatId) : null;
  const away = !stickToBottom || Boolean(hist?.hasNewer);
  jumpButton.hidden = !away;
  const unread = state.chats.get(chatId)?.unread_count || 0;
  jumpCount.hidden = !away || !unread;
  jumpCount.textContent = unread > 99 ? '99+' : String(unread);
  jumpButton.setAttribute('aria-label', unread ? t('messages.jumpLatestCount', { count: unread }) : t('messages.jumpLatest'));
}

/** Back to the newest message (reloading the newest page after a jump into the past). */
export async function jumpToLatest() {
  const chatId = state.activeChatId;
  const hist = chatId != null ? state.history.get(chatId) : null;
  if (hist?.hasNewer) {
    await actions.resetToLatest(chatId).catch((e) => toast(errorText(e), { error: true }));
    stickToBottom = true;
    render();
  }
  scrollToBottom(true);
}

/** Once per opened chat: when unread messages start above the fold, show them from the divider. */
function positionAtDivider() {
  if (positioned) return;
  const divider = list.querySelector('[data-testid="new-messages-divider"]');
  if (!divider) return;
  positioned = true;
  if (divider.offsetTop < list.scrollHeight - list.clientHeight - 8) {
    list.scrollTop = Math.max(0, divider.offsetTop - 40); // a line of what came before
    stickToBottom = nearBottom();
  }
}

function onScroll() {
  stickToBottom = nearBottom();
  const chatId = state.activeChatId;
  updateJump();
  if (chatId == null) return;
  if (list.scrollTop < 300) loadOlder(chatId);
  const hist = store.historyOf(chatId);
  if (hist.hasNewer && !hist.loading && nearBottom()) actions.loadNewer(chatId).catch(() => {});
  maybeMarkRead();
}

function loadOlder(chatId) {
  const hist = store.historyOf(chatId);
  if (hist.loaded && hist.hasMore && !hist.loading) actions.loadOlder(chatId).catch(() => {});
}

function afterLayout(chatId) {
  // A short first page does not fill the pane, so no scroll event would ever page back.
  if (list.scrollHeight <= list.clientHeight + 10) loadOlder(chatId);
  maybeMarkRead();
}

function maybeMarkRead() {
  const chatId = state.activeChatId;
  if (chatId == null || !list || document.visibilityState !== 'visible') return;
  if (nearBottom()) actions.markRead(chatId);
}

/** Load the messages around `seq` unless it is loaded, then scroll to it and flash it. */
export async function revealMessage(chatId, seq) {
  if (chatId !== state.activeChatId) return;
  const hist = store.historyOf(chatId);
  if (!hist.bySeq.has(seq)) await actions.loadAround(chatId, seq).catch((e) => toast(errorText(e), { error: true }));
  if (frame) { cancelAnimationFrame(frame); frame = 0; }
  render(); // takes in a chat switch first
  positioned = true;
  const el = list.querySelector(`[data-testid="message-${seq}"]`);
  if (!el) return;
  stickToBottom = false;
  el.scrollIntoView({ block: 'center' });
  stickToBottom = nearBottom();
  updateJump();
  for (const old of list.querySelectorAll('.msg.is-highlight')) old.classList.remove('is-highlight');
  void el.offsetWidth;
  el.classList.add('is-highlight');
  el.dataset.highlight = 'true';
  setTimeout(() => { delete el.dataset.highlight; }, 4000);
}
