// Trust screens: the Security pane (two-factor sign-in, my sessions), the admin panes
// (users, reports, audit log) and the "Report" dialog of a message.

import { api } from '../api.js';
import { h } from '../dom.js';
import { displayName } from '../format.js';
import { dateFormat, errorText, t } from '../i18n.js';
import * as store from '../state.js';
import { modal } from './dialogs.js';
import { attempt, onSubmit, toast } from './toast.js';

const { state } = store;
const when = (iso) => (iso ? dateFormat({ dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso)) : '—');
const empty = (text) => h('div', { class: 'list-empty' }, text);
const failed = (list, e) => list.replaceChildren(empty(e?.detail || t('settings.failed')));

// ---- security: two-factor and sessions -----------------------------------------------------

export function securityPane() {
  const twoFactor = h('section', { class: 'trust-section', testid: 'twofactor-section' });
  const sessions = h('section', { class: 'trust-section', testid: 'sessions-section' });
  renderTwoFactor(twoFactor);
  renderSessions(sessions);
  return h('div', null, twoFactor, sessions);
}

/**
 * PARLEY_REQUIRE_2FA: a user in scope without two-factor may only set it up, so the page
 * shows just that (no chats, no socket) until it is on; then the chat loads (`onDone`).
 */
export function twoFactorGate({ onDone, onSignOut }) {
  const box = h('section', { class: 'trust-section', testid: 'twofactor-section' });
  const card = h('main', { class: 'auth-card twofactor-gate', testid: 'twofactor-gate' },
    h('div', { class: 'auth-brand' }, h('img', { src: '/static/favicon.svg', alt: '', width: 40, height: 40 }), h('span', null, 'Parley')),
    h('h1', null, t('trust.gate.title')),
    h('p', { class: 'auth-sub', testid: 'twofactor-gate-intro' }, t('trust.gate.intro')),
    box,
    h('p', { class: 'auth-switch' }, h('button', { type: 'button', class: 'link-btn', testid: 'twofactor-gate-logout', onclick: onSignOut }, t('menu.logout'))));
  renderTwoFactor(box, { onDone });
  return card;
}

async function renderTwoFactor(box, { onDone } = {}) {
  let me = state.me || {};
  try { me = await api.get('/profile'); } catch { /* shown from what is known */ }
  const title = h('h3', { class: 'section-label' }, t('trust.2fa.title'));
  if (me.two_factor && onDone) {
    onDone();
    return;
  }
  if (me.two_factor) {
    box.replaceChildren(title, h('p', { class: 'pane-intro', testid: 'twofactor-on' }, t('trust.2fa.on')), disableForm(box));
    return;
  }
  const start = h('button', { type: 'button', class: 'btn btn-primary', testid: 'twofactor-setup', onclick: () => attempt(async () => {
    const setup = await api.post('/2fa/setup');
    box.replaceChildren(title, enableForm(box, setup, onDone));
  }) }, t('trust.2fa.setup'));
  box.replaceChildren(title, h('p', { class: 'pane-intro', testid: 'twofactor-off' }, t('trust.2fa.off')), h('div', { class: 'row-end' }, start));
}

function codeInput(testid) {
  return h('input', { name: 'code', testid, inputmode: 'numeric', autocomplete: 'one-time-code', maxlength: 32, required: true, class: 'input' });
}

