// Presence of mind: my status and do-not-disturb (from the profile menu), the notify level
// of a chat, the "Share read receipts" setting, "Seen by" under my latest message, and
// messages scheduled for later (the send-later menu and the list of a chat's scheduled ones).

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { displayName } from '../format.js';
import { dateFormat, t } from '../i18n.js';
import * as store from '../state.js';
import { userAvatar } from './avatar.js';
import { modal } from './dialogs.js';
import { popupMenu } from './menu.js';
import { attempt, onSubmit, toast } from './toast.js';

const { state } = store;
const MINUTE = 60 * 1000;
const HOUR = 60 * MINUTE;

const when = (date) => dateFormat({ dateStyle: 'medium', timeStyle: 'short' }).format(date);

/** Tomorrow at `hour`:00, local time. */
function tomorrowAt(hour) {
  const date = new Date();
  date.setDate(date.getDate() + 1);
  date.setHours(hour, 0, 0, 0);
  return date;
}

/** The end of today, local time. */
function endOfToday() {
  const date = new Date();
  date.setHours(23, 59, 0, 0);
  return date;
}

// ---- status and do not disturb ------------------------------------------------------------

/** The profile menu's entries: set a status, and do not disturb for 1 h / until tomorrow / off. */
export function mindMenuItems() {
  const dnd = state.me?.dnd_until && new Date(state.me.dnd_until) > new Date();
  const setDnd = (until) => attempt(async () => {
    await actions.setDnd(until ? until.toISOString() : null);
    toast(until ? t('mind.dnd.on', { time: when(until) }) : t('mind.dnd.offDone'));
  });
  return [
    { label: t('mind.status.set'), icon: 'smile', testid: 'menu-status', onSelect: statusDialog },
    { heading: dnd ? t('mind.dnd.until', { time: when(new Date(state.me.dnd_until)) }) : t('mind.dnd.title') },
    { label: t('mind.dnd.hour'), icon: 'bell-off', testid: 'menu-dnd-1h', onSelect: () => setDnd(new Date(Date.now() + HOUR)) },
    { label: t('mind.dnd.tomorrow'), testid: 'menu-dnd-tomorrow', onSelect: () => setDnd(tomorrowAt(8)) },
    { label: t('mind.dnd.off'), testid: 'menu-dnd-off', checked: !dnd, onSelect: () => setDnd(null) },
  ];
}

const CLEAR_AFTER = [
  { key: 'never', at: () => null },
  { key: 'minutes30', at: () => new Date(Date.now() + 30 * MINUTE) },
  { key: 'hour', at: () => new Date(Date.now() + HOUR) },
  { key: 'hours4', at: () => new Date(Date.now() + 4 * HOUR) },
  { key: 'today', at: endOfToday },
  { key: 'week', at: () => new Date(Date.now() + 7 * 24 * HOUR) },
];

export function statusDialog() {
  const current = state.me?.status;
  const emoji = h('input', { name: 'emoji', value: current?.emoji || '', maxlength: 16, testid: 'status-emoji-input', class: 'status-emoji-input', placeholder: '🙂', 'aria-label': t('mind.status.emoji') });
  const text = h('input', { name: 'text', value: current?.text || '', maxlength: 100, testid: 'status-text-input', placeholder: t('mind.status.placeholder') });
  const clearAfter = h('select', { name: 'clear_after', testid: 'status-clear-after' },
    CLEAR_AFTER.map(({ key }) => h('option', { value: key }, t(`mind.status.clear.${key}`))));
  const error = h('p', { class: 'field-error', role: 'alert', testid: 'status-error' });
  const presets = h('div', { class: 'status-presets' }, [
    ['📅', t('mind.status.preset.meeting')], ['🍔', t('mind.status.preset.lunch')],
    ['🤒', t('mind.status.preset.sick')], ['🌴', t('mind.status.preset.vacation')],
  ].map(([e, label]) => h('button', { type: 'button', class: 'chip', onclick: () => { emoji.value = e; text.value = label; } }, `${e} ${label}`)));
  const form = h('form', { testid: 'status-form', id: 'status-form-el' },
    h('div', { class: 'field-row' },
      h('label', { class: 'field' }, h('span', null, t('mind.status.emoji')), emoji),
      h('label', { class: 'field field-grow' }, h('span', null, t('mind.status.text')), text)),
    presets,
    h('label', { class: 'field' }, h('span', null, t('mind.status.clearAfter')), clearAfter),
    error);
  const save = h('button', { class: 'btn btn-primary', type: 'submit', form: 'status-form-el', testid: 'status-save' }, t('common.save'));
  const clear = h('button', { class: 'btn', type: 'button', testid: 'status-clear', onclick: () => attempt(async () => { await actions.setStatus(null); dialog.close(); }) }, t('mind.status.clear.now'));
  const dialog = modal({ title: t('mind.status.title'), testid: 'status-dialog', body: form, footer: [clear, h('span', { class: 'spacer' }), save] });
  onSubmit(form, error, async () => {
    const until = CLEAR_AFTER.find((c) => c.key === clearAfter.value)?.at();
    const status = { emoji: emoji.value.trim() || null, text: text.value.trim(), until: until ? until.toISOString() : null };
    await actions.setStatus(status.emoji || status.text ? status : null);
    dialog.close();
    toast(t('mind.status.saved'));
  });
  queueMicrotask(() => text.focus());
  return dialog;
}

