// The composer: Enter sends, Shift+Enter breaks the line, typing notices, attachments
// (uploaded first, sent as attachment_ids), and the reply / edit modes.

import * as actions from '../actions.js';
import { expandShortcode } from '../emoji-shortcodes.js';
import { h, icon } from '../dom.js';
import { displayName } from '../format.js';
import { errorText, t } from '../i18n.js';
import * as store from '../state.js';
import { openEmojiPicker } from './emoji.js';
import { jumpToLatest, scrollToBottom } from './messages.js';
import { mountMentionBox } from './mention-box.js';
import { mountCommandBox, runComposerCommand } from './commands.js';
import { scheduledDialog, sendLaterMenu } from './mind.js';
import { offerPushOnce } from './push.js';
import { toast } from './toast.js';

const { state } = store;
const MAX_LENGTH = 4000;

const el = {};
let mode = null; // null | {kind: 'reply'|'edit', msg}
let files = []; // {key, file, status: 'uploading'|'done'|'failed', attachment, preview}; in the order chosen
const dropped = []; // entries whose preview URL is to be released
let uploads = Promise.resolve();
let openChat = async () => {};
let mentionBox = null;
let commandBox = null;
const starting = new WeakMap(); // a virtual direct chat → the creation of the real one (its id)

// Drafts per chat, kept on the server (the same on every device): shown at once in the
// chat list, sent about a second after the typing stops (or at once when the chat changes).
// Until the server has confirmed it, a draft is also in localStorage, so a reload that cuts
// the request short loses nothing (it is sent again when the chat is left).
const DRAFT_DELAY = 1000;
const unsent = new Map(); // chat id → {text, timer}
const localKey = (chatId) => `parley.draft.${state.me?.id}.${chatId}`;
function localDraft(chatId) {
  try { return localStorage.getItem(localKey(chatId)); } catch { return null; }
}
function keepLocal(chatId, text) {
  try { localStorage.setItem(localKey(chatId), text); } catch { /* storage full or disabled */ }
}
/** Forgets the local copy (only if it is still `text`, when given: newer typing stays). */
function dropLocal(chatId, text = null) {
  try {
    if (text === null || localStorage.getItem(localKey(chatId)) === text) localStorage.removeItem(localKey(chatId));
  } catch { /* storage disabled */ }
}
function loadDraft(chatId) {
  if (unsent.has(chatId)) return unsent.get(chatId).text;
  return localDraft(chatId) ?? (state.chats.get(chatId)?.draft?.content || '');
}
function saveDraft(chatId, text, { now = false } = {}) {
  if (chatId == null || chatId < 0) return; // a conversation not started yet
  const chat = state.chats.get(chatId);
  const stored = chat?.draft?.content || '';
  clearTimeout(unsent.get(chatId)?.timer);
  if (!unsent.has(chatId) && text === stored) {
    dropLocal(chatId); // the server has this very text
    return;
  }
  if (chat && (text.trim() ? text : '') !== stored) store.setChatDraft(chatId, text);
  keepLocal(chatId, text);
  const flush = () => {
    unsent.delete(chatId);
    actions.putDraft(chatId, text.trim() ? text : '').then(() => dropLocal(chatId, text), () => {});
  };
  if (now) flush();
  else unsent.set(chatId, { text, timer: setTimeout(flush, DRAFT_DELAY) });
}
/** Another device changed the draft of the open chat: show it unless I am typing here. */
store.on('chat_updated', (chatId) => {
  if (chatId !== state.activeChatId || unsent.has(chatId) || mode || !el.input) return;
  if (document.activeElement === el.input && el.input.value) return;
  const text = loadDraft(chatId);
  if (text !== el.input.value) {
    el.input.value = text;
    autosize();
    updateSendButton();
  }
});

