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
