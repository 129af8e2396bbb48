// The open chat's header: title, members or presence, join and block buttons.

import { clear } from '../dom.js';
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
    subtitle.textContent = blocked ? 'blocked' : online ? 'online' : formatLastSeen(presence?.last_seen_at || chat.peer.last_seen_at);
    subtitle.classList.toggle('is-online', online);
    subtitle.dataset.online = String(online);
  } else {
    const n = chat.member_count ?? 0;
    subtitle.textContent = `${n} member${n === 1 ? '' : 's'}${chat.type === 'channel' ? ' · public channel' : ''}`;
  }
  const join = document.getElementById('join-button');
  join.hidden = actions.isMember(chat);
  const block = document.getElementById('block-button');
  block.hidden = chat.type !== 'direct' || !chat.peer;
  if (!block.hidden) {
    const blocked = state.blocked.has(chat.peer.id);
    block.textContent = blocked ? 'Unblock' : 'Block';
    block.dataset.blocked = String(blocked);
  }
}
