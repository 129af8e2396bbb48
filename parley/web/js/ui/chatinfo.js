// The chat details dialog: rename and describe a chat, members with their roles (promote,
// demote, hand over ownership, remove), add people, leave, delete; for a direct chat,
// timed blocks. It follows chat_updated frames, so another member's change shows live.

import * as actions from '../actions.js';
import { h, icon } from '../dom.js';
import { displayName, formatLastSeen } from '../format.js';
import { dateFormat, t } from '../i18n.js';
import * as store from '../state.js';
import { chatAvatar, chatDescription, chatTitle, statusBadge, userAvatar } from './avatar.js';
import { notifySelect } from './mind.js';
import { confirmDialog, modal } from './dialogs.js';
import { infoTabs } from './files.js';
import { inviteLinkSection } from './invites.js';
import { attempt, onSubmit, toast } from './toast.js';
import { webhooksSection } from './webhooks.js';

const { state } = store;
const MANAGERS = ['owner', 'admin'];

export function chatInfoDialog(chat, { onBlockToggle }) {
  const chatId = chat.id;
  const head = h('div', { class: 'info-head', testid: 'chat-info-head' });
  const edit = h('div', { class: 'info-edit' });
  const members = h('div', { class: 'pick-list', role: 'list', testid: 'chat-members' });
  const footer = h('div', { class: 'info-actions' });
  const current = () => state.chats.get(chatId) || chat;
  const dialog = modal({
    title: t(`chatinfo.title.${chat.type}`),
    testid: 'chat-info-dialog',
    body: [head, edit, chat.my_role && !chat.virtual ? notifySelect(chat) : null, ...infoTabs(chat, members), inviteLinkSection(chat), webhooksSection(chat), footer],
  });
  let editing = false;
  let shown = '';
  // Re-render only when what the dialog shows changed: a message in the chat must not
  // take the focus away from a button or a field the person is using.
  const renderAll = (force = false) => {
    const c = current();
    const peer = c.peer?.id;
    const signature = JSON.stringify([c.title, c.description, c.member_count, c.my_role, editing,
      peer && state.blocked.has(peer), peer && state.presence.get(peer)?.online,
      state.blockList?.find((b) => b.user_id === peer)?.expires_at]);
    if (signature === shown && !force) return;
    shown = signature;
    renderHead(head, c);
    if (!editing && !edit.contains(document.activeElement)) renderEdit(edit, c, (on) => { editing = on; renderAll(); });
    renderFooter(footer, c, dialog, onBlockToggle);
  };
  const reloadMembers = () => {
    if (current().type !== 'direct') loadMembers(members, chatId, dialog);
  };
  renderAll();
  reloadMembers();
  const offs = [
    store.on('chat_updated', (id) => { if (id === chatId) { renderAll(true); reloadMembers(); } }),
    store.on('chats', () => { if (!state.chats.has(chatId)) dialog.close(); else renderAll(); }),
    store.on('blocks', renderAll),
  ];
  dialog.addEventListener('close', () => offs.forEach((off) => off()));
  return dialog;
}

function renderHead(head, chat) {
  const peer = chat.type === 'direct' ? chat.peer : null;
  let sub;
  if (peer) {
    const presence = state.presence.get(peer.id);
    sub = `@${peer.username} · ${presence?.online ? t('chatinfo.online') : formatLastSeen(presence?.last_seen_at || peer.last_seen_at)}`;
  } else {
    sub = t('chatinfo.memberCount', { count: chat.member_count ?? 0 });
  }
  const about = peer ? peer.bio : chatDescription(chat);
  head.replaceChildren(chatAvatar(chat, { size: 'avatar-lg' }),
    h('h3', { testid: 'chat-info-title' }, chatTitle(chat)),
    h('p', { class: 'info-sub' }, sub),
    // (replaceChildren writes a null as the text "null": leave the paragraph out instead)
    ...(about ? [h('p', { class: 'info-about', testid: 'chat-info-description' }, about)] : []));
}

