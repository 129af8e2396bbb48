// The settings dialog: change password, the people I block (with their end), and for
// admins the bans screen (ban with a duration and a reason, list, lift).

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { displayName } from '../format.js';
import { t } from '../i18n.js';
import * as store from '../state.js';
import { formatUntil } from './chatinfo.js';
import { modal } from './dialogs.js';
import { adminInvitesDialog } from './invites.js';
import { reachSettingsSection } from './push.js';
import { readReceiptsSection } from './mind.js';
import { userAvatar } from './avatar.js';
import { attempt, toast } from './toast.js';
import { auditPane, reportsPane, securityPane, serverPane, usersPane } from './trust.js';

const { state } = store;
const BAN_DURATIONS = [
  { key: 'hour', seconds: 3600 },
  { key: 'day', seconds: 86400 },
  { key: 'week', seconds: 7 * 86400 },
  { key: 'month', seconds: 30 * 86400 },
  { key: 'forever', seconds: null },
];

export function settingsDialog({ tab = 'password' } = {}) {
  const admin = state.me?.is_admin ? ['bans', 'users', 'reports', 'audit', 'server'] : [];
  const tabs = ['password', 'security', 'blocked', ...admin];
  const body = h('div', { class: 'tab-panel', role: 'tabpanel', id: 'settings-panel' });
  const tabBar = h('div', { class: 'tabs', role: 'tablist', 'aria-label': t('settings.title') });
  // reach: the admins' way to invitations and the registration mode (ui/invites.js)
  const invites = state.me?.is_admin ? h('button', {
    type: 'button', class: 'btn btn-small', testid: 'open-admin-invites', onclick: () => adminInvitesDialog(),
  }, t('reach.admin.open')) : null;
  const dialog = modal({ title: t('settings.title'), testid: 'settings-dialog', body: [tabBar, body, readReceiptsSection(), reachSettingsSection(), invites] });
  let offs = [];
  const show = (name) => {
    offs.forEach((off) => off());
    offs = [];
    for (const b of tabBar.children) {
      const selected = b.dataset.tab === name;
      b.setAttribute('aria-selected', String(selected));
      b.tabIndex = selected ? 0 : -1;
    }
    body.setAttribute('aria-labelledby', `settings-tab-${name}`);
    const panes = {
      password: passwordPane,
      blocked: () => blockedPane((off) => offs.push(off)),
      bans: bansPane,
      security: securityPane,
      users: usersPane,
      reports: reportsPane,
      audit: auditPane,
      server: serverPane,
    };
    const pane = panes[name]();
    body.replaceChildren(pane);
  };
  tabBar.append(...tabs.map((name) => h('button', {
    type: 'button', class: 'tab', role: 'tab', id: `settings-tab-${name}`, 'aria-controls': 'settings-panel',
    testid: `settings-tab-${name}`, dataset: { tab: name }, onclick: () => show(name),
  }, t(`settings.tab.${name}`))));
  tabBar.addEventListener('keydown', (event) => {
    if (!['ArrowLeft', 'ArrowRight'].includes(event.key)) return;
    const buttons = [...tabBar.children];
    const i = buttons.indexOf(document.activeElement);
    const next = buttons[(i + (event.key === 'ArrowRight' ? 1 : -1) + buttons.length) % buttons.length];
    next.focus();
    show(next.dataset.tab);
  });
  dialog.addEventListener('close', () => offs.forEach((off) => off()));
  show(tabs.includes(tab) ? tab : 'password');
  return dialog;
}

function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', null, label), input,
    hint ? h('small', { class: 'field-hint' }, hint) : null,
    h('small', { class: 'field-error', testid: `${input.dataset.testid}-error`, role: 'alert' }));
}

// ---- password ------------------------------------------------------------------------------

