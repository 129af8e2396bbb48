// The Bots dialog: my bots (create; the token and signing secret shown once, with copy
// buttons; event URL and commands; rotate the token; delete; the delivery log).

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { dateFormat, t } from '../i18n.js';
import { userAvatar } from './avatar.js';
import { confirmDialog, modal } from './dialogs.js';
import { exportButton } from './exports.js';
import { onSubmit, toast } from './toast.js';

export function botsDialog() {
  const list = h('div', { class: 'bots-list', testid: 'bots-list' });
  const secrets = h('div', { class: 'bot-secrets', testid: 'bot-secrets', hidden: true });
  const mine = h('div', { class: 'my-export' }, h('h3', { class: 'section-label' }, t('exports.mine')),
    h('p', { class: 'field-hint' }, t('exports.mineHint')), exportButton({ testid: 'export-mine' }));
  const dialog = modal({ title: t('bots.title'), testid: 'bots-dialog', body: [createForm(), secrets, list, mine] });

  async function reload() {
    try {
      const bots = await actions.listBots();
      list.replaceChildren(...(bots.length ? bots.map(botCard) : [h('div', { class: 'list-empty' }, t('bots.none'))]));
    } catch (error) {
      list.replaceChildren(h('div', { class: 'list-empty' }, error.detail || t('settings.failed')));
    }
  }

  function showSecrets(created) {
    const row = (label, value, testid) => h('label', { class: 'field' }, h('span', null, label),
      h('span', { class: 'copy-row' },
        h('input', { type: 'text', readonly: true, value, testid, onfocus: (e) => e.target.select() }),
        h('button', { type: 'button', class: 'btn', testid: `${testid}-copy`, onclick: () => copy(value) }, t('bots.copy'))));
    secrets.replaceChildren(
      h('p', { class: 'pane-intro', role: 'status' }, t('bots.shownOnce', { name: created.bot.display_name })),
      row(t('bots.token'), created.token, 'bot-token'),
      row(t('bots.secret'), created.signing_secret, 'bot-secret'));
    secrets.hidden = false;
  }

  function createForm() {
    const username = h('input', { type: 'text', name: 'username', testid: 'bot-username', required: true, maxlength: 32, placeholder: 'ci_bot' });
    const name = h('input', { type: 'text', name: 'display_name', testid: 'bot-display-name', required: true, maxlength: 64 });
    const error = h('small', { class: 'field-error', role: 'alert', testid: 'bot-create-error' });
    const form = h('form', { class: 'bot-create', testid: 'bot-create-form', novalidate: true },
      h('h3', { class: 'section-label' }, t('bots.create')),
      h('label', { class: 'field' }, h('span', null, t('bots.username')), username),
      h('label', { class: 'field' }, h('span', null, t('bots.displayName')), name),
      error,
      h('div', { class: 'row-end' }, h('button', { type: 'submit', class: 'btn btn-primary', testid: 'bot-create' }, t('bots.createButton'))));
    onSubmit(form, error, async () => {
      const created = await actions.createBot(username.value.trim(), name.value.trim() || username.value.trim());
      form.reset();
      showSecrets(created);
      await reload();
    }, (e) => (e.code === 'username_taken' ? t('bots.taken') : (e.code === 'too_many_bots' ? t('bots.tooMany') : e.detail || t('settings.failed'))));
    return form;
  }

  function botCard(entry) {
    const { bot } = entry;
    const url = h('input', { type: 'url', value: entry.event_url, testid: `bot-url-${bot.id}`, placeholder: 'https://…' });
    const commands = h('textarea', { rows: 3, testid: `bot-commands-${bot.id}`, placeholder: t('bots.commandsHint') });
    commands.value = entry.commands.map((c) => `${c.command} ${c.description}`.trim()).join('\n');
    const log = h('div', { class: 'bot-log', testid: `bot-log-${bot.id}`, hidden: true });
    const save = async () => {
      const parsed = commands.value.split('\n').map((line) => line.trim()).filter(Boolean).map((line) => {
        const [command, ...rest] = line.split(/\s+/);
        return { command, description: rest.join(' ') };
      });
      try {
        await actions.updateBot(bot.id, { event_url: url.value.trim(), commands: parsed });
        toast(t('bots.saved'));
      } catch (e) {
        toast(e.detail || t('settings.failed'), { error: true });
      }
    };
    const rotate = async () => {
      if (!await confirmDialog({ title: t('bots.rotate'), text: t('bots.rotateConfirm'), confirm: t('bots.rotate') })) return;
      showSecrets(await actions.rotateBotToken(bot.id));
    };
    const remove = async () => {
      if (!await confirmDialog({ title: t('bots.delete'), text: t('bots.deleteConfirm', { name: bot.display_name }), confirm: t('common.delete'), danger: true })) return;
      await actions.deleteBot(bot.id);
      await reload();
    };
    const showLog = async () => {
      const rows = await actions.botDeliveries(bot.id);
      log.replaceChildren(...(rows.length ? rows.map((d) => h('div', { class: `bot-delivery is-${d.status}`, testid: 'bot-delivery' },
        h('span', null, dateFormat({ dateStyle: 'short', timeStyle: 'medium' }).format(new Date(d.created_at))),
        h('span', null, t(`bots.kind.${d.kind}`)),
        h('span', { class: 'bot-delivery-status' }, t(`bots.status.${d.status}`)),
        h('span', null, [d.response_status, d.error].filter(Boolean).join(' · ')),
        h('span', null, t('bots.attempts', { count: d.attempts })))) : [h('div', { class: 'list-empty' }, t('bots.noDeliveries'))]));
      log.hidden = false;
    };
    return h('section', { class: 'bot-card', testid: `bot-${bot.username}` },
      h('div', { class: 'pick-item' }, userAvatar(bot, { size: 'avatar-sm' }),
        h('span', { class: 'pick-text' }, h('span', { class: 'pick-title' }, bot.display_name), h('span', { class: 'pick-sub' }, `@${bot.username}`))),
      h('label', { class: 'field' }, h('span', null, t('bots.eventUrl')), url),
      h('label', { class: 'field' }, h('span', null, t('bots.commands')), commands),
      h('div', { class: 'row-end bot-actions' },
        h('button', { type: 'button', class: 'btn btn-primary', testid: `bot-save-${bot.id}`, onclick: save }, t('common.save')),
        h('button', { type: 'button', class: 'btn', testid: `bot-deliveries-${bot.id}`, onclick: showLog }, t('bots.deliveries')),
        h('button', { type: 'button', class: 'btn', testid: `bot-rotate-${bot.id}`, onclick: rotate }, t('bots.rotate')),
        h('button', { type: 'button', class: 'btn btn-danger', testid: `bot-delete-${bot.id}`, onclick: remove }, t('common.delete'))),
      log);
  }

  reload();
  return dialog;
}

export async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast(t('bots.copied'));
  } catch {
    toast(t('bots.copyFailed'), { error: true });
  }
}
