// The outbox: messages written but not yet acknowledged by the server, kept in IndexedDB
// so that neither a lost connection nor a reload (even offline) loses them. Each keeps its
// client_id: sending it again can never double it (the server answers a repeated client_id
// with the message it already stored). Without IndexedDB (private modes) it does nothing.

const DB_NAME = 'parley';
const STORE = 'outbox';
let opening = null;

function openDb() {
  opening ||= new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, 1);
    request.onupgradeneeded = () => {
      if (!request.result.objectStoreNames.contains(STORE)) {
        request.result.createObjectStore(STORE, { keyPath: 'client_id' });
      }
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  }).catch((error) => { opening = null; throw error; });
  return opening;
}

async function run(mode, work) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const result = work(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(result && 'result' in result ? result.result : undefined);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

const quietly = (promise, fallback) => promise.catch(() => fallback);

/** Keeps a pending send (of user `userId`) until `drop`. */
export function keep(item, userId) {
  const row = {
    client_id: item.client_id,
    chat_id: item.chat_id,
    content: item.content,
    reply_to: item.reply_to ?? null,
    attachments: item.attachments || [],
    created_at: item.created_at,
    user_id: userId ?? null,
  };
  return quietly(run('readwrite', (store) => store.put(row)));
}

export function drop(clientId) {
  return quietly(run('readwrite', (store) => store.delete(clientId)));
}

/** The kept sends of user `userId`, oldest first. */
export async function of(userId) {
  const rows = await quietly(run('readonly', (store) => store.getAll()), []);
  return (rows || []).filter((row) => row.user_id === userId)
    .sort((a, b) => String(a.created_at).localeCompare(String(b.created_at)));
}

/** Signing out: nothing of this account stays behind. */
export function clear() {
  return quietly(run('readwrite', (store) => store.clear()));
}