function enableForm(box, setup, onDone) {
  const code = codeInput('twofactor-code');
  const error = h('p', { class: 'field-error', role: 'alert', testid: 'twofactor-error' });
  const form = h('form', { testid: 'twofactor-enable', novalidate: true },
    h('p', { class: 'pane-intro' }, t('trust.2fa.scan')),
    h('img', { class: 'qr', src: setup.qr_data_url, alt: t('trust.2fa.qrAlt'), width: 200, height: 200, testid: 'twofactor-qr' }),
    h('p', { class: 'pick-sub' }, t('trust.2fa.manual'), ' ', h('code', { testid: 'twofactor-secret' }, setup.secret)),
    h('label', { class: 'field' }, h('span', null, t('trust.2fa.code')), code),
    error,
    h('div', { class: 'row-end' }, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'twofactor-enable-submit' }, t('trust.2fa.enable'))));
  onSubmit(form, error, async () => {
    const { recovery_codes: codes } = await api.post('/2fa/enable', { code: code.value.trim() });
    store.setMe({ two_factor: true });
    box.replaceChildren(h('h3', { class: 'section-label' }, t('trust.2fa.title')),
      h('p', { class: 'pane-done', role: 'status' }, t('trust.2fa.enabled')),
      h('p', { class: 'pane-intro' }, t('trust.2fa.saveCodes')),
      h('ol', { class: 'recovery-codes', testid: 'recovery-codes' }, codes.map((c) => h('li', null, h('code', null, c)))),
      h('div', { class: 'row-end' }, h('button', { type: 'button', class: 'btn', testid: 'recovery-done', onclick: () => (onDone ? onDone() : renderTwoFactor(box)) }, t('trust.2fa.saved'))));
  }, (e) => (e.code === 'invalid_code' ? t('trust.2fa.wrongCode') : errorText(e)));
  queueMicrotask(() => code.focus());
  return form;
}

function disableForm(box) {
  const password = h('input', { type: 'password', name: 'password', testid: 'twofactor-password', autocomplete: 'current-password', class: 'input', required: true });
  const code = codeInput('twofactor-disable-code');
  const error = h('p', { class: 'field-error', role: 'alert', testid: 'twofactor-error' });
  const form = h('form', { testid: 'twofactor-disable', novalidate: true },
    h('div', { class: 'field-row' },
      h('label', { class: 'field field-grow' }, h('span', null, t('settings.password.current')), password),
      h('label', { class: 'field field-grow' }, h('span', null, t('trust.2fa.code')), code)),
    error,
    h('div', { class: 'row-end' }, h('button', { type: 'submit', class: 'btn btn-danger', testid: 'twofactor-disable-submit' }, t('trust.2fa.disable'))));
  onSubmit(form, error, async () => {
    await api.post('/2fa/disable', { password: password.value, code: code.value.trim() });
    toast(t('trust.2fa.disabled'));
    renderTwoFactor(box);
  }, (e) => (e.code === 'invalid_code' ? t('trust.2fa.wrongCode') : e.code === 'invalid_credentials' ? t('settings.password.wrong') : errorText(e)));
  return form;
}

async function renderSessions(box) {
  const list = h('div', { class: 'pick-list', role: 'list', testid: 'sessions-list' });
  const endOthers = h('button', { type: 'button', class: 'btn btn-small', testid: 'sessions-end-others', onclick: () => attempt(async () => {
    await api.del('/sessions');
    toast(t('trust.sessions.endedOthers'));
    await refresh();
  }) }, t('trust.sessions.endOthers'));
  box.replaceChildren(h('h3', { class: 'section-label' }, t('trust.sessions.title')),
    h('p', { class: 'pane-intro' }, t('trust.sessions.intro')), list, h('div', { class: 'row-end' }, endOthers));
  const refresh = async () => {
    try {
      const rows = await api.get('/sessions');
      endOthers.hidden = rows.length < 2;
      list.replaceChildren(...rows.map((s) => h('div', { class: 'pick-item', role: 'listitem', testid: `session-${s.id}` },
        h('span', { class: 'pick-text' },
          h('span', { class: 'pick-title' }, s.device === 'Unknown device' ? t('trust.sessions.unknown') : s.device,
            s.current ? h('span', { class: 'badge', testid: 'session-current' }, t('trust.sessions.current')) : null),
          h('span', { class: 'pick-sub' }, t('trust.sessions.detail', { ip: s.ip || '—', time: when(s.last_used_at) }))),
        s.current ? null : h('button', { class: 'btn btn-small', testid: `session-end-${s.id}`, onclick: () => attempt(async () => {
          await api.del(`/sessions/${s.id}`);
          toast(t('trust.sessions.ended'));
          await refresh();
        }) }, t('trust.sessions.end')))));
    } catch (e) {
      failed(list, e);
    }
  };
  await refresh();
}