export function mountComposer({ onOpen } = {}) {
  if (onOpen) openChat = onOpen;
  for (const id of ['composer', 'composer-input', 'composer-send', 'composer-attach', 'composer-file',
    'composer-context', 'composer-context-title', 'composer-context-body', 'composer-context-icon',
    'composer-context-cancel', 'composer-files', 'composer-notice']) {
    el[id.replace('composer-', '').replace(/-/g, '_')] = document.getElementById(id);
  }
  mentionBox = mountMentionBox(el.input, document.getElementById('mention-box'));
  commandBox = mountCommandBox(el.input);
  el.input.addEventListener('keydown', onKeyDown);
  el.input.addEventListener('input', onInput);
  el.input.addEventListener('paste', onPaste);
  el.send.addEventListener('click', submit);
  el.attach.addEventListener('click', () => el.file.click());
  el.file.addEventListener('change', () => {
    addFiles([...el.file.files]);
    el.file.value = '';
  });
  el.context_cancel.addEventListener('click', cancelMode);
  mountScheduling();
  const emoji = document.getElementById('composer-emoji');
  emoji.title = t('emoji.insert');
  emoji.setAttribute('aria-label', t('emoji.insert'));
  emoji.addEventListener('click', () => openEmojiPicker({ anchor: emoji, onPick: insertText }));
  const main = document.getElementById('chat-view');
  main.addEventListener('dragover', (e) => { if (e.dataTransfer?.types.includes('Files')) e.preventDefault(); });
  main.addEventListener('drop', (e) => {
    if (!e.dataTransfer?.files.length) return;
    e.preventDefault();
    addFiles([...e.dataTransfer.files]);
  });
  updateSendButton();
}

/** Called when another chat opens: keep the draft of the old one, restore the new one's. */
export function switchChat(previousId, chatId, { keepInput = false } = {}) {
  const typed = el.input.value;
  if (previousId != null && mode?.kind !== 'edit' && !keepInput) saveDraft(previousId, typed, { now: true });
  mode = null;
  dropped.push(...files);
  files = [];
  mentionBox?.close();
  renderContext();
  renderFiles();
  el.input.value = chatId == null ? '' : keepInput ? typed : loadDraft(chatId);
  autosize();
  updateSendButton();
  refreshAvailability();
  refreshScheduled(chatId);
}

// ---- scheduled messages (presence of mind) ---------------------------------------------------

function mountScheduling() {
  el.schedule = document.getElementById('composer-schedule');
  el.scheduled = document.getElementById('composer-scheduled');
  el.schedule.addEventListener('click', () => {
    const chatId = state.activeChatId;
    const content = el.input.value.trim();
    if (chatId == null || chatId < 0) return;
    if (!content || mode?.kind === 'edit') {
      scheduledDialog(chatId, { onChange: showScheduledCount });
      return;
    }
    sendLaterMenu(el.schedule, async (date) => {
      try {
        await actions.scheduleMessage(chatId, content, date.toISOString());
      } catch (error) {
        toast(errorText(error), { error: true });
        return;
      }
      if (state.activeChatId === chatId) {
        el.input.value = '';
        autosize();
        updateSendButton();
      }
      saveDraft(chatId, '', { now: true });
      toast(t('mind.schedule.done'));
      refreshScheduled(chatId);
    });
  });
  el.scheduled.addEventListener('click', () => {
    if (state.activeChatId > 0) scheduledDialog(state.activeChatId, { onChange: showScheduledCount });
  });
}

store.on('scheduled', (chatId) => { if (chatId === state.activeChatId) refreshScheduled(chatId); });

function showScheduledCount(count) {
  el.scheduled.hidden = !count;
  el.scheduled.replaceChildren(...(count ? [icon('clock'), String(count)] : []));
}

async function refreshScheduled(chatId) {
  if (!el.scheduled) return;
  if (chatId == null || chatId < 0) return showScheduledCount(0);
  const rows = await actions.listScheduled(chatId).catch(() => []);
  if (state.activeChatId === chatId) showScheduledCount(rows.length);
}

/** Blocked direct chats and unjoined channels cannot be written to. */
export function refreshAvailability() {
  const chat = state.chats.get(state.activeChatId);
  let notice = '';
  if (chat && chat.type === 'direct' && chat.peer && state.blocked.has(chat.peer.id)) {
    notice = t('composer.blocked', { name: displayName(chat.peer) });
  } else if (chat && !actions.isMember(chat)) {
    notice = t('composer.joinFirst');
  }
  el.notice.textContent = notice;
  el.notice.hidden = !notice;
  el.composer.classList.toggle('is-disabled', Boolean(notice));
}

export function focusComposer() {
  if (window.matchMedia('(pointer: fine)').matches) el.input.focus();
}

export function startReply(msg) {
  if (mode?.kind === 'edit') el.input.value = loadDraft(state.activeChatId);
  mode = { kind: 'reply', msg };
  renderContext();
  el.input.focus();
}

