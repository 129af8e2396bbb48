// Avatars for users and chats: the uploaded image, else initials on a stable colour.

import { h, icon } from '../dom.js';
import { colorFor, displayName, initials } from '../format.js';
import { t } from '../i18n.js';
import { isOnline } from '../state.js';

export function userAvatar(user, { size = '', presence = false } = {}) {
  const el = h('span', { class: `avatar ${size}`.trim() });
  el.style.setProperty('--avatar-bg', colorFor(user?.id));
  if (user?.avatar_url) {
    const img = h('img', { src: user.avatar_url, alt: '', loading: 'lazy' });
    img.addEventListener('error', () => img.replaceWith(initials(displayName(user))));
    el.append(img);
  } else {
    el.append(initials(displayName(user)));
  }
  if (presence && user) {
    el.append(h('span', { class: `presence${isOnline(user.id) ? ' is-online' : ''}`, testid: 'presence-dot', dataset: { online: String(isOnline(user.id)) } }));
  }
  return el;
}

export function chatAvatar(chat, { size = '', presence = false } = {}) {
  if (chat.type === 'direct' && chat.peer) return userAvatar(chat.peer, { size, presence });
  const el = h('span', { class: `avatar ${size}`.trim() });
  el.style.setProperty('--avatar-bg', colorFor(chat.id + 3));
  el.append(chat.type === 'channel' ? icon('hash') : initials(chat.title));
  return el;
}

export function chatTitle(chat) {
  if (chat.type === 'direct') return displayName(chat.peer) || chat.title || t('chat.type.direct');
  return chat.title || t('chat.untitled');
}

// The server's own words for `general` (its description on creation): shown translated.
const GENERAL_DESCRIPTION = "Everyone's channel";

/** A chat's description as shown: `general`'s built-in one in the interface language. */
export function chatDescription(chat) {
  if (chat.type === 'channel' && chat.title === 'general' && chat.description === GENERAL_DESCRIPTION) {
    return t('general.description');
  }
  return chat.description || '';
}

/** A user's status emoji beside its name (its text as the tooltip), or null. */
export function statusBadge(user) {
  const status = user?.status;
  if (!status || (status.until && new Date(status.until) <= new Date())) return null;
  const text = status.text || '';
  return h('span', {
    class: 'status-emoji', testid: 'status-emoji', title: text || null, 'aria-label': text || null,
  }, status.emoji || '💬');
}

/** Whether a user is in do-not-disturb now. */
export function isDnd(user) {
  return Boolean(user?.dnd_until && new Date(user.dnd_until) > new Date());
}