// ---- admin: users --------------------------------------------------------------------------

export function usersPane() {
  const search = h('input', { class: 'input', type: 'search', placeholder: t('admin.users.search'), 'aria-label': t('admin.users.search'), testid: 'admin-users-search', autocomplete: 'off' });
  const list = h('div', { class: 'pick-list', role: 'list', testid: 'admin-users-list' });
  const refresh = async () => {
    try {
      const users = await api.get('/admin/users', { q: search.value.trim(), limit: 50 });
      list.replaceChildren(...(users.length ? users.map((u) => userRow(u, refresh)) : [empty(t('admin.users.none'))]));
    } catch (e) {
      failed(list, e);
    }
  };
  let timer = 0;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(refresh, 200); });
  refresh();
  return h('div', null, h('label', { class: 'field' }, h('span', null, t('admin.users.searchLabel')), search), list);
}

function userRow(user, refresh) {
  const act = (testid, label, call, cls = 'btn btn-small') => h('button', { class: cls, testid: `${testid}-${user.id}`, onclick: () => attempt(async () => {
    await call();
    await refresh();
  }) }, label);
  const self = user.id === state.me?.id;
  const badges = [
    user.is_admin ? h('span', { class: 'badge' }, t('admin.users.admin')) : null,
    user.two_factor ? h('span', { class: 'badge' }, t('admin.users.twoFactor')) : null,
    user.deactivated ? h('span', { class: 'badge badge-danger', testid: 'user-deactivated' }, t('admin.users.deactivated')) : null,
  ];
  return h('div', { class: 'pick-item admin-user', role: 'listitem', testid: `admin-user-${user.id}` },
    h('span', { class: 'pick-text' },
      h('span', { class: 'pick-title' }, displayName(user), h('span', { class: 'pick-sub-inline' }, ` @${user.username}`), ...badges),
      h('span', { class: 'pick-sub' }, t('admin.users.detail', { email: user.email || '', time: when(user.created_at) }))),
    h('span', { class: 'row-actions' },
      self ? null : act('admin-toggle', user.is_admin ? t('admin.users.revoke') : t('admin.users.grant'),
        () => api.patch(`/admin/users/${user.id}`, { is_admin: !user.is_admin })),
      user.two_factor ? act('admin-reset-2fa', t('admin.users.reset2fa'), () => api.post(`/admin/users/${user.id}/2fa/reset`)) : null,
      self ? null : user.deactivated
        ? act('admin-reactivate', t('admin.users.reactivate'), () => api.post(`/admin/users/${user.id}/reactivate`))
        : act('admin-deactivate', t('admin.users.deactivate'), () => api.post(`/admin/users/${user.id}/deactivate`), 'btn btn-small btn-danger')));
}

// ---- admin: reports ------------------------------------------------------------------------

export function reportsPane() {
  const status = h('select', { testid: 'reports-status', 'aria-label': t('admin.reports.status') },
    ['open', 'resolved'].map((s) => h('option', { value: s }, t(`admin.reports.${s}`))));
  const list = h('div', { class: 'pick-list', role: 'list', testid: 'reports-list' });
  const refresh = async () => {
    try {
      const reports = await api.get('/admin/reports', { status: status.value });
      list.replaceChildren(...(reports.length ? reports.map((r) => reportRow(r, refresh)) : [empty(t('admin.reports.none'))]));
    } catch (e) {
      failed(list, e);
    }
  };
  status.addEventListener('change', refresh);
  refresh();
  return h('div', null, h('label', { class: 'field' }, h('span', null, t('admin.reports.status')), status), list);
}

