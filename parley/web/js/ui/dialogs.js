// Modal dialogs on native <dialog>: confirm, profile, new chat / group / channel, chat info.

import * as actions from '../actions.js';
import { clear, h, icon } from '../dom.js';
import { displayName } from '../format.js';
import { errorText, t } from '../i18n.js';
import * as store from '../state.js';
import { userAvatar } from './avatar.js';
import { channelRow } from './sidebar.js';
import { attempt, toast } from './toast.js';

const { state } = store;

let dialogIds = 0;

/**
 * A modal dialog with a title, a body and footer buttons; removed from the page when
 * closed. Labelled by its title; the rest of the page is inert while it is open (focus
 * stays inside), and focus returns to what had it before.
 */
export function modal({ title, testid, body, footer = [] }) {
  const close = h('button', { class: 'icon-btn', title: t('common.close'), 'aria-label': t('common.close'), testid: 'dialog-close', onclick: () => dialog.close() });
  close.append(icon('close'));
  const titleId = `dialog-title-${++dialogIds}`;
  const opener = document.activeElement;
  const dialog = h('dialog', { class: 'modal', testid, 'aria-modal': 'true', 'aria-labelledby': titleId },
    h('div', { class: 'modal-head' }, h('h2', { id: titleId }, title), close),
    h('div', { class: 'modal-body' }, body),
    footer.length ? h('div', { class: 'modal-foot' }, footer) : null);
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener?.isConnected && !document.querySelector('dialog[open]')) opener.focus();
  });
  dialog.addEventListener('click', (event) => { if (event.target === dialog) dialog.close(); });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

/**
 * A modal list read page by page, newest first, with a "More" button while pages are
 * full: `loadPage(cursor)` resolves to a page (cursor null: the first), `cursorOf(entry)`
 * is the next page's cursor after its last entry, `itemEl(entry, dialog)` draws an entry.
 * Test ids: `${name}-dialog`, `${name}-list`, `${name}-more`.
 */
export function pagedDialog({ name, title, listClass, empty, loadPage, cursorOf, itemEl, pageSize = 30 }) {
  const list = h('div', { class: `pick-list ${listClass}`, testid: `${name}-list` },
    h('div', { class: 'list-empty' }, t('common.loading')));
  const more = h('button', { class: 'btn btn-small', testid: `${name}-more`, hidden: true }, t('mentions.more'));
  const dialog = modal({ title, testid: `${name}-dialog`, body: [list, more] });
  let cursor = null;
  const load = async () => {
    more.disabled = true;
    let page;
    try {
      page = await loadPage(cursor);
    } catch (error) {
      clear(list).append(h('div', { class: 'list-empty' }, errorText(error)));
      return;
    }
    if (cursor == null) clear(list);
    if (cursor == null && !page.length) list.append(h('div', { class: 'list-empty' }, empty));
    list.append(...page.map((entry) => itemEl(entry, dialog)));
    if (page.length) cursor = cursorOf(page[page.length - 1]);
    more.hidden = page.length < pageSize;
    more.disabled = false;
  };
  more.addEventListener('click', load);
  load();
  return dialog;
}

export function confirmDialog({ title, text, confirm = t('common.ok'), danger = false }) {
  return new Promise((resolve) => {
    let answer = false;
    const ok = h('button', { class: `btn ${danger ? 'btn-danger' : 'btn-primary'}`, testid: 'confirm-ok', onclick: () => { answer = true; dialog.close(); } }, confirm);
    const dialog = modal({
      title, testid: 'confirm-dialog', body: h('p', null, text),
      footer: [h('button', { class: 'btn', testid: 'confirm-cancel', onclick: () => dialog.close() }, t('common.cancel')), ok],
    });
    dialog.addEventListener('close', () => resolve(answer));
    ok.focus();
  });
}

/** Sign out, once the user confirms it. */
export async function signOut() {
  const sure = await confirmDialog({ title: t('logout.confirmTitle'), text: t('logout.confirmText'), confirm: t('menu.logout'), danger: true });
  if (sure) await actions.logout();
}

function field(label, input, testid) {
  input.dataset.testid = testid;
  return h('label', { class: 'field' }, h('span', null, label), input, h('small', { class: 'field-error' }));
}

