// The open chat's header: title, members or presence, join and block buttons.

import { clear, icon } from '../dom.js';
import { dateFormat, t } from '../i18n.js';
import { formatLastSeen } from '../format.js';
import * as actions from '../actions.js';
import * as store from '../state.js';
import { chatAvatar, chatTitle } from './avatar.js';

const { state } = store;

export function renderHeader() {
  const chat = state.chats.get(state.activeChatId);
  if (!chat) return;
  const avatar = document.getElementById('chat-avatar');
  avatar.replaceWith(Object.assign(chatAvatar(chat, { presence: chat.type === 'direct' }), { id: 'chat-avatar' }));
  document.getElementById('chat-title').textContent = chatTitle(chat);
  const subtitle = document.getElementById('chat-subtitle');
  clear(subtitle);
  subtitle.classList.remove('is-online');
  if (chat.type === 'direct' && chat.peer) {
    const presence = state.presence.get(chat.peer.id);
    const blocked = state.blocked.has(chat.peer.id);
    const online = Boolean(presence?.online) && !blocked;
    subtitle.textContent = blocked ? t('presence.blocked') : online ? t('presence.online') : formatLastSeen(presence?.last_seen_at || chat.peer.last_seen_at);
    subtitle.classList.toggle('is-online', online);
    subtitle.dataset.online = String(online);
  } else {
    const members = t('chat.members', { count: chat.member_count ?? 0 });
    subtitle.textContent = chat.type === 'channel' ? t('header.publicChannel', { members }) : members;
  }
  const join = document.getElementById('join-button');
  join.hidden = actions.isMember(chat);
  const block = document.getElementById('block-button');
  block.hidden = chat.type !== 'direct' || !chat.peer;
  if (!block.hidden) {
    const blocked = state.blocked.has(chat.peer.id);
    block.textContent = blocked ? t('block.unblock') : t('block.block');
    block.dataset.blocked = String(blocked);
  }
  document.getElementById('chat-search-button').hidden = Boolean(chat.virtual);
  renderMute(chat);
}

function renderMute(chat) {
  const button = document.getElementById('mute-button');
  button.hidden = Boolean(chat.virtual) || !actions.isMember(chat);
  if (button.hidden) return;
  const muted = store.isMuted(chat);
  let label = t('mute.mute');
  if (muted) {
    label = chat.muted_until === 'forever' ? t('mute.mutedForever')
      : t('mute.mutedUntil', { time: dateFormat({ dateStyle: 'medium', timeStyle: 'short' }).format(new Date(chat.muted_until)) });
  }
  button.replaceChildren(icon(muted ? 'bell-off' : 'bell'));
  button.title = muted ? `${label}. ${t('mute.clickToUnmute')}` : label;
  button.setAttribute('aria-label', muted ? t('mute.unmute') : t('mute.mute'));
  button.setAttribute('aria-pressed', String(muted));
  button.dataset.muted = String(muted);
}
