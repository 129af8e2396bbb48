// Incoming webhooks in the chat details dialog (owners and admins): list with their URLs,
// create, delete.

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { copy } from './bots.js';
import { confirmDialog } from './dialogs.js';
import { exportButton } from './exports.js';
import { toast } from './toast.js';

export function webhooksSection(chat) {
  if (chat.type === 'direct' || !['owner', 'admin'].includes(chat.my_role)) return null;
  const list = h('div', { class: 'pick-list', role: 'list', testid: 'webhooks-list' });
  const name = h('input', { type: 'text', testid: 'webhook-name', maxlength: 64, placeholder: t('webhooks.namePlaceholder') });
  const form = h('form', { class: 'webhook-create', testid: 'webhook-form' }, name,
    h('button', { type: 'submit', class: 'btn', testid: 'webhook-create' }, t('webhooks.create')));
  const reload = async () => {
    const hooks = await actions.listWebhooks(chat.id).catch(() => []);
    list.replaceChildren(...(hooks.length ? hooks.map((hook) => h('div', { class: 'pick-item webhook-item', role: 'listitem', testid: `webhook-${hook.id}` },
      h('span', { class: 'pick-text' }, h('span', { class: 'pick-title' }, hook.name),
        h('input', { type: 'text', readonly: true, value: hook.url, class: 'webhook-url', testid: 'webhook-url', onfocus: (e) => e.target.select() })),
      h('button', { type: 'button', class: 'btn', onclick: () => copy(hook.url) }, t('bots.copy')),
      h('button', { type: 'button', class: 'btn btn-danger', testid: `webhook-delete-${hook.id}`, onclick: async () => {
        if (!await confirmDialog({ title: t('webhooks.delete'), text: t('webhooks.deleteConfirm', { name: hook.name }), confirm: t('common.delete'), danger: true })) return;
        await actions.deleteWebhook(chat.id, hook.id);
        reload();
      } }, t('common.delete')))) : [h('div', { class: 'list-empty' }, t('webhooks.none'))]));
  };
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!name.value.trim()) return;
    try {
      await actions.createWebhook(chat.id, name.value.trim());
      name.value = '';
      reload();
    } catch (e) {
      toast(e.detail || t('settings.failed'), { error: true });
    }
  });
  reload();
  return h('div', { class: 'webhooks', testid: 'webhooks-section' },
    h('h3', { class: 'section-label' }, t('webhooks.title')),
    h('p', { class: 'field-hint' }, t('webhooks.intro')), list, form,
    h('h3', { class: 'section-label' }, t('exports.chat')), exportButton({ chatId: chat.id, testid: 'export-chat' }));
}