function reportRow(report, refresh) {
  const message = report.message || {};
  const resolve = (action, label, cls = 'btn btn-small') => h('button', { class: cls, testid: `report-${action}-${report.id}`, onclick: () => attempt(async () => {
    await api.post(`/admin/reports/${report.id}/resolve`, { action });
    toast(t('admin.reports.done'));
    await refresh();
  }) }, label);
  const text = message.deleted ? t('messages.deleted') : message.content || '';
  return h('div', { class: 'pick-item admin-report', role: 'listitem', testid: `report-${report.id}` },
    h('span', { class: 'pick-text' },
      h('span', { class: 'pick-title' }, t('admin.reports.by', { reporter: displayName(report.reporter || {}), sender: displayName(message.sender || {}) })),
      h('span', { class: 'pick-sub report-reason' }, `${t('admin.reports.reason')}: ${report.reason}`),
      h('blockquote', { class: 'report-message', testid: 'report-message' }, text),
      report.status === 'resolved' ? h('span', { class: 'pick-sub' }, t(`admin.reports.did.${report.resolution}`)) : null),
    report.status === 'open' ? h('span', { class: 'row-actions' },
      resolve('dismiss', t('admin.reports.dismiss')),
      resolve('delete_message', t('admin.reports.delete')),
      resolve('ban_user', t('admin.reports.ban'), 'btn btn-small btn-danger')) : null);
}

// ---- admin: audit log ----------------------------------------------------------------------

const ACTIONS = ['user.ban', 'user.unban', 'user.deactivate', 'user.reactivate', 'user.admin', 'user.2fa_reset',
  'report.resolve', 'message.delete', 'chat.role', 'chat.owner', 'chat.retention', 'chat.remove_member', 'chat.invite_link',
  'chat.invite_link_revoke', 'invite.create', 'invite.delete', 'settings.update', 'bot.token'];

export function auditPane() {
  const action = h('select', { testid: 'audit-action', 'aria-label': t('admin.audit.action') },
    h('option', { value: '' }, t('admin.audit.all')), ACTIONS.map((a) => h('option', { value: a }, a)));
  const actor = h('input', { class: 'input', type: 'search', testid: 'audit-actor', placeholder: t('admin.audit.actorHint'), autocomplete: 'off' });
  const list = h('div', { class: 'pick-list', role: 'list', testid: 'audit-list' });
  const refresh = async () => {
    try {
      const query = { action: action.value, limit: 100 };
      const name = actor.value.trim().replace(/^@/, '').toLowerCase();
      if (name) {
        const found = (await api.get('/admin/users', { q: name, limit: 20 })).find((u) => u.username.toLowerCase() === name);
        if (!found) return list.replaceChildren(empty(t('admin.audit.none')));
        query.actor = found.id;
      }
      const entries = await api.get('/admin/audit', query);
      list.replaceChildren(...(entries.length ? entries.map(auditRow) : [empty(t('admin.audit.none'))]));
    } catch (e) {
      failed(list, e);
    }
  };
  let timer = 0;
  action.addEventListener('change', refresh);
  actor.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(refresh, 250); });
  refresh();
  return h('div', null,
    h('div', { class: 'field-row' },
      h('label', { class: 'field' }, h('span', null, t('admin.audit.action')), action),
      h('label', { class: 'field field-grow' }, h('span', null, t('admin.audit.actor')), actor)),
    list);
}

/** A detail's value: a change as "from → to", a list or an object as JSON. */
function detailText(value) {
  if (value && typeof value === 'object' && 'from' in value && 'to' in value) return `${detailText(value.from)} → ${detailText(value.to)}`;
  if (value && typeof value === 'object') return JSON.stringify(value);
  return String(value ?? '—');
}

