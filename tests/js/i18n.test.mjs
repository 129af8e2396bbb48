// Catalog lookups, placeholders and plural rules (parley/web/js/i18n.js) in English and
// Russian, and the two catalogs staying in step.

import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';

import { errorText, has, locale, onLocaleChange, setLocale, t } from '../../parley/web/js/i18n.js';
import en from '../../parley/web/js/locales/en.js';
import ru from '../../parley/web/js/locales/ru.js';

afterEach(() => setLocale('en'));

test('English is the language when nothing is saved and no browser asks otherwise', () => {
  assert.equal(locale(), 'en');
  assert.equal(t('time.today'), 'Today');
});

test('placeholders are filled; unknown ones are left as written', () => {
  assert.equal(t('typing.two', { first: 'Ann', second: 'Bob' }), 'Ann and Bob are typing…');
  assert.equal(t('typing.one', {}), '{name} is typing…');
});

test('English plurals: one for 1 only', () => {
  const members = (count) => t('chat.members', { count });
  assert.deepEqual([0, 1, 2, 5, 11, 21, 101, 111].map(members),
    ['0 members', '1 member', '2 members', '5 members', '11 members', '21 members', '101 members', '111 members']);
});

test('Russian plurals: one (1, 21, 101), few (2–4, 22), many (5–20, 11–14, 111), other (fractions)', () => {
  setLocale('ru');
  const members = (count) => t('chat.members', { count });
  assert.equal(members(1), '1 участник');
  assert.equal(members(21), '21 участник');
  assert.equal(members(101), '101 участник');
  assert.equal(members(2), '2 участника');
  assert.equal(members(3), '3 участника');
  assert.equal(members(4), '4 участника');
  assert.equal(members(22), '22 участника');
  assert.equal(members(5), '5 участников');
  assert.equal(members(0), '0 участников');
  assert.equal(members(11), '11 участников');
  assert.equal(members(12), '12 участников');
  assert.equal(members(14), '14 участников');
  assert.equal(members(111), '111 участников');
  assert.equal(members(1.5), '1.5 участника');
  assert.equal(t('presence.minutesAgo', { count: 21 }), 'был(а) 21 минуту назад');
  assert.equal(t('presence.minutesAgo', { count: 11 }), 'был(а) 11 минут назад');
});

test('switching language tells subscribers; an unknown language is ignored', () => {
  const heard = [];
  const off = onLocaleChange((code) => heard.push(code));
  setLocale('ru');
  setLocale('ru'); // no change, no call
  setLocale('xx');
  assert.equal(locale(), 'ru');
  assert.equal(t('time.today'), 'Сегодня');
  off();
  setLocale('en');
  assert.deepEqual(heard, ['ru']);
});

test('a key missing from a catalog falls back to English, then to the key', () => {
  setLocale('ru');
  assert.equal(has('no.such.key'), false);
  const warn = console.warn;
  console.warn = () => {};
  try {
    assert.equal(t('no.such.key'), 'no.such.key');
  } finally {
    console.warn = warn;
  }
});

test('errorText: the catalog text for a known code, else the server detail, else generic', () => {
  assert.equal(errorText({ code: 'network_error', detail: 'fetch failed' }), 'Cannot reach the server. Check your connection.');
  assert.equal(errorText({ code: 'something_new', detail: 'Server says no' }), 'Server says no');
  assert.equal(errorText(null), 'Something went wrong. Please try again.');
  setLocale('ru');
  assert.equal(errorText({ code: 'network_error' }), 'Нет связи с сервером. Проверьте подключение.');
});

test('both catalogs have the same keys, and the same kind of value for each', () => {
  assert.deepEqual(Object.keys(ru).sort(), Object.keys(en).sort());
  for (const key of Object.keys(en)) assert.equal(typeof ru[key], typeof en[key], key);
});

test('plural entries have the forms their language uses, and the same placeholders', () => {
  const placeholders = (s) => [...s.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();
  for (const [key, value] of Object.entries(en)) {
    if (typeof value === 'string') {
      assert.deepEqual(placeholders(ru[key]), placeholders(value), key);
      continue;
    }
    assert.deepEqual(Object.keys(value).sort(), ['one', 'other'], key);
    assert.deepEqual(Object.keys(ru[key]).sort(), ['few', 'many', 'one', 'other'], key);
    for (const form of Object.values(ru[key])) assert.deepEqual(placeholders(form), placeholders(value.other), key);
  }
});

// ---- new-user defects: times in the browser's own locale, errors by code -------------------

test('times: the browser\'s tag when it speaks the interface language, else the language', async () => {
  const { dateFormat, timeLocale } = await import('../../parley/web/js/i18n.js');
  const saved = Object.getOwnPropertyDescriptor(globalThis, 'navigator');
  const at = new Date(2024, 2, 5, 17, 5);
  const time = () => dateFormat({ hour: '2-digit', minute: '2-digit' }).format(at).replace(/\s/g, ' ');
  try {
    Object.defineProperty(globalThis, 'navigator', { configurable: true, value: { languages: ['en-GB', 'en'] } });
    assert.equal(timeLocale(), 'en-GB');
    assert.equal(time(), '17:05');
    Object.defineProperty(globalThis, 'navigator', { configurable: true, value: { languages: ['en-US'] } });
    assert.equal(time(), '05:05 PM');
    setLocale('ru'); // an English browser, a Russian interface: 24 hours
    assert.equal(timeLocale(), 'ru');
    assert.equal(time(), '17:05');
  } finally {
    if (saved) Object.defineProperty(globalThis, 'navigator', saved);
    else delete globalThis.navigator;
  }
});

test('errorText: server errors read in Russian by their code, English keeps the detail', () => {
  setLocale('ru');
  assert.equal(errorText({ code: 'invalid_credentials', detail: 'Wrong username or password' }), 'Неверное имя пользователя или пароль.');
  assert.equal(errorText({ code: 'username_taken', detail: 'This username is taken' }), 'Это имя пользователя уже занято.');
  assert.equal(errorText({ code: 'something_new', detail: 'Server says no' }), 'Server says no');
  setLocale('en');
  assert.equal(errorText({ code: 'invalid_credentials', detail: 'Wrong username or password' }), 'Wrong username or password.');
});
