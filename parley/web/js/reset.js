// /reset-password: ask for a reset link, or (with #TOKEN) choose the new password.
// /verify-email#TOKEN: confirm the address and say how it went.

import { ApiError, forgetSession, request } from './api.js';
import { errorText, t } from './i18n.js';
import { fragmentToken, show, startPage } from './recovery.js';

startPage();

const token = fragmentToken();
// The token leaves the address bar (and the history) once read.
if (token) history.replaceState(null, '', location.pathname);
// A link opened where this page already is changes only the fragment: start again with it.
addEventListener('hashchange', () => location.reload());

function failure(error) {
  return error instanceof ApiError ? errorText(error) : t('error.generic');
}

function busy(button, on) {
  button.disabled = on;
  button.classList.toggle('is-busy', on);
}

if (location.pathname === '/verify-email') {
  const section = document.getElementById('verify');
  section.hidden = false;
  const result = section.querySelector('[data-testid="verify-result"]');
  result.removeAttribute('data-i18n');
  if (!token) {
    result.textContent = t('error.token_invalid');
  } else {
    request('POST', '/email/verify', { json: { token }, auth: false })
      .then((user) => { result.textContent = t('reach.verify.done', { email: user.email }); })
      .catch((error) => { result.textContent = failure(error); });
  }
} else if (token) {
  const section = document.getElementById('reset');
  section.hidden = false;
  const form = document.getElementById('reset-form');
  const error = form.querySelector('.form-error');
  const submit = form.querySelector('button[type="submit"]');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const password = form.elements.password.value;
    if (password.length < 8) {
      show(error, t('auth.error.password'));
      return;
    }
    busy(submit, true);
    try {
      await request('POST', '/password/reset', { json: { token, new_password: password }, auth: false });
      forgetSession(); // every session ended with the reset
      location.replace('/login?reset=1');
    } catch (e) {
      show(error, failure(e));
      busy(submit, false);
    }
  });
} else {
  const section = document.getElementById('forgot');
  section.hidden = false;
  const form = document.getElementById('forgot-form');
  const error = form.querySelector('.form-error');
  const sent = form.querySelector('.form-note');
  const submit = form.querySelector('button[type="submit"]');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    sent.hidden = true;
    const email = form.elements.email.value.trim();
    if (!form.elements.email.checkValidity() || !email) {
      show(error, t('auth.error.email'));
      return;
    }
    busy(submit, true);
    try {
      await request('POST', '/password/forgot', { json: { email }, auth: false });
      show(sent, t('reach.forgot.sent', { email }));
    } catch (e) {
      show(error, failure(e));
    }
    busy(submit, false);
  });
}
