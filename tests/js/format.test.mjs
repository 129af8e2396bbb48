// Times, days, sizes and names as the interface shows them (parley/web/js/format.js), in
// English and Russian. "Now" is fixed with the test runner's mocked Date; times are built
// in local time, so the expectations hold in any time zone.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';

import {
  colorFor, dayKey, displayName, formatDay, formatFull, formatLastSeen, formatShort, formatSize,
  formatTime, initials, isImage,
} from '../../parley/web/js/format.js';
import { setLocale } from '../../parley/web/js/i18n.js';

const NOW = new Date(2024, 2, 14, 15, 30); // Thursday 14 March 2024, 15:30 local time
const at = (...parts) => new Date(...parts).toISOString();
const ago = (ms) => new Date(NOW.getTime() - ms).toISOString();
const MINUTE = 60000;
const DAY = 86400000;
// ICU puts a narrow no-break space before "PM": compare with plain spaces.
const plain = (s) => s.replace(/\s/g, ' ');

beforeEach(() => mock.timers.enable({ apis: ['Date'], now: NOW.getTime() }));
afterEach(() => {
  mock.timers.reset();
  setLocale('en');
});

test('formatTime: hours and minutes in the interface language', () => {
  assert.equal(plain(formatTime(at(2024, 2, 5, 14, 7))), '02:07 PM');
  setLocale('ru');
  assert.equal(formatTime(at(2024, 2, 5, 14, 7)), '14:07');
  assert.equal(formatTime(at(2024, 2, 5, 9, 5)), '09:05');
});

test('formatFull: the whole date and time, for tooltips', () => {
  assert.equal(plain(formatFull(at(2024, 2, 5, 14, 7))), 'Tuesday, March 5, 2024 at 2:07 PM');
  setLocale('ru');
  assert.equal(plain(formatFull(at(2024, 2, 5, 14, 7))), 'вторник, 5 марта 2024 г. в 14:07');
});

test('dayKey: the same for two times of one local day, different across midnight', () => {
  assert.equal(dayKey(at(2024, 2, 5, 0, 1)), dayKey(at(2024, 2, 5, 23, 59)));
  assert.notEqual(dayKey(at(2024, 2, 5, 23, 59)), dayKey(at(2024, 2, 6, 0, 0)));
});

test('formatDay: Today, Yesterday, else weekday and date', () => {
  assert.equal(formatDay(at(2024, 2, 14, 0, 5)), 'Today');
  assert.equal(formatDay(at(2024, 2, 13, 23, 55)), 'Yesterday');
  assert.equal(formatDay(at(2024, 2, 12, 12, 0)), 'Tuesday, March 12');
  setLocale('ru');
  assert.equal(formatDay(at(2024, 2, 14, 8, 0)), 'Сегодня');
  assert.equal(formatDay(at(2024, 2, 13, 8, 0)), 'Вчера');
  assert.equal(formatDay(at(2024, 2, 12, 12, 0)), 'вторник, 12 марта');
});

test('formatShort: the time today, the weekday this week, else a short date', () => {
  assert.equal(plain(formatShort(at(2024, 2, 14, 9, 15))), '09:15 AM');
  assert.equal(formatShort(at(2024, 2, 11, 9, 15)), 'Mon');
  assert.equal(formatShort(at(2024, 2, 1, 9, 15)), 'Mar 1');
  assert.equal(formatShort(''), '');
  assert.equal(formatShort(null), '');
  setLocale('ru');
  assert.equal(formatShort(at(2024, 2, 14, 9, 15)), '09:15');
  assert.equal(formatShort(at(2024, 2, 11, 9, 15)), 'пн');
  assert.equal(formatShort(at(2024, 2, 1, 9, 15)), '1 мар.');
});

test('formatLastSeen: just now, minutes ago (plural), the time today, else the date', () => {
  assert.equal(formatLastSeen(null), 'offline');
  assert.equal(formatLastSeen(ago(20 * 1000)), 'last seen just now');
  assert.equal(formatLastSeen(ago(MINUTE)), 'last seen 1 minute ago');
  assert.equal(formatLastSeen(ago(5 * MINUTE)), 'last seen 5 minutes ago');
  assert.equal(plain(formatLastSeen(ago(3 * 60 * MINUTE))), 'last seen at 12:30 PM');
  assert.equal(formatLastSeen(ago(3 * DAY)), 'last seen Mar 11');
  setLocale('ru');
  assert.equal(formatLastSeen(null), 'не в сети');
  assert.equal(formatLastSeen(ago(21 * MINUTE)), 'был(а) 21 минуту назад');
  assert.equal(formatLastSeen(ago(2 * MINUTE)), 'был(а) 2 минуты назад');
  assert.equal(formatLastSeen(ago(11 * MINUTE)), 'был(а) 11 минут назад');
  assert.equal(formatLastSeen(ago(3 * 60 * MINUTE)), 'был(а) в 12:30');
});

test('formatSize: bytes, KB and MB with at most one decimal, in the language\'s digits', () => {
  assert.equal(formatSize(0), '0 B');
  assert.equal(formatSize(1023), '1,023 B');
  assert.equal(formatSize(1024), '1 KB');
  assert.equal(formatSize(1536), '1.5 KB');
  assert.equal(formatSize(5 * 1024 * 1024), '5 MB');
  assert.equal(formatSize(1.25 * 1024 * 1024), '1.3 MB');
  setLocale('ru');
  assert.equal(formatSize(1536), '1,5 КБ');
  assert.equal(plain(formatSize(1023)), '1 023 Б');
});

test('displayName: the display name, else the username, else "Unknown"', () => {
  assert.equal(displayName({ username: 'ann', display_name: 'Ann Lee' }), 'Ann Lee');
  assert.equal(displayName({ username: 'ann', display_name: '' }), 'ann');
  assert.equal(displayName(null), 'Unknown');
  setLocale('ru');
  assert.equal(displayName(undefined), 'Неизвестный');
});

test('initials: first letters of two words, or two of one word; symbols skipped', () => {
  assert.equal(initials('Ann Lee'), 'AL');
  assert.equal(initials('bob'), 'BO');
  assert.equal(initials('иван петров'), 'ИП');
  assert.equal(initials('  -- Zed'), 'ZE');
  assert.equal(initials(''), '?');
  assert.equal(initials('!!!'), '?');
});

test('colorFor: one colour per id, stable, and any input gives a colour', () => {
  assert.equal(colorFor(3), colorFor(13));
  assert.notEqual(colorFor(3), colorFor(4));
  assert.match(colorFor(-7), /^#[0-9a-f]{6}$/);
  assert.match(colorFor(undefined), /^#[0-9a-f]{6}$/);
});

test('isImage: only the image types the server thumbnails', () => {
  for (const type of ['image/png', 'image/jpeg', 'image/gif', 'image/webp']) assert.ok(isImage({ content_type: type }), type);
  for (const type of ['image/svg+xml', 'text/html', 'image/png; x', '', undefined]) assert.ok(!isImage({ content_type: type }), String(type));
});
