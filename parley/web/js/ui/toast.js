// Short notices at the bottom of the screen.

import { h } from '../dom.js';
import { errorText } from '../i18n.js';

export function toast(message, { error = false, ms = 4000 } = {}) {
  const box = document.getElementById('toasts');
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
