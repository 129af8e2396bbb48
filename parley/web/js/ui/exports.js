// "Export as ZIP": starts an export (mine, or a chat's), waits for it, then downloads it.

import * as actions from '../actions.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { toast } from './toast.js';

export function exportButton({ chatId = null, testid = 'export-button' } = {}) {
  const button = h('button', { type: 'button', class: 'btn', testid }, t('exports.button'));
  button.addEventListener('click', async () => {
    button.disabled = true;
    button.textContent = t('exports.preparing');
    try {
      let job = await actions.startExport(chatId);
      for (let i = 0; i < 600 && job.status === 'pending'; i += 1) {
        await new Promise((resolve) => { setTimeout(resolve, 1000); });
        job = await actions.exportStatus(job.id);
      }
      if (job.status !== 'ready') throw new Error(t('exports.failed'));
      const link = h('a', { href: job.url, download: `parley-export-${job.id}.zip`, testid: 'export-link' }, t('exports.download'));
      button.replaceWith(link);
      link.click();
    } catch (error) {
      toast(error.code === 'export_in_progress' ? t('exports.busy') : (error.detail || error.message || t('exports.failed')), { error: true });
      button.disabled = false;
      button.textContent = t('exports.button');
    }
  });
  return button;
}
