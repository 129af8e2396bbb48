// Settings: browser notifications by Web Push (asked only when the person clicks) and the
// e-mail address's confirmation state with a "send again".

import * as actions from '../actions.js';
import { api } from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import * as store from '../state.js';
import { attempt, toast } from './toast.js';

const { state } = store;
const WORKER = '/static/sw.js';

export const pushSupported = () => 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;

function keyBytes(base64url) {
  const text = atob(base64url.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (base64url.length % 4)) % 4));
  return Uint8Array.from(text, (c) => c.charCodeAt(0));
}

/**
 * The service worker (parley/web/sw.js) for the whole site: it keeps the app shell and the
 * last chats viewed for offline use. Registering it asks nothing of the person.
 */
export function registerWorker() {
  if (!('serviceWorker' in navigator)) return Promise.resolve(null);
  return navigator.serviceWorker.register(WORKER, { scope: '/' }).catch(() => null);
}

async function currentSubscription() {
  const registration = await navigator.serviceWorker.getRegistration(WORKER);
  return registration ? registration.pushManager.getSubscription() : null;
}

/** Asks permission (this must run from a click), subscribes, tells the server. */
export async function enablePush() {
  if ((await Notification.requestPermission()) !== 'granted') throw new Error(t('reach.push.denied'));
  const registration = await navigator.serviceWorker.register(WORKER, { scope: '/' });
  await navigator.serviceWorker.ready;
  const { public_key: key } = await api.get('/push/key');
  const subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: keyBytes(key) });
  const { endpoint, keys } = subscription.toJSON();
  await api.post('/push/subscriptions', { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } });
}

export async function disablePush() {
  const subscription = await currentSubscription();
  if (!subscription) return;
  const mine = await api.get('/push/subscriptions');
  const row = mine.find((s) => s.endpoint === subscription.endpoint);
  if (row) await api.del(`/push/subscriptions/${row.id}`);
  await subscription.unsubscribe();
}

const OFFERED_KEY = 'parley.push.offered';

/**
 * Once per browser, after the person's first message: a banner at the top of the chat
 * list offers notifications for when Parley is closed. Nothing is asked of the browser
 * unless they click "Enable notifications" (then the same flow as in the settings);
 * "Not now" and the banner is gone for good. Not shown when the browser cannot push or
 * the person already answered the browser's question.
 */
export function offerPushOnce() {
  if (!pushSupported() || Notification.permission !== 'default') return;
  try {
    if (localStorage.getItem(OFFERED_KEY)) return;
    localStorage.setItem(OFFERED_KEY, '1');
  } catch {
    return; // no storage: it could not stay gone once dismissed
  }
  const banner = h('div', { class: 'push-banner', testid: 'push-banner', role: 'status' },
    h('span', { class: 'push-banner-text' }, t('reach.push.offer')),
    h('div', { class: 'push-banner-actions' },
      h('button', {
        type: 'button', class: 'btn btn-small push-banner-enable', testid: 'push-banner-enable',
        onclick: () => { banner.remove(); attempt(enablePush); },
      }, t('reach.push.enable')),
      h('button', {
        type: 'button', class: 'btn btn-small', testid: 'push-banner-later',
        onclick: () => banner.remove(),
      }, t('reach.push.later'))));
  document.querySelector('.sidebar-head')?.after(banner);
}

/** The settings' "Notifications" and "E-mail" block. */
export function reachSettingsSection() {
  const box = h('div', { class: 'reach-settings', testid: 'reach-settings' });
  const pushRow = h('div', { class: 'reach-row' });
  const mailRow = h('div', { class: 'reach-row' });
  box.append(h('h3', { class: 'section-label' }, t('reach.push.title')), pushRow,
    h('h3', { class: 'section-label' }, t('reach.email.title')), mailRow);
  const renderPush = async () => {
    if (!pushSupported()) {
      pushRow.replaceChildren(h('p', { class: 'info-sub' }, t('reach.push.unsupported')));
      return;
    }
    const on = Boolean(await currentSubscription().catch(() => null));
    pushRow.replaceChildren(h('p', { class: 'info-sub', testid: 'push-state' }, t(on ? 'reach.push.on' : 'reach.push.off')),
      h('button', {
        type: 'button', class: 'btn btn-small', testid: on ? 'push-disable' : 'push-enable',
        onclick: () => attempt(async () => { await (on ? disablePush() : enablePush()); await renderPush(); }),
      }, t(on ? 'reach.push.disable' : 'reach.push.enable')));
  };
  const renderMail = () => {
    const me = state.me || {};
    const verified = Boolean(me.email_verified);
    const digest = h('input', {
      type: 'checkbox', testid: 'email-digest', checked: me.email_notifications !== false,
      onchange: () => attempt(async () => {
        await actions.updateProfile({ email_notifications: digest.checked });
      }),
    });
    mailRow.replaceChildren(h('p', { class: 'info-sub', testid: 'email-state' },
      t(verified ? 'reach.email.verified' : 'reach.email.unverified', { email: me.email || '' })),
    verified ? null : h('button', {
      type: 'button', class: 'btn btn-small', testid: 'email-resend',
      onclick: () => attempt(async () => { await api.post('/email/verify/resend'); toast(t('reach.email.sent')); }),
    }, t('reach.email.resend')),
    h('label', { class: 'reach-digest' }, digest, ' ', t('reach.email.digest')));
  };
  renderPush();
  renderMail();
  return box;
}