function auditRow(entry) {
  const details = Object.entries(entry.details || {}).map(([k, v]) => `${k}: ${detailText(v)}`).join(', ');
  return h('div', { class: 'pick-item', role: 'listitem', testid: `audit-${entry.id}` },
    h('span', { class: 'pick-text' },
      h('span', { class: 'pick-title' }, h('code', { testid: 'audit-entry-action' }, entry.action), ' ',
        t('admin.audit.line', { actor: entry.actor ? `@${entry.actor.username}` : t('admin.audit.system'), target: entry.target_id == null ? entry.target_type : `${entry.target_type} #${entry.target_id}` })),
      h('span', { class: 'pick-sub' }, details ? `${when(entry.at)} · ${details}` : when(entry.at))));
}

// ---- admin: server settings ---------------------------------------------------------------

/** Server-wide retention: the admin's number of days, or the environment's (PARLEY_RETENTION_DAYS). */
export function serverPane() {
  const inherit = h('input', { type: 'checkbox', testid: 'server-retention-inherit' });
  const days = h('input', { class: 'input', type: 'number', min: '0', max: '36500', step: 'any', testid: 'server-retention-days', 'aria-label': t('admin.server.days') });
  const hint = h('span', { class: 'pick-sub', testid: 'server-retention-default' });
  const error = h('p', { class: 'field-error', role: 'alert', testid: 'server-retention-error' });
  const save = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'server-retention-save' }, t('admin.server.save'));
  const form = h('form', { testid: 'server-retention-form', novalidate: true },
    h('h3', { class: 'section-label' }, t('admin.server.retention')),
    h('p', { class: 'pane-intro' }, t('admin.server.intro')),
    h('label', { class: 'radio' }, inherit, h('span', null, t('admin.server.inherit'), ' ', hint)),
    h('label', { class: 'field' }, h('span', null, t('admin.server.days')), days),
    error, h('div', { class: 'row-end' }, save));
  const show = (settings) => {
    const env = settings.default_retention_days;
    hint.textContent = env > 0 ? t('admin.server.envDays', { days: env }) : t('admin.server.envForever');
    inherit.checked = settings.retention_days == null;
    days.value = String(settings.retention_days ?? env);
    days.disabled = inherit.checked;
  };
  inherit.addEventListener('change', () => { days.disabled = inherit.checked; });
  onSubmit(form, error, async () => {
    const value = Number(days.value);
    if (!inherit.checked && (days.value.trim() === '' || !(value >= 0 && value <= 36500))) {
      error.textContent = t('admin.server.invalid');
      return;
    }
    show(await api.patch('/admin/settings', { retention_days: inherit.checked ? null : value }));
    toast(t('admin.server.saved'));
  });
  api.get('/admin/settings').then(show, (e) => { error.textContent = errorText(e); });
  return form;
}

// ---- the "Report" action of a message -------------------------------------------------------

export function reportDialog(msg) {
  const reason = h('textarea', { name: 'reason', maxlength: 500, rows: 3, required: true, testid: 'report-reason', class: 'input' });
  const error = h('p', { class: 'field-error', role: 'alert', testid: 'report-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn-danger', testid: 'report-submit' }, t('report.submit'));
  const form = h('form', { testid: 'report-form', novalidate: true },
    h('p', { class: 'pane-intro' }, t('report.intro')),
    h('blockquote', { class: 'report-message' }, msg.content),
    h('label', { class: 'field' }, h('span', null, t('report.reason')), reason),
    error, h('div', { class: 'row-end' }, submit));
  const dialog = modal({ title: t('report.title'), testid: 'report-dialog', body: form });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!reason.value.trim()) return (error.textContent = t('report.required'));
    submit.disabled = true;
    try {
      await api.post(`/messages/${msg.id}/report`, { reason: reason.value.trim() });
      toast(t('report.sent'));
      dialog.close();
    } catch (e) {
      error.textContent = e.code === 'already_reported' ? t('report.already') : errorText(e);
      submit.disabled = false;
    }
  });
  queueMicrotask(() => reason.focus());
  return dialog;
}
