// Account, chat-management and moderation actions: password, chat settings, roles,
// members, timed blocks and (for admins) bans. Each lands in the store like actions.js.

import { api } from './api.js';
import * as store from './state.js';

const { state } = store;

export const BLOCK_DURATIONS = [
  { key: 'hour', seconds: 3600 },
  { key: 'day', seconds: 86400 },
  { key: 'week', seconds: 7 * 86400 },
  { key: 'forever', seconds: null },
];

export const changePassword = (currentPassword, newPassword) =>
  api.post('/password', { current_password: currentPassword, new_password: newPassword });

export async function updateChat(chatId, fields) {
  return store.upsertChat(await api.patch(`/chats/${chatId}`, fields));
}

export const setRole = (chatId, userId, role) => api.patch(`/chats/${chatId}/members/${userId}`, { role });
export const removeMember = (chatId, userId) => api.del(`/chats/${chatId}/members/${userId}`);

/** The members list also tells my own role, which chat-wide frames leave out. */
export async function listMembers(chatId) {
  const members = await api.get(`/chats/${chatId}/members`);
  const chat = state.chats.get(chatId);
  const mine = members.find((m) => m.user.id === state.me?.id);
  if (chat && mine && chat.my_role !== mine.role) store.upsertChat({ id: chatId, my_role: mine.role });
  for (const m of members) store.rememberUser(m.user);
  return members;
}

// ---- blocks -------------------------------------------------------------------------------

let blockTimer = 0;

/** My blocks with their expiry; reloads itself when the next timed block ends. */
export async function loadBlocks() {
  const list = await api.get('/block');
  state.blocked = new Set(list.map((b) => b.user_id));
  state.blockList = list;
  clearTimeout(blockTimer);
  const next = Math.min(...list.filter((b) => b.expires_at).map((b) => Date.parse(b.expires_at)));
  if (Number.isFinite(next)) {
    blockTimer = setTimeout(() => loadBlocks().catch(() => {}), Math.max(1000, next - Date.now() + 2000));
  }
  store.emit('blocks');
  return list;
}

export async function blockUser(userId, durationSeconds = null) {
  const body = { user_id: userId };
  if (durationSeconds) body.duration_seconds = durationSeconds;
  await api.post('/block', body);
  await loadBlocks();
}

export async function unblockUser(userId) {
  await api.del(`/block/${userId}`);
  await loadBlocks();
}

// ---- bans (admins) -----------------------------------------------------------------------

export const listBans = () => api.get('/admin/bans');
export const liftBan = (userId) => api.del(`/admin/bans/${userId}`);

export function banUser(userId, durationSeconds, reason) {
  const body = { user_id: userId };
  if (durationSeconds) body.duration_seconds = durationSeconds;
  if (reason) body.reason = reason;
  return api.post('/admin/bans', body);
}

export async function userById(userId) {
  const known = state.users.get(userId);
  if (known?.username) return known;
  const user = await api.get(`/users/${userId}`);
  store.rememberUser(user);
  return user;
}
