// What the pages outside the chat share (login.html, register.html, reset.html,
// invite.html): translated text, the language menu, and same-site "next" paths.

import { LANGUAGES, locale, onLocaleChange, setLocale, translateDom } from './i18n.js';

/** Translates the page now and on every language change; fills the language menu. */
export function startPage(onLanguage = () => {}) {
  translateDom();
  onLocaleChange(() => { translateDom(); onLanguage(); });
  const select = document.getElementById('lang-select');
  if (!select) return;
  for (const { code, name } of LANGUAGES) {
    const option = document.createElement('option');
    option.value = code;
    option.textContent = name;
    select.append(option);
  }
  select.value = locale();
  select.addEventListener('change', () => setLocale(select.value));
}

/** A path on this site to go to after signing in, or null (never another origin). */
export function safeNext(value) {
  if (typeof value !== 'string' || !value.startsWith('/') || value.startsWith('//')) return null;
  if (value.includes('\\')) return null;
  return value;
}

/** The token carried in the URL's fragment (never sent to any server by the browser). */
export function fragmentToken() {
  return decodeURIComponent(location.hash.replace(/^#/, '')).trim();
}

export function show(el, text) {
  el.textContent = text;
  el.hidden = false;
}
