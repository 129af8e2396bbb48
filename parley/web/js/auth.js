// Sign-in and registration pages: submit the form, show the server's errors by the field.

import { ApiError, hasSessionHint, rememberSession, request } from './api.js';
import { safeNext, startPage } from './recovery.js';
import { errorText, t } from './i18n.js';

startPage();

const form = document.getElementById('auth-form');
// Reach: `?invite=CODE` (an admin's invitation) is sent with the registration; `?next=/path`
// (an invitation page) is where a successful sign-in leads.
const params = new URLSearchParams(location.search);
const nextPath = safeNext(params.get('next'));
const mode = form.dataset.mode; // "login" | "register"
const FIELDS = mode === 'login' ? ['username', 'password'] : ['username', 'email', 'display_name', 'password'];
const formError = form.querySelector('.form-error');
const submit = form.querySelector('button[type="submit"]');

function setFieldError(name, message) {
  const input = form.elements[name];
  const label = input.closest('.field');
  label.classList.toggle('has-error', Boolean(message));
  label.querySelector('.field-error').textContent = message || '';
  input.setAttribute('aria-invalid', message ? 'true' : 'false');
}

function clearErrors() {
  for (const name of FIELDS) setFieldError(name, '');
  formError.hidden = true;
  formError.textContent = '';
}

function showFormError(message) {
  formError.textContent = message;
  formError.hidden = false;
}

/** Browser-side checks mirror the contract so most mistakes never reach the server. */
function checkLocally() {
  let ok = true;
  for (const name of FIELDS) {
    const input = form.elements[name];
    if (input.checkValidity()) continue;
    ok = false;
    const v = input.validity;
    let message = input.validationMessage;
    if (v.valueMissing) message = t('auth.error.required');
    else if (name === 'username' && (v.patternMismatch || v.tooShort)) message = t('auth.error.username');
    else if (name === 'password' && v.tooShort) message = t('auth.error.password');
    else if (name === 'email' && v.typeMismatch) message = t('auth.error.email');
    setFieldError(name, message);
  }
  return ok;
}

function payload() {
  const data = {};
  for (const name of FIELDS) {
    const value = form.elements[name].value;
    data[name] = name === 'password' ? value : value.trim();
  }
  if (mode === 'register' && !data.display_name) delete data.display_name;
  if (mode === 'register' && params.get('invite')) data.invite = params.get('invite'); // reach
  return data;
}

function showServerError(error) {
  if (!(error instanceof ApiError)) {
    showFormError(t('error.generic'));
    return;
  }
  const field = error.status === 401 || error.status === 429 ? null : error.field(FIELDS);
  if (field) setFieldError(field, errorText(error));
  else showFormError(errorText(error));
  const focus = form.elements[field || (error.status === 401 ? 'password' : FIELDS[0])];
  focus.focus();
  if (error.status === 401) focus.select();
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors();
  if (!checkLocally()) {
    form.querySelector('[aria-invalid="true"]')?.focus();
    return;
  }
  submit.disabled = true;
  submit.classList.add('is-busy');
  try {
    const answer = await request('POST', `/${mode}`, { json: payload(), auth: false });
    if (answer?.mfa_required) {
      secondStep(answer.mfa_token);
      return;
    }
    rememberSession();
    // A new account starts in #general with a short welcome (see app.js).
    if (mode === 'register') sessionStorage.setItem('parley.welcome', '1');
    location.replace(nextPath || '/chat');
  } catch (error) {
    showServerError(error);
    submit.disabled = false;
    submit.classList.remove('is-busy');
  }
});

form.addEventListener('input', (event) => {
  const name = event.target.name;
  if (name && event.target.closest('.field')?.classList.contains('has-error')) setFieldError(name, '');
});

// Already signed in: skip the form. Only the hint left by a sign-in is checked, so a
// signed-out visitor's page makes no request that fails (no 401 in the console); if the
// session has ended meanwhile, the chat page clears the hint and comes back here.
if (hasSessionHint()) location.replace(nextPath || '/chat');

// The second step of a two-factor sign-in: a code from the app, or a recovery code.
function secondStep(mfaToken) {
  const mfa = document.getElementById('mfa-form');
  const code = mfa.elements.code;
  const label = mfa.querySelector('[data-testid="mfa-label"]');
  const toggle = mfa.querySelector('[data-testid="mfa-use-recovery"]');
  const error = mfa.querySelector('.form-error');
  const button = mfa.querySelector('button[type="submit"]');
  let recovery = false;
  form.hidden = true;
  mfa.hidden = false;
  code.focus();
  toggle.addEventListener('click', () => {
    recovery = !recovery;
    label.textContent = t(recovery ? 'trust.login.recovery' : 'trust.login.code');
    toggle.textContent = t(recovery ? 'trust.login.useCode' : 'trust.login.useRecovery');
    code.inputMode = recovery ? 'text' : 'numeric';
    code.value = '';
    code.focus();
  });
  mfa.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.hidden = true;
    const value = code.value.trim();
    if (!value) return;
    button.disabled = true;
    try {
      const json = { mfa_token: mfaToken, [recovery ? 'recovery_code' : 'code']: value };
      await request('POST', '/login/2fa', { json, auth: false });
      rememberSession();
      location.replace('/chat');
    } catch (e) {
      error.textContent = e instanceof ApiError && e.code === 'invalid_code' ? t('trust.login.wrong') : errorText(e);
      error.hidden = false;
      code.select();
      if (e instanceof ApiError && e.code === 'unauthorized') location.replace('/login');
    } finally {
      button.disabled = false;
    }
  });
}