function showFieldError(form, error, names) {
  const name = error.field ? error.field(names) : null;
  const target = name && form.querySelector(`[name="${name}"]`);
  if (target) target.closest('.field').querySelector('.field-error').textContent = errorText(error);
  else toast(errorText(error), { error: true });
}

// ---- profile ---------------------------------------------------------------------------------

export function profileDialog() {
  const me = state.me;
  const avatarBox = h('span');
  // "Remove" only when there is a photo to remove.
  const remove = h('button', { type: 'button', class: 'btn btn-small btn-ghost', testid: 'profile-avatar-remove', onclick: () => attempt(async () => { await actions.removeAvatar(); renderAvatar(); }) }, t('common.remove'));
  const renderAvatar = () => {
    avatarBox.replaceChildren(userAvatar(state.me, { size: 'avatar-lg' }));
    remove.hidden = !state.me.avatar_url;
  };
  renderAvatar();
  const fileInput = h('input', { type: 'file', accept: 'image/png,image/jpeg,image/webp,image/gif', hidden: true, testid: 'profile-avatar-file' });
  fileInput.addEventListener('change', () => attempt(async () => {
    const file = fileInput.files[0];
    if (!file) return;
    await actions.uploadAvatar(file);
    renderAvatar();
    toast(t('profile.avatarUpdated'));
  }));
  const name = h('input', { name: 'display_name', value: me.display_name || '', maxlength: 64 });
  const bio = h('textarea', { name: 'bio', maxlength: 500 });
  bio.value = me.bio || '';
  const email = h('input', { name: 'email', type: 'email', value: me.email || '' });
  const form = h('form', { testid: 'profile-form' },
    h('div', { class: 'profile-avatar' }, avatarBox,
      h('div', { class: 'profile-avatar-actions' },
        h('strong', null, `@${me.username}`),
        h('button', { type: 'button', class: 'btn btn-small', testid: 'profile-avatar-upload', onclick: () => fileInput.click() }, t('profile.upload')),
        remove,
        fileInput)),
    field(t('profile.displayName'), name, 'profile-display-name'),
    field(t('profile.bio'), bio, 'profile-bio'),
    field(t('profile.email'), email, 'profile-email'));
  const save = h('button', { class: 'btn btn-primary', testid: 'profile-save', type: 'submit' }, t('common.save'));
  save.setAttribute('form', 'profile-form-el');
  form.id = 'profile-form-el';
  const dialog = modal({
    title: t('profile.title'), testid: 'profile-dialog', body: form,
    footer: [h('button', { class: 'btn btn-danger', testid: 'profile-logout', onclick: () => { dialog.close(); signOut(); } }, t('menu.logout')),
      h('span', { class: 'spacer' }), h('button', { class: 'btn', onclick: () => dialog.close() }, t('common.cancel')), save],
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    const fields = { display_name: name.value.trim(), bio: bio.value.trim() };
    if (email.value.trim() && email.value.trim() !== me.email) fields.email = email.value.trim();
    try {
      await actions.updateProfile(fields);
      dialog.close();
      toast(t('profile.saved'));
    } catch (error) {
      showFieldError(form, error, ['display_name', 'bio', 'email']);
    }
  });
}

// ---- new chat: direct / group / channel / browse ----------------------------------------------

export function newChatDialog({ onOpen, tab = 'direct' }) {
  const body = h('div');
  const tabs = [['direct', t('newChat.tab.direct')], ['group', t('newChat.tab.group')], ['channel', t('newChat.tab.channel')], ['browse', t('newChat.tab.browse')]];
  const tabBar = h('div', { class: 'tabs', role: 'tablist' });
  const dialog = modal({ title: t('newChat.title'), testid: 'new-chat-dialog', body: [tabBar, body] });
  const done = (chat) => { dialog.close(); onOpen(chat.id); };
  const show = (name) => {
    for (const b of tabBar.children) b.setAttribute('aria-selected', String(b.dataset.tab === name));
    clear(body).append(name === 'direct' ? directPane(done) : name === 'browse' ? browsePane(dialog, onOpen) : createPane(name, done));
    body.querySelector('input')?.focus();
  };
  tabBar.append(...tabs.map(([name, label]) => h('button', { class: 'tab', role: 'tab', testid: `new-chat-tab-${name}`, dataset: { tab: name }, onclick: () => show(name) }, label)));
  show(tab);
}

