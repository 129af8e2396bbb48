// Attention: browser notifications for direct messages and mentions while the tab is
// hidden, the unread count in the title, and a badge drawn on the favicon.

import { displayName } from './format.js';
import { t } from './i18n.js';
import { plainText } from './markdown.js';
import * as store from './state.js';
import { chatTitle } from './ui/avatar.js';

const { state } = store;
const ASKED_KEY = 'parley.notifications.asked';
const STALE_MS = 2 * 60 * 1000; // replayed after a reconnect: too old to ring for

let openChat = () => {};
let baseIcon = null;
let shownCount = -1;
let clearing = null;
const shown = new Map(); // chat id → the page's own notification for it

export function mountNotifications({ onOpen }) {
  openChat = onOpen;
  store.on('incoming', notify);
  store.on('chats', updateBadge);
  updateBadge();
}

export const notificationsSupported = () => 'Notification' in window;

export const notificationPermission = () => (notificationsSupported() ? Notification.permission : 'denied');

/** Ask once (from a user gesture); true when granted. */
export async function askPermission({ force = false } = {}) {
  if (!notificationsSupported()) return false;
  if (Notification.permission !== 'default') return Notification.permission === 'granted';
  if (!force) {
    try {
      if (localStorage.getItem(ASKED_KEY)) return false;
      localStorage.setItem(ASKED_KEY, '1');
    } catch { /* storage disabled */ }
  }
  try {
    return (await Notification.requestPermission()) === 'granted';
  } catch {
    return false;
  }
}

/** Whether `msg` (not mine, new) deserves a notification. */
export function shouldNotify(msg, chat) {
  if (!chat || !document.hidden) return false;
  if (Date.now() - new Date(msg.created_at).getTime() > STALE_MS) return false;
  // presence of mind: nothing in do-not-disturb nor at the level "none"; "mentions": only those
  const dnd = store.state.me?.dnd_until && new Date(store.state.me.dnd_until) > new Date();
  if (dnd || chat.notify === 'none') return false;
  if (store.mentionsMe(msg)) return true; // mentions ring even in a muted chat
  if (chat.notify === 'mentions') return false;
  return chat.type === 'direct' && !store.isMuted(chat);
}

function notify(msg) {
  const chat = state.chats.get(msg.chat_id);
  if (notificationPermission() !== 'granted' || !shouldNotify(msg, chat)) return;
  const sender = displayName(msg.sender);
  const title = chat.type === 'direct' ? sender
    : store.mentionsMe(msg) ? t('notify.mentionTitle', { name: sender, chat: chatTitle(chat) })
      : `${sender} · ${chatTitle(chat)}`;
  let body = plainText(msg.content || '');
  if (!body && msg.attachments?.length) body = `📎 ${msg.attachments[0].filename}`;
  try {
    const n = new Notification(title, { body: body.slice(0, 200), tag: `parley-chat-${chat.id}`, icon: '/static/favicon.svg' });
    shown.set(chat.id, n);
    n.onclose = () => { if (shown.get(chat.id) === n) shown.delete(chat.id); };
    n.onclick = () => {
      window.focus();
      openChat(chat.id);
      n.close();
    };
  } catch { /* some browsers only allow notifications from a service worker */ }
}

// ---- title and favicon --------------------------------------------------------------------

function updateBadge() {
  const n = store.unreadTotal();
  document.title = n ? `(${n > 99 ? '99+' : n}) ${t('app.name')}` : t('app.name');
  clearing ??= setTimeout(clearRead, 100);
  if (n === shownCount) return;
  shownCount = n;
  drawFavicon(n);
}

const isRead = (chat) => chat && !chat.unread_count && !chat.mention_count;

/**
 * What was read, here or on another device (my `read` frames update the chats), stops
 * asking for attention: its notifications close (the page's and the pushed ones) and the
 * installed app's badge shows the unread count left.
 */
async function clearRead() {
  clearing = null;
  for (const [chatId, n] of shown) {
    if (isRead(state.chats.get(chatId))) n.close();
  }
  const total = store.unreadTotal();
  if ('setAppBadge' in navigator) {
    (total ? navigator.setAppBadge(total) : navigator.clearAppBadge()).catch(() => {});
  }
  if (notificationPermission() !== 'granted' || !('serviceWorker' in navigator)) return;
  try {
    const registration = await navigator.serviceWorker.getRegistration('/static/sw.js');
    for (const n of registration ? await registration.getNotifications() : []) {
      if (isRead(state.chats.get(Number(n.data?.chat_id)))) n.close();
    }
  } catch { /* no notifications to look at */ }
}

function drawFavicon(count) {
  const link = document.getElementById('favicon');
  if (!link) return;
  link.dataset.count = String(count);
  if (!count) {
    link.href = '/static/favicon.svg';
    return;
  }
  const paint = () => {
    const size = 64;
    const canvas = document.createElement('canvas');
    canvas.width = size;
    canvas.height = size;
    const ctx = canvas.getContext('2d');
    if (!ctx) return;
    ctx.drawImage(baseIcon, 0, 0, size, size);
    const label = count > 9 ? '9+' : String(count);
    ctx.fillStyle = '#d93d3d';
    ctx.beginPath();
    ctx.arc(size - 20, 20, 20, 0, Math.PI * 2);
    ctx.fill();
    ctx.fillStyle = '#fff';
    ctx.font = 'bold 26px sans-serif';
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    ctx.fillText(label, size - 20, 21);
    if (link.dataset.count === String(count)) link.href = canvas.toDataURL('image/png');
  };
  if (baseIcon?.complete) paint();
  else {
    baseIcon = new Image();
    baseIcon.addEventListener('load', paint, { once: true });
    baseIcon.src = '/static/favicon.svg';
  }
}