function passwordPane() {
  const input = (name, testid, autocomplete) => h('input', { type: 'password', name, testid, autocomplete, required: true, maxlength: 256 });
  const current = input('current_password', 'password-current', 'current-password');
  const next = input('new_password', 'password-new', 'new-password');
  const again = input('confirm', 'password-confirm', 'new-password');
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'password-submit' }, t('settings.password.submit'));
  // Said once, in the pane; the form stays (emptied) for another change.
  const done = h('p', { class: 'pane-done', role: 'status', testid: 'password-changed', hidden: true }, t('settings.password.changed'));
  const form = h('form', { testid: 'password-form', novalidate: true },
    h('p', { class: 'pane-intro' }, t('settings.password.intro')),
    done,
    field(t('settings.password.current'), current),
    field(t('settings.password.new'), next, t('settings.password.hint')),
    field(t('settings.password.confirm'), again),
    h('div', { class: 'row-end' }, submit));
  const setError = (el, text) => {
    el.closest('.field').classList.toggle('has-error', Boolean(text));
    el.closest('.field').querySelector('.field-error').textContent = text || '';
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const el of [current, next, again]) setError(el, '');
    done.hidden = true;
    if (!current.value) return setError(current, t('settings.password.required'));
    if (next.value !== again.value) return setError(again, t('settings.password.mismatch'));
    submit.disabled = true;
    try {
      await actions.changePassword(current.value, next.value);
      form.reset();
      done.hidden = false;
    } catch (error) {
      if (error.code === 'invalid_credentials') setError(current, t('settings.password.wrong'));
      else if (error.code === 'rate_limited') setError(current, error.detail);
      else if (error.field?.(['current_password', 'new_password']) === 'new_password' || error.status === 422) setError(next, t('settings.password.short'));
      else setError(current, error.detail || t('settings.failed'));
    } finally {
      submit.disabled = false;
    }
  });
  queueMicrotask(() => current.focus());
  return form;
}

// ---- blocked people ------------------------------------------------------------------------

function blockedPane(keep) {
  const list = h('div', { class: 'pick-list', role: 'list', testid: 'blocked-list' });
  const render = async () => {
    const blocks = state.blockList || [];
    if (!blocks.length) {
      list.replaceChildren(h('div', { class: 'list-empty' }, t('settings.blocked.none')));
      return;
    }
    const users = await Promise.all(blocks.map((b) => actions.userById(b.user_id).catch(() => ({ id: b.user_id }))));
    list.replaceChildren(...blocks.map((b, i) => h('div', { class: 'pick-item', role: 'listitem', testid: `blocked-${b.user_id}` },
      userAvatar(users[i], { size: 'avatar-sm' }),
      h('span', { class: 'pick-text' },
        h('span', { class: 'pick-title' }, displayName(users[i])),
        h('span', { class: 'pick-sub', testid: 'blocked-until' }, b.expires_at ? t('block.until', { time: formatUntil(b.expires_at) }) : t('block.forever'))),
      h('button', { class: 'btn btn-smallall', testid: `unblock-${b.user_id}`, onclick: () => attempt(() => actions.unblockUser(b.user_id)) }, t('block.unblock')))));
  };
  keep(store.on('blocks', render));
  actions.loadBlocks().catch(() => render());
  render();
  return h('div', null, h('p', { class: 'pane-intro' }, t('settings.blocked.intro')), list);
}

// ---- bans (admins) ------------------------------------------------------------------------

function bansPane() {
  const list = h('div', { class: 'pick-list', role: 'list', testid: 'bans-list' });
  const refresh = async () => {
    try {
      const bans = await actions.listBans();
      const users = await Promise.all(bans.map((b) => actions.userById(b.user_id).catch(() => ({ id: b.user_id }))));
      list.replaceChildren(...(bans.length ? bans.map((b, i) => banRow(b, users[i], refresh)) : [h('div', { class: 'list-empty' }, t('bans.none'))]));
    } catch (e) {
      list.replaceChildren(h('div', { class: 'list-empty' }, e.detail || t('settings.failed')));
    }
  };
  refresh();
  return h('div', null, banForm(refresh), h('h3', { class: 'section-label' }, t('bans.current')), list);
}