// ---- notify level and read receipts -------------------------------------------------------

/** "Notifications: All / Mentions / Nothing" for one chat (members only). */
export function notifySelect(chat) {
  const select = h('select', { name: 'notify', testid: 'notify-level', 'aria-label': t('mind.notify.label') },
    ['all', 'mentions', 'none'].map((level) => h('option', { value: level, selected: (chat.notify || 'all') === level }, t(`mind.notify.${level}`))));
  select.addEventListener('change', () => attempt(async () => {
    await actions.setNotify(chat.id, select.value);
    toast(t('mind.notify.saved'));
  }));
  return h('label', { class: 'field notify-field', testid: 'notify-field' }, h('span', null, t('mind.notify.label')), select);
}

/** The "Share read receipts" switch of the settings dialog. */
export function readReceiptsSection() {
  const box = h('input', { type: 'checkbox', testid: 'share-read-receipts', checked: state.me?.share_read_receipts !== false });
  box.addEventListener('change', () => attempt(async () => {
    await actions.setShareReadReceipts(box.checked);
    toast(box.checked ? t('mind.receipts.on') : t('mind.receipts.off'));
  }));
  return h('section', { class: 'read-receipts', testid: 'read-receipts-section' },
    h('label', { class: 'check-row' }, box, h('span', null, t('mind.receipts.label'))),
    h('small', { class: 'field-hint' }, t('mind.receipts.hint')));
}

/** "Seen by" under my latest message: those whose read marker passed it. */
export function seenBy(chatId, msg) {
  const markers = state.readMarkers.get(chatId);
  if (!markers) return null;
  const ids = [...markers].filter(([id, seq]) => seq >= msg.seq && id !== state.me?.id).map(([id]) => id).sort((a, b) => a - b);
  if (!ids.length) return null;
  const users = ids.map((id) => state.users.get(id) || { id });
  const names = users.map((u) => displayName(u) || `#${u.id}`).join(', ');
  return {
    key: `seen:${msg.seq}`,
    version: JSON.stringify([msg.seq, ids, names]),
    build: () => h('div', { class: 'seen-by', testid: 'seen-by', title: t('mind.seenBy', { names }), 'aria-label': t('mind.seenBy', { names }) },
      h('span', { class: 'seen-by-label' }, t('mind.seen')),
      users.slice(0, 8).map((u) => userAvatar(u, { size: 'avatar-xs' })),
      users.length > 8 ? h('span', { class: 'seen-by-more' }, `+${users.length - 8}`) : null),
  };
}

// ---- scheduled messages ----------------------------------------------------------------------

/** "Send later": in 1 hour, tomorrow at 9:00, or a picked date and time; `onPick(Date)`. */
export function sendLaterMenu(anchor, onPick) {
  popupMenu(anchor, [
    { heading: t('mind.schedule.title') },
    { label: t('mind.schedule.hour'), icon: 'clock', testid: 'schedule-1h', onSelect: () => onPick(new Date(Date.now() + HOUR)) },
    { label: t('mind.schedule.tomorrow'), testid: 'schedule-tomorrow', onSelect: () => onPick(tomorrowAt(9)) },
    { label: t('mind.schedule.pick'), testid: 'schedule-pick', onSelect: () => pickTime(null, onPick) },
  ], { testid: 'schedule-menu', label: t('mind.schedule.title') });
}

