// The service worker: shows Web Push notifications (sent by this server, encrypted for
// this browser) and opens the chat when one is clicked.

self.addEventListener('push', (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch { data = {}; }
  if (data.type !== 'message') return;
  event.waitUntil(self.registration.showNotification(data.title || 'Parley', {
    body: data.body || '',
    tag: data.tag,
    icon: '/static/icons/icon-192.png',
    data,
  }));
});

self.addEventListener('notificationclick', (event) => {
  event.notification.close();
  const { chat_id: chatId } = event.notification.data || {};
  const url = new URL(chatId ? `/chat#${chatId}` : '/chat', self.location.origin).href;
  event.waitUntil((async () => {
    const open = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
    const tab = open.find((client) => new URL(client.url).pathname === '/chat');
    if (tab) {
      await tab.focus();
      return tab.navigate ? tab.navigate(url) : null;
    }
    return self.clients.openWindow(url);
  })());
});