// ---- rename and describe ----------------------------------------------------------------

function renderEdit(box, chat, setEditing) {
  if (chat.type === 'direct' || !MANAGERS.includes(chat.my_role)) {
    box.replaceChildren();
    return;
  }
  const title = h('input', { name: 'title', value: chat.title, maxlength: 64, required: true, testid: 'chat-edit-title' });
  const description = h('textarea', { name: 'description', maxlength: 500, testid: 'chat-edit-description' });
  description.value = chat.description || '';
  const retention = retentionSelect(chat);
  const error = h('p', { class: 'field-error', role: 'alert', testid: 'chat-edit-error' });
  const form = h('form', { class: 'info-form', testid: 'chat-edit-form' },
    h('label', { class: 'field' }, h('span', null, t('chatinfo.name')), title),
    h('label', { class: 'field' }, h('span', null, t('chatinfo.description')), description),
    h('label', { class: 'field' }, h('span', null, t('retention.label')), retention),
    error,
    h('div', { class: 'row-end' },
      h('button', { type: 'submit', class: 'btn btn-primary btn-small', testid: 'chat-edit-save' }, t('chatinfo.save'))));
  for (const input of [title, description, retention]) input.addEventListener('input', () => setEditing(true));
  onSubmit(form, error, async () => {
    const fields = { title: title.value.trim(), description: description.value.trim(),
      retention_days: retention.value === '' ? null : Number(retention.value) };
    if (!fields.title) { error.textContent = t('chatinfo.nameRequired'); return; }
    await actions.updateChat(chat.id, fields);
    toast(t('chatinfo.saved'));
    title.blur();
    description.blur();
    setEditing(false);
  }, (e) => e.detail || t('chatinfo.failed'));
  box.replaceChildren(form);
}

// trust: how long the chat keeps its messages (null follows the server's setting)
const RETENTION_DAYS = [0, 1, 7, 30, 90, 365];

function retentionSelect(chat) {
  const days = chat.retention_days ?? null;
  const known = days === null || RETENTION_DAYS.includes(days);
  return h('select', { name: 'retention_days', testid: 'chat-edit-retention' },
    h('option', { value: '', selected: days === null }, t('retention.inherit')),
    RETENTION_DAYS.map((d) => h('option', { value: d, selected: days === d },
      d === 0 ? t('retention.forever') : t('retention.days', { count: d }))),
    known ? null : h('option', { value: days, selected: true }, t('retention.days', { count: days })));
}

// ---- members and roles ------------------------------------------------------------------

async function loadMembers(box, chatId, dialog) {
  if (!box.childElementCount) box.append(h('div', { class: 'list-empty' }, t('chatinfo.loading')));
  try {
    const list = await actions.listMembers(chatId);
    const chat = state.chats.get(chatId);
    if (!chat || !dialog.open) return;
    const order = { owner: 0, admin: 1, member: 2 };
    list.sort((a, b) => order[a.role] - order[b.role] || displayName(a.user).localeCompare(displayName(b.user)));
    box.replaceChildren(...list.map((m) => memberRow(chat, m)));
  } catch (e) {
    box.replaceChildren(h('div', { class: 'list-empty' }, e.detail || t('chatinfo.failed')));
  }
}

function memberRow(chat, member) {
  const { user, role } = member;
  const me = user.id === state.me.id;
  const controls = [];
  if (!me && chat.my_role === 'owner') controls.push(roleSelect(chat, member));
  const mayRemove = !me && role !== 'owner' && (chat.my_role === 'owner' || (chat.my_role === 'admin' && role === 'member'));
  if (mayRemove) {
    const label = t('chatinfo.remove', { name: displayName(user) });
    const remove = h('button', { class: 'icon-btn', title: label, 'aria-label': label, testid: `member-remove-${user.id}`,
      onclick: () => removeMember(chat, user) });
    remove.append(icon('close'));
    controls.push(remove);
  }
  const showTag = role !== 'member' && !(controls.length && chat.my_role === 'owner');
  return h('div', { class: 'pick-item member-row', role: 'listitem', testid: `member-${user.id}`, dataset: { role } },
    userAvatar(user, { size: 'avatar-sm' }),
    h('span', { class: 'pick-text' },
      h('span', { class: 'pick-title' }, displayName(user), statusBadge(user), me ? ` ${t('chatinfo.you')}` : ''),
      h('span', { class: 'pick-sub' }, `@${user.username}`)),
    showTag ? h('span', { class: 'role-tag', testid: 'member-role' }, t(`chatinfo.role.${role}`)) : null,
    controls);
}