export function startEdit(msg) {
  mode = { kind: 'edit', msg };
  el.input.value = msg.content;
  renderContext();
  autosize();
  updateSendButton();
  el.input.focus();
  el.input.setSelectionRange(el.input.value.length, el.input.value.length);
}

function cancelMode() {
  // Leaving an edit brings back what was being written before it (the saved draft).
  if (mode?.kind === 'edit') el.input.value = loadDraft(state.activeChatId);
  mode = null;
  renderContext();
  autosize();
  updateSendButton();
  el.input.focus();
}

function renderContext() {
  el.context.hidden = !mode;
  if (!mode) return;
  const { kind, msg } = mode;
  el.context.dataset.mode = kind;
  el.context_icon.replaceChildren(icon(kind));
  el.context_title.textContent = kind === 'edit' ? t('composer.editing') : t('composer.replyTo', { name: displayName(msg.sender) });
  el.context_body.textContent = msg.content || (msg.attachments?.length ? `📎 ${msg.attachments[0].filename}` : '');
}

// ---- keys and typing --------------------------------------------------------------------

function onKeyDown(event) {
  if (mentionBox?.handleKey(event) || commandBox?.handleKey(event)) return;
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    submit();
  } else if (event.key === 'Escape' && mode) {
    event.preventDefault();
    cancelMode();
  } else if (event.key === 'ArrowUp' && !el.input.value && !mode && !event.altKey) {
    const own = lastOwnMessage();
    if (own) {
      event.preventDefault();
      startEdit(own);
    }
  }
}

function onInput(event) {
  if (event?.data === ':') expandTypedShortcode();
  autosize();
  updateSendButton();
  mentionBox?.update();
  commandBox?.update();
  if (mode?.kind !== 'edit') saveDraft(state.activeChatId, el.input.value);
  // No typing notice for a conversation not created yet (its id is not the server's).
  if (el.input.value.trim() && mode?.kind !== 'edit' && state.activeChatId > 0) actions.sendTyping(state.activeChatId);
}

function onPaste(event) {
  const pasted = [...(event.clipboardData?.files || [])];
  if (pasted.length) {
    event.preventDefault();
    addFiles(pasted);
  }
}

function autosize() {
  el.input.style.height = 'auto';
  el.input.style.height = `${Math.min(el.input.scrollHeight, 200)}px`;
}

function updateSendButton() {
  const uploading = files.some((f) => f.status === 'uploading');
  const hasContent = el.input.value.trim() || files.some((f) => f.status === 'done');
  el.send.disabled = uploading || !hasContent;
}

function lastOwnMessage() {
  const hist = state.history.get(state.activeChatId);
  if (!hist) return null;
  const mine = [...hist.bySeq.values()].filter((m) => m.sender?.id === state.me.id && !m.deleted && m.kind !== 'notice');
  return mine.sort((a, b) => b.seq - a.seq)[0] || null;
}

// ---- sending -------------------------------------------------------------------------------

async function submit() {
  const chatId = state.activeChatId;
  const content = el.input.value.trim();
  if (chatId == null || el.send.disabled) return;
  if (content.length > MAX_LENGTH) {
    toast(t('composer.tooLong', { max: MAX_LENGTH }), { error: true });
    return;
  }
  mentionBox?.close();
  commandBox?.close();
  if (content.startsWith('/') && mode?.kind !== 'edit' && !files.length) {
    const send = (text) => actions.sendMessage(chatId, text, { replyTo: mode?.msg.id || null });
    el.input.value = '';
    if (await runComposerCommand(chatId, content, send)) {
      saveDraft(chatId, '', { now: true });
      mode = null;
      renderContext();
      autosize();
      updateSendButton();
      return;
    }
    el.input.value = content;
  }
  if (mode?.kind === 'edit') {
    const { msg } = mode;
    if (!content) return;
    if (content !== msg.content) actions.editMessage(msg, content).catch((e) => toast(errorText(e), { error: true }));
    cancelMode();
    return;
  }
  const attachments = files.filter((f) => f.status === 'done').map((f) => f.attachment);
  // The contract needs 1–4000 characters; a file alone goes out under its own name.
  const text = content || attachments.map((a) => a.filename).join(', ');
  const replyTo = mode?.msg.id || null;
  let target = chatId;
  const chat = state.chats.get(chatId);
  el.input.value = '';
  if (chat?.virtual) {
    // The first message to someone new: now the direct chat is created. Messages sent
    // meanwhile wait for the same creation, so they keep their order.
    if (!starting.has(chat)) {
      starting.set(chat, actions.startDirect(chat.peer.id).then(async (real) => {
        await openChat(real.id);
        return real.id;
      }));
    }
    try {
      target = await starting.get(chat);
    } catch (error) {
      starting.delete(chat);
      el.input.value = content;
      toast(errorText(error), { error: true });
      updateSendButton();
      return;
    }
  } else if (state.history.get(chatId)?.hasNewer) {
    await jumpToLatest(); // sent from an older window: show where it lands
  }
  actions.sendMessage(target, text, { replyTo, attachments });
  offerPushOnce(); // once: a banner offers notifications (asking nothing by itself)
  saveDraft(target, '', { now: true });
  mode = null;
  dropped.push(...files);
  files = [];
  renderContext();
  renderFiles();
  autosize();
  updateSendButton();
  scrollToBottom();
}

