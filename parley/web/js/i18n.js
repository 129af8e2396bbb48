// Message catalogs, plural rules and locale-aware dates. Every string the user sees
// goes through t(); catalogs live in ./locales/<lang>.js as flat key → string maps.
//
//   t('chat.members', { count: 3 })  → "3 members" / "3 участника"
//
// A value may be a string with {name} placeholders, or a plural object keyed by the
// Intl.PluralRules category ({one, few, many, other}); `count` picks the form.

import en from './locales/en.js';
import ru from './locales/ru.js';

const CATALOGS = { en, ru };
export const LANGUAGES = [
  { code: 'en', name: 'English' },
  { code: 'ru', name: 'Русский' },
];
const STORAGE_KEY = 'parley.lang';

function detect() {
  const saved = safeGet(STORAGE_KEY);
  if (saved && CATALOGS[saved]) return saved;
  const nav = globalThis.navigator || {};
  for (const tag of nav.languages || [nav.language || 'en']) {
    const code = String(tag).toLowerCase().split('-')[0];
    if (CATALOGS[code]) return code;
  }
  return 'en';
}

function safeGet(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

let current = detect();
let rules = new Intl.PluralRules(current);
const listeners = new Set();

export const locale = () => current;

/** Switches the language, remembers it, and tells every subscriber to re-render. */
export function setLocale(code) {
  if (!CATALOGS[code] || code === current) return;
  current = code;
  rules = new Intl.PluralRules(code);
  try { localStorage.setItem(STORAGE_KEY, code); } catch { /* private mode */ }
  setPageLanguage(code);
  for (const fn of listeners) fn(code);
}

export function onLocaleChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** The string for `key` in the current language (English, then the key, as fallbacks). */
export function t(key, params = {}) {
  let value = CATALOGS[current][key] ?? CATALOGS.en[key];
  if (value === undefined) {
    console.warn(`i18n: missing key ${key}`);
    return key;
  }
  if (typeof value === 'object') {
    const count = Number(params.count ?? 0);
    value = value[rules.select(count)] ?? value.other;
  }
  return value.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/** Whether the current language (or English) has `key`. */
export const has = (key) => key in CATALOGS[current] || key in CATALOGS.en;

/**
 * The text to show for an API error: the catalog's `error.<code>` when there is one
 * (so common errors read in the interface language), else the server's `detail`.
 */
export function errorText(error) {
  if (!error) return t('error.generic');
  const key = `error.${error.code}`;
  // The current language's own text for the code: English falls back to the server's
  // detail (already English, often more precise), never another language's text.
  if (error.code && key in CATALOGS[current]) return t(key, { seconds: error.retryAfter ?? '' });
  return error.detail || error.message || t('error.generic');
}

/** Fills every [data-i18n] element's text (and data-i18n-attr="attr:key;…" attributes). */
export function translateDom(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':').map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}

/**
 * The locale dates and times are written in: the browser's own tag when it speaks the
 * interface language (en-GB writes 17:05, en-US 5:05 PM), else the interface language
 * (Russian writes 17:05).
 */
export function timeLocale() {
  const nav = globalThis.navigator || {};
  for (const tag of nav.languages || [nav.language].filter(Boolean)) {
    if (String(tag).toLowerCase().split('-')[0] === current) return String(tag);
  }
  return current;
}

// Dates and times through Intl, in the interface language.
const fmtCache = new Map();
export function dateFormat(options) {
  const tag = timeLocale();
  const id = `${tag}|${JSON.stringify(options)}`;
  let fmt = fmtCache.get(id);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat(tag, options);
    fmtCache.set(id, fmt);
  }
  return fmt;
}

// The unit tests (tests/js/) import this module in Node, where there is no page.
function setPageLanguage(code) {
  if (typeof document !== 'undefined') document.documentElement.lang = code;
}

setPageLanguage(current);