function banRow(ban, user, refresh) {
  const until = ban.expires_at ? t('bans.until', { time: formatUntil(ban.expires_at) }) : t('bans.permanent');
  return h('div', { class: 'pick-item', role: 'listitem', testid: `ban-${ban.user_id}` },
    userAvatar(user, { size: 'avatar-sm' }),
    h('span', { class: 'pick-text' },
      h('span', { class: 'pick-title' }, displayName(user), user.username ? h('span', { class: 'pick-sub-inline' }, ` @${user.username}`) : null),
      h('span', { class: 'pick-sub' }, ban.reason ? `${until} · ${ban.reason}` : until)),
    h('button', { class: 'btn btn-smallall', testid: `ban-lift-${ban.user_id}`, onclick: () => attempt(async () => {
      await actions.liftBan(ban.user_id);
      toast(t('bans.lifted', { name: displayName(user) }));
      await refresh();
    }) }, t('bans.lift')));
}

function banForm(refresh) {
  let picked = null;
  const search = h('input', { class: 'input', type: 'search', placeholder: t('bans.searchUser'), 'aria-label': t('bans.searchUser'), testid: 'ban-user-search', autocomplete: 'off' });
  const results = h('div', { class: 'pick-list', testid: 'ban-user-results' });
  const chosen = h('div', { class: 'ban-chosen', testid: 'ban-user-chosen', 'aria-live': 'polite' });
  const duration = h('select', { name: 'duration', testid: 'ban-duration' },
    BAN_DURATIONS.map(({ key, seconds }) => h('option', { value: seconds ?? '' }, t(`bans.duration.${key}`))));
  const reason = h('input', { name: 'reason', maxlength: 500, testid: 'ban-reason' });
  const error = h('p', { class: 'field-error', role: 'alert', testid: 'ban-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn-danger', testid: 'ban-submit', disabled: true }, t('bans.ban'));
  const choose = (user) => {
    picked = user;
    chosen.replaceChildren(user ? h('span', { class: 'chip' }, `${displayName(user)} @${user.username}`) : '');
    submit.disabled = !user;
    results.replaceChildren();
  };
  let timer = 0;
  search.addEventListener('input', () => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const q = search.value.trim();
      if (!q) return results.replaceChildren();
      const users = (await actions.searchUsers(q).catch(() => [])).filter((u) => u.id !== state.me.id);
      results.replaceChildren(...users.slice(0, 6).map((u) => h('button', { type: 'button', class: 'pick-item', testid: `ban-pick-${u.id}`, onclick: () => choose(u) },
        userAvatar(u, { size: 'avatar-sm' }),
        h('span', { class: 'pick-text' }, h('span', { class: 'pick-title' }, displayName(u)), h('span', { class: 'pick-sub' }, `@${u.username}`)))));
    }, 200);
  });
  const form = h('form', { class: 'ban-form', testid: 'ban-form' },
    h('p', { class: 'pane-intro' }, t('bans.intro')),
    h('label', { class: 'field' }, h('span', null, t('bans.user')), search), results, chosen,
    h('div', { class: 'field-row' },
      h('label', { class: 'field' }, h('span', null, t('bans.durationLabel')), duration),
      h('label', { class: 'field field-grow' }, h('span', null, t('bans.reason')), reason)),
    error,
    h('div', { class: 'row-end' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!picked) return;
    error.textContent = '';
    try {
      await actions.banUser(picked.id, Number(duration.value) || null, reason.value.trim());
      toast(t('bans.banned', { name: displayName(picked) }));
      search.value = '';
      reason.value = '';
      choose(null);
      await refresh();
    } catch (e) {
      error.textContent = e.detail || t('settings.failed');
    }
  });
  return form;
}