function roleSelect(chat, { user, role }) {
  const select = h('select', { class: 'role-select', testid: `member-role-${user.id}`, 'aria-label': t('chatinfo.roleOf', { name: displayName(user) }) },
    ['member', 'admin', 'owner'].map((r) => h('option', { value: r, selected: r === role }, t(`chatinfo.role.${r}`))));
  select.addEventListener('change', async () => {
    const next = select.value;
    if (next === 'owner') {
      const ok = await confirmDialog({
        title: t('chatinfo.transferTitle'),
        text: t('chatinfo.transferText', { name: displayName(user), chat: chatTitle(chat) }),
        confirm: t('chatinfo.transferConfirm'),
        danger: true,
      });
      if (!ok) { select.value = role; return; }
    }
    const done = await attempt(async () => {
      await actions.setRole(chat.id, user.id, next);
      return true;
    });
    if (!done) select.value = role;
    else toast(t(`chatinfo.roleChanged.${next}`, { name: displayName(user) }));
  });
  return select;
}

async function removeMember(chat, user) {
  const ok = await confirmDialog({
    title: t('chatinfo.removeTitle'),
    text: t('chatinfo.removeText', { name: displayName(user), chat: chatTitle(chat) }),
    confirm: t('chatinfo.removeConfirm'),
    danger: true,
  });
  if (ok) await attempt(() => actions.removeMember(chat.id, user.id));
}

// ---- footer: add, leave, delete, block ------------------------------------------------------

function renderFooter(box, chat, dialog, onBlockToggle) {
  const buttons = [];
  const peer = chat.type === 'direct' ? chat.peer : null;
  if (peer) {
    const blocked = state.blocked.has(peer.id);
    buttons.push(h('button', { class: 'btn btn-danger', testid: 'info-block-toggle', onclick: () => { dialog.close(); onBlockToggle(); } },
      t(blocked ? 'block.unblock' : 'block.block')));
    const until = state.blockList?.find((b) => b.user_id === peer.id)?.expires_at;
    if (blocked) buttons.push(h('span', { class: 'info-note', testid: 'block-until' }, until ? t('block.until', { time: formatUntil(until) }) : t('block.forever')));
  } else if (actions.isMember(chat)) {
    if (MANAGERS.includes(chat.my_role)) {
      buttons.push(h('button', { class: 'btn', testid: 'add-members', onclick: () => { dialog.close(); addMembersDialog(chat); } }, t('chatinfo.addPeople')));
    }
    buttons.push(h('span', { class: 'spacer' }));
    buttons.push(h('button', { class: 'btn btn-danger', testid: 'leave-chat', onclick: () => leave(chat, dialog) }, t(`chatinfo.leave.${chat.type}`)));
    if (chat.my_role === 'owner') buttons.push(h('button', { class: 'btn btn-danger', testid: 'delete-chat', onclick: () => remove(chat, dialog) }, t('chatinfo.delete')));
  }
  box.replaceChildren(...buttons);
}

export const formatUntil = (iso) => dateFormat({ dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));

async function leave(chat, dialog) {
  dialog.close();
  const ok = await confirmDialog({ title: t('chatinfo.leaveTitle'), text: t('chatinfo.leaveText', { chat: chatTitle(chat) }), confirm: t('chatinfo.leaveConfirm'), danger: true });
  if (ok) await attempt(() => actions.leaveChat(chat.id));
}

