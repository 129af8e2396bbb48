// Formatting of times, sizes and names, in the interface language (no DOM: the unit tests
// in tests/js/ run it in Node).

import { dateFormat, locale, t } from './i18n.js';

// Formatters come from i18n.dateFormat (cached per language), so a language switch
// changes every date on the next render.
const timeFmt = () => dateFormat({ hour: '2-digit', minute: '2-digit' });
const dayFmt = () => dateFormat({ weekday: 'long', month: 'long', day: 'numeric' });
const shortDayFmt = () => dateFormat({ month: 'short', day: 'numeric' });
const weekdayFmt = () => dateFormat({ weekday: 'short' });
const fullFmt = () => dateFormat({ dateStyle: 'full', timeStyle: 'short' });

export const formatTime = (iso) => timeFmt().format(new Date(iso));
export const formatFull = (iso) => fullFmt().format(new Date(iso));

export function dayKey(iso) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

export function formatDay(iso) {
  const d = new Date(iso);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86400000);
  if (dayKey(d) === dayKey(today)) return t('time.today');
  if (dayKey(d) === dayKey(yesterday)) return t('time.yesterday');
  return dayFmt().format(d);
}

/** Sidebar timestamp: time today, weekday this week, else a short date. */
export function formatShort(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  const age = Date.now() - d.getTime();
  if (dayKey(d) === dayKey(new Date())) return timeFmt().format(d);
  if (age < 6 * 86400000) return weekdayFmt().format(d);
  return shortDayFmt().format(d);
}

export function formatLastSeen(iso) {
  if (!iso) return t('presence.offline');
  const minutes = Math.round((Date.now() - new Date(iso).getTime()) / 60000);
  if (minutes < 1) return t('presence.justNow');
  if (minutes < 60) return t('presence.minutesAgo', { count: minutes });
  if (minutes < 24 * 60) return t('presence.at', { time: formatTime(iso) });
  return t('presence.on', { date: shortDayFmt().format(new Date(iso)) });
}

/** "just now", "5 min ago", "3 h ago", else the short date: how long ago a thread's last reply was. */
export function formatAgo(iso) {
  const minutes = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 60000));
  if (minutes < 1) return t('time.justNow');
  if (minutes < 60) return t('time.minutesAgo', { count: minutes });
  if (minutes < 24 * 60) return t('time.hoursAgo', { count: Math.floor(minutes / 60) });
  return formatShort(iso);
}

export function formatSize(bytes) {
  const num = (n) => new Intl.NumberFormat(locale(), { maximumFractionDigits: 1 }).format(n);
  if (bytes < 1024) return t('size.bytes', { n: num(bytes) });
  if (bytes < 1024 * 1024) return t('size.kb', { n: num(bytes / 1024) });
  return t('size.mb', { n: num(bytes / 1024 / 1024) });
}

export const displayName = (user) => (user && (user.display_name || user.username)) || t('common.unknownUser');

export function initials(name) {
  const words = String(name || '').split(/\s+/).map((w) => w.match(/[\p{L}\p{N}]/gu) || []).filter((w) => w.length);
  if (!words.length) return '?';
  const letters = words.length > 1 ? [words[0][0], words[1][0]] : words[0].slice(0, 2);
  return letters.join('').toUpperCase();
}

// White initials on each colour pass WCAG AA (4.5:1).
const PALETTE = ['#d63a28', '#ac6115', '#8d721b', '#38814e', '#257f78', '#2578c1', '#5a67d8', '#8b57d5', '#c24291', '#67758a'];
export const colorFor = (id) => PALETTE[Math.abs(Number(id) || 0) % PALETTE.length];

export const isImage = (att) => /^image\/(png|jpeg|gif|webp)$/.test(att.content_type || '');
