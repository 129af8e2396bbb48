// Small pop-up menus anchored to a button: the profile menu (profile, mentions,
// notifications, language, sign out) and the mute durations of a chat.

import { h, icon } from '../dom.js';
import { LANGUAGES, locale, setLocale, t } from '../i18n.js';
import { askPermission, notificationPermission, notificationsSupported } from '../notify.js';
import { botsDialog } from './bots.js';
import { profileDialog, signOut } from './dialogs.js';
import { mindMenuItems } from './mind.js';
import { toast } from './toast.js';

let openMenu = null;

function closeMenu({ focus = true } = {}) {
  if (!openMenu) return;
  const { el, anchor, cleanup } = openMenu;
  openMenu = null;
  cleanup();
  el.remove();
  anchor.setAttribute('aria-expanded', 'false');
  if (focus) anchor.focus();
}

/** A menu of `items` ({label, testid, icon, onSelect, checked, separator}) under `anchor`. */
export function popupMenu(anchor, items, { testid = 'menu', label = '' } = {}) {
  if (openMenu) {
    const same = openMenu.anchor === anchor;
    closeMenu({ focus: false });
    if (same) return;
  }
  const el = h('div', { class: 'popup-menu', role: 'menu', testid, 'aria-label': label || null });
  for (const item of items) {
    if (item.separator) {
      el.append(h('div', { class: 'menu-sep', role: 'separator' }));
      continue;
    }
    if (item.heading) {
      el.append(h('div', { class: 'menu-heading', role: 'none' }, item.heading));
      continue;
    }
    const role = item.checked === undefined ? 'menuitem' : 'menuitemradio';
    const button = h('button', {
      class: 'menu-item', role, testid: item.testid, tabindex: '-1',
      'aria-checked': item.checked === undefined ? null : String(Boolean(item.checked)),
      onclick: () => { closeMenu({ focus: false }); item.onSelect(); },
    }, item.icon ? icon(item.icon) : h('span', { class: 'menu-icon-space' }), h('span', null, item.label),
    item.checked ? h('span', { class: 'menu-check' }, icon('check')) : null);
    el.append(button);
  }
  document.body.append(el);
  const rect = anchor.getBoundingClientRect();
  const top = Math.min(rect.bottom + 4, window.innerHeight - el.offsetHeight - 8);
  const left = Math.max(8, Math.min(rect.left, window.innerWidth - el.offsetWidth - 8));
  el.style.top = `${Math.max(8, top)}px`;
  el.style.left = `${left}px`;
  anchor.setAttribute('aria-expanded', 'true');
  const buttons = () => [...el.querySelectorAll('.menu-item')];
  const onKey = (event) => {
    const list = buttons();
    const index = list.indexOf(document.activeElement);
    if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      closeMenu();
    } else if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      const step = event.key === 'ArrowDown' ? 1 : -1;
      list[(index + step + list.length) % list.length]?.focus();
    } else if (event.key === 'Home' || event.key === 'End') {
      event.preventDefault();
      list[event.key === 'Home' ? 0 : list.length - 1]?.focus();
    } else if (event.key === 'Tab') {
      closeMenu({ focus: false });
    }
  };
  const onDown = (event) => {
    if (!el.contains(event.target) && !anchor.contains(event.target)) closeMenu({ focus: false });
  };
  window.addEventListener('keydown', onKey, true);
  document.addEventListener('pointerdown', onDown, true);
  openMenu = {
    el, anchor,
    cleanup: () => {
      window.removeEventListener('keydown', onKey, true);
      document.removeEventListener('pointerdown', onDown, true);
    },
  };
  buttons()[0]?.focus();
}

export function profileMenu(anchor, { onMentions }) {
  const permission = notificationPermission();
  const items = [
    { label: t('menu.profile'), icon: 'user', testid: 'menu-profile', onSelect: profileDialog },
    ...mindMenuItems(), // presence of mind: status, do not disturb
    { separator: true },
    { label: t('menu.mentions'), icon: 'at', testid: 'menu-mentions', onSelect: onMentions },
    { label: t('bots.title'), icon: 'bot', testid: 'menu-bots', onSelect: () => botsDialog() },
  ];
  if (notificationsSupported()) {
    items.push({
      label: permission === 'granted' ? t('menu.notificationsOn') : permission === 'denied' ? t('menu.notificationsBlocked') : t('menu.notificationsEnable'),
      icon: 'bell', testid: 'menu-notifications',
      onSelect: async () => {
        if (permission === 'denied') toast(t('notify.blockedHelp'));
        else if (permission === 'default' && await askPermission({ force: true })) toast(t('notify.enabled'));
      },
    });
  }
  items.push({ separator: true }, { heading: t('menu.language') });
  for (const { code, name } of LANGUAGES) {
    items.push({ label: name, testid: `menu-lang-${code}`, checked: locale() === code, onSelect: () => setLocale(code) });
  }
  items.push({ separator: true }, { label: t('menu.logout'), icon: 'logout', testid: 'menu-logout', onSelect: signOut });
  popupMenu(anchor, items, { testid: 'profile-menu', label: t('menu.open') });
}

const HOUR = 3600 * 1000;

/** Mute for 1 hour, 8 hours, a day, or until turned back on; `onPick(muted_until)`. */
export function muteMenu(anchor, onPick) {
  const at = (ms) => new Date(Date.now() + ms).toISOString();
  popupMenu(anchor, [
    { heading: t('mute.title') },
    { label: t('mute.hour'), testid: 'mute-1h', onSelect: () => onPick(at(HOUR)) },
    { label: t('mute.hours8'), testid: 'mute-8h', onSelect: () => onPick(at(8 * HOUR)) },
    { label: t('mute.day'), testid: 'mute-1d', onSelect: () => onPick(at(24 * HOUR)) },
    { label: t('mute.forever'), testid: 'mute-forever', onSelect: () => onPick('forever') },
  ], { testid: 'mute-menu', label: t('mute.title') });
}
