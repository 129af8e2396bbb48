// /invite/CODE: what the invitation leads to (public preview), then joining the chat, or
// registering with an admin's invitation.

import { ApiError, hasSessionHint, request } from './api.js';
import { errorText, t } from './i18n.js';
import { show, startPage } from './recovery.js';

const code = decodeURIComponent(location.pathname.split('/')[2] || '');
const heading = document.querySelector('[data-testid="invite-heading"]');
const detail = document.querySelector('[data-testid="invite-detail"]');
const error = document.querySelector('[data-testid="invite-error"]');
const accept = document.querySelector('[data-testid="invite-accept"]');
const register = document.querySelector('[data-testid="invite-register"]');
const login = document.querySelector('[data-testid="invite-login"]');
let preview = null;

startPage(render);
detail.removeAttribute('data-i18n');
heading.removeAttribute('data-i18n');
load();

async function load() {
  try {
    preview = await request('GET', `/invites/${encodeURIComponent(code)}`, { auth: false });
  } catch (e) {
    preview = { chat: null, valid: false };
    show(error, e instanceof ApiError ? errorText(e) : t('error.generic'));
  }
  render();
}

function render() {
  if (!preview) return;
  const here = `/invite/${encodeURIComponent(code)}`;
  const signedIn = hasSessionHint();
  accept.hidden = register.hidden = login.hidden = true;
  if (!preview.valid) {
    heading.textContent = t('reach.invite.heading');
    detail.textContent = t('error.invite_invalid');
    return;
  }
  const { chat } = preview;
  if (chat) {
    heading.textContent = chat.title;
    detail.textContent = t('reach.invite.chat', { title: chat.title, count: chat.member_count });
    if (signedIn) {
      accept.hidden = false;
    } else {
      register.href = `/register?next=${encodeURIComponent(here)}`;
      login.href = `/login?next=${encodeURIComponent(here)}`;
      register.hidden = login.hidden = false;
    }
  } else {
    heading.textContent = t('reach.invite.heading');
    detail.textContent = t('reach.invite.server');
    register.href = `/register?invite=${encodeURIComponent(code)}`;
    register.hidden = false;
  }
}

accept.addEventListener('click', async () => {
  error.hidden = true;
  accept.disabled = true;
  try {
    const chat = await request('POST', `/invites/${encodeURIComponent(code)}/accept`, { auth: true });
    location.replace(`/chat#${chat.id}`);
  } catch (e) {
    show(error, e instanceof ApiError ? errorText(e) : t('error.generic'));
    accept.disabled = false;
  }
});
