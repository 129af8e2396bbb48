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

// Shows the section `name` and serves its form `name-form`: a new submit hides the last
// answer; `check(form)` is a refusal to show (or null), then `send(form)` runs with the
// button busy; it returns true when the page is leaving (the button stays busy).
function serveForm(name, { check, send }) {
  document.getElementById(name).hidden = false;
  const form = document.getElementById(`${name}-form`);
  const error = form.querySelector('.form-error');
  const submit = form.querySelector('button[type="submit"]');
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const answer of form.querySelectorAll('.form-error, .form-note')) answer.hidden = true;
    const refusal = check(form);
    if (refusal) {
      show(error, refusal);
      return;
    }
    busy(submit, true);
    try {
      if (await send(form)) return;
    } catch (e) {
      show(error, failure(e));
    }
    busy(submit, false);
  });
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
  serveForm('reset', {
    check: (form) => (form.elements.password.value.length < 8 ? t('auth.error.password') : null),
    async send(form) {
      const password = form.elements.password.value;
      await request('POST', '/password/reset', { json: { token, new_password: password }, auth: false });
      forgetSession(); // every session ended with the reset
      location.replace('/login?reset=1');
      return true;
    },
  });
} else {
  serveForm('forgot', {
    check(form) {
      const email = form.elements.email.value.trim();
      return !form.elements.email.checkValidity() || !email ? t('auth.error.email') : null;
    },
    async send(form) {
      const email = form.elements.email.value.trim();
      await request('POST', '/password/forgot', { json: { email }, auth: false });
      show(form.querySelector('.form-note'), t('reach.forgot.sent', { email }));
      return false;
    },
  });
}
