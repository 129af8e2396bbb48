// REST client for /service/api: JSON in and out, errors as ApiError, one refresh on 401.

import { t } from './i18n.js';

const BASE = '/service/api';

export class ApiError extends Error {
  constructor(status, code, detail, body = null, retryAfter = null) {
    super(detail);
    this.status = status;
    this.code = code;
    this.detail = detail;
    this.body = body;
    this.retryAfter = retryAfter;
  }

  /** The form field the error is about, when the server says (or the text names it). */
  field(candidates) {
    const body = this.body || {};
    if (this.code === 'username_taken') return 'username';
    if (this.code === 'email_taken') return 'email';
    if (typeof body.field === 'string') return body.field;
    const items = Array.isArray(body.detail) ? body.detail : Array.isArray(body.errors) ? body.errors : [];
    for (const item of items) {
      const loc = item.loc || (item.field ? [item.field] : []);
      const hit = [...loc].reverse().find((part) => candidates.includes(part));
      if (hit) return hit;
    }
    const text = String(this.detail).toLowerCase();
    return candidates.find((name) => text.includes(name.replace('_', ' ')) || text.includes(name)) || null;
  }
}

let refreshing = null;

/** POST /refresh once for every caller waiting on a 401; true when a new pair was issued. */
export function refreshSession() {
  refreshing ||= doRefresh().finally(() => { refreshing = null; });
  return refreshing;
}

async function doRefresh() {
  // The refresh token lives in an HttpOnly cookie scoped to /service/api: nothing to send.
  try {
    const res = await fetch(`${BASE}/refresh`, jsonInit('POST', {}));
    return res.ok;
  } catch {
    return false;
  }
}

function jsonInit(method, json) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  }
  return init;
}

function buildUrl(path, query) {
  const url = new URL(BASE + path, location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') url.searchParams.set(key, value);
  }
  return url.pathname + url.search;
}

async function toError(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  let detail = body && body.detail;
  if (Array.isArray(detail)) detail = detail.map((d) => d.msg || String(d)).join('; ');
  if (!detail) detail = res.statusText || t('error.status', { status: res.status });
  const code = (body && body.code) || `http_${res.status}`;
  const retryAfter = Number(res.headers.get('Retry-After')) || null;
  if (res.status === 429 && retryAfter) detail = t('error.retryAfter', { detail, seconds: retryAfter });
  return new ApiError(res.status, code, detail, body, retryAfter);
}

// A hint (not a secret: the tokens stay in HttpOnly cookies) that this browser has a
// session, so the sign-in pages only skip to /chat when there is one, and never probe
// the server with a request that would fail with 401 for a signed-out visitor.
const SESSION_HINT = 'parley.session';

export function rememberSession() {
  try { localStorage.setItem(SESSION_HINT, '1'); } catch { /* private mode */ }
}

export function forgetSession() {
  try { localStorage.removeItem(SESSION_HINT); } catch { /* private mode */ }
}

export function hasSessionHint() {
  try { return localStorage.getItem(SESSION_HINT) === '1'; } catch { return false; }
}

let leaving = false;

/**
 * Forget the session and go to the sign-in page, once: a second navigation (a request
 * answered 401 while signing out, say) would abort the first one.
 */
export function goToLogin() {
  forgetSession();
  if (leaving || ['/login', '/register'].includes(location.pathname)) return;
  leaving = true;
  location.replace('/login');
}

/**
 * request('GET', '/chats', {query}) / request('POST', '/chats', {json}) / {form: FormData}.
 * On 401 it refreshes the session once and retries; if that fails it goes to /login
 * (unless `auth: false`, used by the sign-in pages).
 */
export async function request(method, path, { json, form, query, auth = true, retried = false } = {}) {
  const init = jsonInit(method, json);
  if (form) init.body = form;
  let res;
  try {
    res = await fetch(buildUrl(path, query), init);
  } catch {
    throw new ApiError(0, 'network_error', t('error.network_error'));
  }
  if (res.status === 401 && auth && !retried) {
    if (await refreshSession()) return request(method, path, { json, form, query, auth, retried: true });
    goToLogin();
  }
  if (!res.ok) {
    const error = await toError(res);
    if (error.code === 'user_banned' && auth) goToLogin();
    // PARLEY_REQUIRE_2FA: the page offers the Security pane (app.js listens)
    if (error.code === '2fa_required' && auth) window.dispatchEvent(new CustomEvent('parley:2fa-required'));
    throw error;
  }
  if (res.status === 204) return null;
  const type = res.headers.get('Content-Type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const api = {
  get: (path, query) => request('GET', path, { query }),
  post: (path, json) => request('POST', path, { json: json ?? {} }),
  patch: (path, json) => request('PATCH', path, { json }),
  put: (path, form) => request('PUT', path, { form }),
  putJson: (path, json) => request('PUT', path, { json }),
  upload: (path, form) => request('POST', path, { form }),
  del: (path) => request('DELETE', path),
};
