// Invitations in the chat app: a chat's invite link (create, copy, revoke) in the chat
// details, and for admins the registration mode and the admin invitations.

import { api, ApiError } from '../api.js';
import { h } from '../dom.js';
import { dateFormat, t } from '../i18n.js';
import { modal } from './dialogs.js';
import { attempt, toast } from './toast.js';

const MANAGERS = ['owner', 'admin'];
const MODES = ['open', 'invite', 'closed'];

/** The chat details' "Invite link" section; nothing for a direct chat or a plain member. */
export function inviteLinkSection(chat) {
  if (chat.type === 'direct' || !MANAGERS.includes(chat.my_role)) return null;
  const box = h('div', { class: 'invite-link', testid: 'invite-link' });
  const path = `/chats/${chat.id}/invite_link`;
  const render = (link) => {
    const url = link ? h('input', { class: 'input', value: link.url, readonly: true, testid: 'invite-link-url', 'aria-label': t('reach.link.title') }) : null;
    box.replaceChildren(
      h('h3', { class: 'section-label' }, t('reach.link.title')),
      link ? url : h('p', { class: 'info-sub' }, t('reach.link.none')),
      h('div', { class: 'invite-link-actions' },
        h('button', {
          type: 'button', class: 'btn btn-small', testid: 'invite-link-create',
          onclick: () => attempt(async () => render(await api.post(path))),
        }, t(link ? 'reach.link.replace' : 'reach.link.create')),
        link ? h('button', {
          type: 'button', class: 'btn btn-small', testid: 'invite-link-copy',
          onclick: () => copy(link.url, url),
        }, t('reach.link.copy')) : null,
        link ? h('button', {
          type: 'button', class: 'btn btn-small btn-danger', testid: 'invite-link-revoke',
          onclick: () => attempt(async () => {
            await api.del(path);
            toast(t('reach.link.revoked'));
            render(null);
          }),
        }, t('reach.link.revoke')) : null));
  };
  api.get(path).then(render, (error) => {
    if (error instanceof ApiError && error.status === 404) render(null);
  });
  return box;
}

async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    input?.select(); // no clipboard permission: leave it selected for Ctrl+C
    document.execCommand?.('copy');
  }
  toast(t('reach.link.copied'));
}

/** Admins: who may register, and the invitations (create, list, delete). */
export function adminInvitesDialog() {
  const mode = h('select', { class: 'input', testid: 'registration-mode', 'aria-label': t('reach.admin.mode') },
    MODES.map((m) => h('option', { value: m }, t(`reach.admin.mode.${m}`))));
  const list = h('div', { class: 'pick-list', role: 'list', testid: 'admin-invites' });
  const email = h('input', { class: 'input', type: 'email', testid: 'admin-invite-email' });
  const uses = h('input', { class: 'input', type: 'number', min: '1', max: '100000', value: '1', testid: 'admin-invite-uses' });
  const form = h('form', { class: 'invite-form', testid: 'admin-invite-form' },
    h('label', { class: 'field' }, h('span', null, t('reach.admin.email')), email),
    h('label', { class: 'field' }, h('span', null, t('reach.admin.uses')), uses),
    h('button', { type: 'submit', class: 'btn btn-primary', testid: 'admin-invite-create' }, t('reach.admin.create')));
  const dialog = modal({
    title: t('reach.admin.title'),
    testid: 'admin-invites-dialog',
    body: [h('label', { class: 'field' }, h('span', null, t('reach.admin.mode')), mode), form, list],
  });
  const refresh = async () => {
    const invites = (await attempt(() => api.get('/admin/invites'))) || [];
    list.replaceChildren(...(invites.length ? invites.map((invite) => inviteRow(invite, refresh)) : [h('p', { class: 'info-sub' }, t('reach.admin.none'))]));
  };
  attempt(async () => { mode.value = (await api.get('/admin/settings')).registration; });
  mode.addEventListener('change', () => attempt(async () => {
    await api.patch('/admin/settings', { registration: mode.value });
    toast(t('reach.admin.saved'));
  }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = { max_uses: Math.max(1, Number(uses.value) || 1) };
    if (email.value.trim()) body.email = email.value.trim();
    attempt(async () => {
      await api.post('/admin/invites', body);
      email.value = '';
      await refresh();
    });
  });
  refresh();
  return dialog;
}

function inviteRow(invite, refresh) {
  const until = invite.expires_at ? t('reach.admin.expires', { date: dateFormat({ dateStyle: 'medium' }).format(new Date(invite.expires_at)) }) : '';
  const about = [invite.email, t('reach.admin.left', { count: invite.uses_left ?? 0 }), until].filter(Boolean).join(' · ');
  const url = h('input', { class: 'input', value: invite.url, readonly: true, 'aria-label': invite.email || invite.code });
  return h('div', { class: 'pick-item invite-row', role: 'listitem', testid: 'admin-invite' },
    h('div', { class: 'invite-row-main' }, url, h('small', { class: 'info-sub' }, about)),
    h('button', { type: 'button', class: 'btn btn-small', onclick: () => copy(invite.url, url) }, t('reach.link.copy')),
    h('button', {
      type: 'button', class: 'btn btn-small btn-danger', testid: 'admin-invite-delete',
      onclick: () => attempt(async () => { await api.del(`/admin/invites/${encodeURIComponent(invite.code)}`); await refresh(); }),
    }, t('common.delete')));
}