const localValue = (date) => {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
};

/** A date and time picker; `onPick(Date)` with the chosen (future) moment. */
export function pickTime(initial, onPick) {
  const start = initial ? new Date(initial) : new Date(Date.now() + HOUR);
  const input = h('input', { type: 'datetime-local', testid: 'schedule-time', value: localValue(start), min: localValue(new Date()), required: true });
  const error = h('p', { class: 'field-error', role: 'alert', testid: 'schedule-error' });
  const ok = h('button', { class: 'btn btn-primary', testid: 'schedule-confirm', onclick: () => {
    const date = new Date(input.value);
    if (Number.isNaN(date.getTime()) || date <= new Date()) {
      error.textContent = t('mind.schedule.future');
      return;
    }
    dialog.close();
    onPick(date);
  } }, t('mind.schedule.confirm'));
  const dialog = modal({
    title: t('mind.schedule.pickTitle'), testid: 'schedule-dialog',
    body: [h('label', { class: 'field' }, h('span', null, t('mind.schedule.at')), input), error],
    footer: [h('button', { class: 'btn', onclick: () => dialog.close() }, t('common.cancel')), ok],
  });
  queueMicrotask(() => input.focus());
}

/** The chat's scheduled messages (mine), each with edit and delete. */
export function scheduledDialog(chatId, { onChange = () => {} } = {}) {
  const list = h('div', { class: 'pick-list', role: 'list', testid: 'scheduled-list' });
  const dialog = modal({ title: t('mind.scheduled.title'), testid: 'scheduled-dialog', body: list });
  const refresh = async () => {
    const rows = await actions.listScheduled(chatId).catch(() => []);
    onChange(rows.length);
    if (!rows.length) {
      list.replaceChildren(h('div', { class: 'list-empty' }, t('mind.scheduled.none')));
      return;
    }
    list.replaceChildren(...rows.map((row) => scheduledRow(row, refresh)));
  };
  refresh();
  return dialog;
}

function scheduledRow(row, refresh) {
  const text = h('textarea', { class: 'scheduled-edit', maxlength: 4000, testid: `scheduled-edit-${row.id}`, hidden: true });
  text.value = row.content;
  const content = h('span', { class: 'pick-title scheduled-content', testid: 'scheduled-content' }, row.content);
  const save = h('button', { class: 'btn btn-small btn-primary', hidden: true, testid: `scheduled-save-${row.id}`, onclick: () => attempt(async () => {
    await actions.updateScheduled(row.id, { content: text.value.trim() });
    await refresh();
  }) }, t('common.save'));
  const edit = h('button', { class: 'btn btn-small', testid: `scheduled-edit-button-${row.id}`, onclick: () => {
    text.hidden = false;
    save.hidden = false;
    content.hidden = true;
    edit.hidden = true;
    text.focus();
  } }, t('mind.scheduled.edit'));
  const time = h('button', { class: 'btn btn-small', testid: `scheduled-time-${row.id}`, onclick: () => pickTime(row.send_at, (date) => attempt(async () => {
    await actions.updateScheduled(row.id, { send_at: date.toISOString() });
    await refresh();
  })) }, t('mind.scheduled.reschedule'));
  const remove = h('button', { class: 'btn btn-small btn-danger', testid: `scheduled-delete-${row.id}`, onclick: () => attempt(async () => {
    await actions.deleteScheduled(row.id);
    await refresh();
  }) }, t('common.delete'));
  return h('div', { class: 'pick-item scheduled-item', role: 'listitem', testid: `scheduled-${row.id}` },
    h('span', { class: 'pick-text' }, content, text,
      h('span', { class: 'pick-sub', testid: 'scheduled-when' }, t('mind.scheduled.at', { time: when(new Date(row.send_at)) }))),
    h('span', { class: 'scheduled-actions' }, edit, save, time, remove));
}
