// Short notices at the bottom of the screen, and the failures of actions.

import { h } from '../dom.js';
import { errorText } from '../i18n.js';

/** Where a notice shows: inside the topmost open dialog (the page behind it is inert). */
function toastBox() {
  const dialogs = document.querySelectorAll('dialog[open]');
  const host = dialogs[dialogs.length - 1];
  if (!host) return document.getElementById('toasts');
  let box = host.querySelector(':scope > .toasts');
  if (!box) {
    box = h('div', { class: 'toasts', 'aria-live': 'assertive' });
    host.append(box);
  }
  return box;
}

export function toast(message, { error = false, ms = 4000 } = {}) {
  const box = toastBox();
  if (!box) return;
  const el = h('div', { class: `toast${error ? ' is-error' : ''}`, role: error ? 'alert' : 'status', testid: 'toast' }, message);
  box.append(el);
  setTimeout(() => el.remove(), ms);
}

/** Run an async action; show its error (the server's `detail`) as a toast. */
export async function attempt(fn) {
  try {
    return await fn();
  } catch (error) {
    toast(errorText(error), { error: true });
    return undefined;
  }
}

/** On the form's submit, run the async `action`; its error shows in `error` (emptied on
 * each submit) as `failure` words it. */
export function onSubmit(form, error, action, failure = errorText) {
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    try {
      await action();
    } catch (e) {
      error.textContent = failure(e);
    }
  });
}