function userPicker({ onPick, selected = null }) {
  const input = h('input', { class: 'input', placeholder: t('newChat.searchPeople'), 'aria-label': t('newChat.searchPeople'), testid: 'user-picker-search', autocomplete: 'off' });
  const results = h('div', { class: 'pick-list', testid: 'user-picker-results' });
  let timer = 0;
  const search = async () => {
    const users = (await actions.searchUsers(input.value.trim()).catch(() => [])).filter((u) => u.id !== state.me.id);
    clear(results).append(...(users.length ? users.map((u) => h('button', {
      type: 'button', class: `pick-item${selected?.has(u.id) ? ' is-selected' : ''}`, testid: `user-picker-${u.id}`, onclick: () => onPick(u),
    }, userAvatar(u, { size: 'avatar-sm' }), h('span', { class: 'pick-text' }, h('span', { class: 'pick-title' }, displayName(u)), h('span', { class: 'pick-sub' }, `@${u.username}`)))) : [h('div', { class: 'list-empty' }, t('newChat.nobody'))]));
  };
  input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  search();
  return { el: h('div', null, input, results), refresh: search };
}

function directPane(done) {
  return userPicker({ onPick: (user) => attempt(async () => done(await actions.startDirect(user.id))) }).el;
}

function createPane(type, done) {
  const members = new Map();
  const chips = h('div', { class: 'chips', testid: 'new-chat-members' });
  const title = h('input', { name: 'title', maxlength: 64, required: true });
  const description = h('textarea', { name: 'description', maxlength: 500 });
  const renderChips = () => chips.replaceChildren(...[...members.values()].map((u) => {
    const remove = h('button', { type: 'button', class: 'icon-btn', title: t('common.remove'), 'aria-label': t('common.remove'), onclick: () => { members.delete(u.id); renderChips(); picker.refresh(); } });
    remove.append(icon('close'));
    return h('span', { class: 'chip' }, displayName(u), remove);
  }));
  const picker = userPicker({ selected: members, onPick: (u) => { if (members.has(u.id)) members.delete(u.id); else members.set(u.id, u); renderChips(); picker.refresh(); } });
  const form = h('form', { testid: `new-${type}-form` },
    field(type === 'group' ? t('newChat.groupName') : t('newChat.channelName'), title, 'new-chat-title'),
    field(t('newChat.description'), description, 'new-chat-description'),
    h('div', { class: 'field' }, h('span', null, type === 'group' ? t('newChat.members') : t('newChat.invite')), chips, picker.el),
    h('div', { class: 'modal-foot' }, h('button', { class: 'btn btn-primary', type: 'submit', testid: 'new-chat-create' }, type === 'group' ? t('newChat.createGroup') : t('newChat.createChannel'))));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const e of form.querySelectorAll('.field-error')) e.textContent = '';
    const fields = { type, title: title.value.trim(), member_ids: [...members.keys()] };
    if (description.value.trim()) fields.description = description.value.trim();
    if (!fields.title) { form.querySelector('.field-error').textContent = t('newChat.nameRequired'); return; }
    try {
      done(await actions.createChat(fields));
    } catch (error) {
      showFieldError(form, error, ['title', 'description']);
    }
  });
  return form;
}

function browsePane(dialog, onOpen) {
  const input = h('input', { class: 'input', placeholder: t('newChat.searchChannels'), 'aria-label': t('newChat.searchChannels'), testid: 'browse-search', autocomplete: 'off' });
  const results = h('div', { class: 'pick-list', testid: 'browse-results' });
  const search = async () => {
    const channels = await actions.searchChannels(input.value.trim()).catch(() => []);
    clear(results).append(...(channels.length
      ? channels.map((c) => channelRow(c, { onDone: () => dialog.close() }))
      : [h('div', { class: 'list-empty' }, t('sidebar.noChannels'))]));
  };
  let timer = 0;
  input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(search, 200); });
  search();
  void onOpen;
  return h('div', null, input, results);
}