async function remove(chat, dialog) {
  dialog.close();
  const ok = await confirmDialog({ title: t('chatinfo.deleteTitle'), text: t('chatinfo.deleteText', { chat: chatTitle(chat) }), confirm: t('chatinfo.delete'), danger: true });
  if (ok) await attempt(() => actions.deleteChat(chat.id));
}

function addMembersDialog(chat) {
  const chosen = new Map();
  const chips = h('div', { class: 'chips', testid: 'add-members-chosen' });
  const input = h('input', { class: 'input', placeholder: t('chatinfo.searchPeople'), 'aria-label': t('chatinfo.searchPeople'), testid: 'user-picker-search', autocomplete: 'off' });
  const results = h('div', { class: 'pick-list', testid: 'user-picker-results' });
  const search = async () => {
    const users = (await actions.searchUsers(input.value.trim()).catch(() => [])).filter((u) => u.id !== state.me.id);
    results.replaceChildren(...(users.length ? users.map((u) => h('button', {
      type: 'button', class: `pick-item${chosen.has(u.id) ? ' is-selected' : ''}`, testid: `user-picker-${u.id}`, 'aria-pressed': String(chosen.has(u.id)),
      onclick: () => { if (chosen.has(u.id)) chosen.delete(u.id); else chosen.set(u.id, u); renderChips(); search(); },
    }, userAvatar(u, { size: 'avatar-sm' }), h('span', { class: 'pick-text' }, h('span', { class: 'pick-title' }, displayName(u)), h('span', { class: 'pick-sub' }, `@${u.username}`)))) : [h('div', { class: 'list-empty' }, t('chatinfo.nobody'))]));
  };
  const renderChips = () => chips.replaceChildren(...[...chosen.values()].map((u) => h('span', { class: 'chip' }, displayName(u))));
  let timer = 0;
  input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  search();
  const add = h('button', { class: 'btn btn-primary', testid: 'add-members-submit', onclick: () => attempt(async () => {
    if (!chosen.size) return;
    await actions.addMembers(chat.id, [...chosen.keys()]);
    dialog.close();
    toast(t('chatinfo.added', { count: chosen.size }));
  }) }, t('chatinfo.add'));
  const dialog = modal({ title: t('chatinfo.addTitle', { chat: chatTitle(chat) }), testid: 'add-members-dialog', body: [chips, input, results], footer: [add] });
  input.focus();
}

// ---- timed blocks ---------------------------------------------------------------------------

/** Asks how long to block `user` for; resolves to seconds (null: forever) or undefined. */
export function blockDialog(user) {
  return new Promise((resolve) => {
    let answer;
    const name = `block-duration-${user.id}`;
    // "Until I unblock" is what blocking means; a time limit is the choice to make.
    const options = actions.BLOCK_DURATIONS.map(({ key, seconds }) => h('label', { class: 'radio' },
      h('input', { type: 'radio', name, value: key, checked: key === 'forever', testid: `block-duration-${key}`, dataset: { seconds: seconds ?? '' } }),
      h('span', null, t(`block.duration.${key}`))));
    const fieldset = h('fieldset', { class: 'radio-group' }, h('legend', null, t('block.howLong')), options);
    const ok = h('button', { class: 'btn btn-danger', testid: 'block-confirm', onclick: () => {
      const picked = fieldset.querySelector('input:checked');
      answer = picked.dataset.seconds ? Number(picked.dataset.seconds) : null;
      dialog.close();
    } }, t('block.block'));
    const dialog = modal({
      title: t('block.title', { name: displayName(user) }),
      testid: 'block-dialog',
      body: [h('p', null, t('block.text')), fieldset],
      footer: [h('button', { class: 'btn', testid: 'block-cancel', onclick: () => dialog.close() }, t('block.cancel')), ok],
    });
    dialog.addEventListener('close', () => resolve(answer));
    fieldset.querySelector('input:checked').focus();
  });
}