// ---- attachments ------------------------------------------------------------------------

function addFiles(list) {
  const chatId = state.activeChatId;
  const chat = state.chats.get(chatId);
  if (chat?.virtual) {
    // Files need a chat to be uploaded to: attaching starts the conversation.
    actions.startDirect(chat.peer.id).then(async (real) => {
      const text = el.input.value;
      await openChat(real.id);
      el.input.value = text;
      addFiles(list);
    }, (error) => toast(errorText(error), { error: true }));
    return;
  }
  for (const file of list) {
    const entry = { key: actions.newClientId(), file, status: 'uploading', attachment: null };
    files.push(entry);
    // One upload at a time, in the order chosen: the server lists a message's
    // attachments by id, so upload order is the order people see.
    uploads = uploads.then(() => actions.uploadAttachment(chatId, file)).then((attachment) => {
      entry.status = 'done';
      entry.attachment = attachment;
    }).catch((error) => {
      entry.status = 'failed';
      toast(`${file.name}: ${errorText(error)}`, { error: true });
    }).finally(() => {
      if (state.activeChatId === chatId) { renderFiles(); updateSendButton(); }
    });
  }
  renderFiles();
  updateSendButton();
  el.input.focus();
}

/** `:tada:` becomes 🎉 as its closing colon is typed. */
function expandTypedShortcode() {
  const { selectionStart: caret, selectionEnd, value } = el.input;
  if (caret !== selectionEnd) return;
  const expanded = expandShortcode(value, caret);
  if (!expanded) return;
  el.input.value = expanded.text;
  el.input.setSelectionRange(expanded.caret, expanded.caret);
}

/** Puts `text` at the caret (replacing the selection), as if typed. */
function insertText(text) {
  const { selectionStart: start, selectionEnd: end, value } = el.input;
  el.input.value = value.slice(0, start) + text + value.slice(end);
  el.input.focus();
  el.input.setSelectionRange(start + text.length, start + text.length);
  onInput();
}

/** A local preview of an image file, until it is sent or removed. */
function thumbnail(entry) {
  if (!/^image\/(png|jpeg|gif|webp)$/.test(entry.file.type)) return icon('file');
  entry.preview ||= URL.createObjectURL(entry.file);
  return h('img', { class: 'composer-thumb', src: entry.preview, alt: '', testid: 'composer-thumb' });
}

function renderFiles() {
  for (const entry of dropped.splice(0)) if (entry.preview) URL.revokeObjectURL(entry.preview);
  el.files.hidden = !files.length;
  el.files.replaceChildren(...files.map((entry) => {
    const remove = h('button', { class: 'icon-btn', title: t('common.remove'), 'aria-label': t('common.remove'), testid: 'composer-file-remove', onclick: () => {
      files = files.filter((f) => f !== entry);
      dropped.push(entry);
      renderFiles();
      updateSendButton();
    } });
    remove.append(icon('close'));
    const label = entry.status === 'uploading' ? t('composer.uploading', { name: entry.file.name }) : entry.file.name;
    return h('span', { class: `composer-file is-${entry.status}`, testid: 'composer-file-chip', dataset: { status: entry.status }, title: entry.file.name },
      thumbnail(entry), h('span', null, label), remove);
  }));
}
