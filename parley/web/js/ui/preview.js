// A message's link preview card (the server fetched the page and its image: the browser
// only loads the image from Parley); its author may remove it.

import * as actions from '../actions.js';
import { h, icon } from '../dom.js';
import { t } from '../i18n.js';
import { attempt } from './toast.js';

export function previewEl(msg, mine) {
  const p = msg.preview;
  if (!p) return null;
  let host = '';
  try { host = new URL(p.url).host; } catch { host = ''; }
  const link = (child, cls) => h('a', { class: cls, href: p.url, target: '_blank', rel: 'noopener noreferrer nofollow' }, child);
  return h('div', { class: 'msg-preview', testid: 'message-preview' },
    h('div', { class: 'msg-preview-text' },
      h('span', { class: 'msg-preview-site' }, p.site_name || host),
      p.title ? link(p.title, 'msg-preview-title') : null,
      p.description ? h('span', { class: 'msg-preview-desc', testid: 'message-preview-description' }, p.description) : null),
    p.image ? link(h('img', { src: p.image.url, alt: '', loading: 'lazy' }), 'msg-preview-image') : null,
    mine ? h('button', {
      class: 'icon-btn msg-preview-remove', testid: 'message-preview-remove', type: 'button',
      title: t('preview.remove'), 'aria-label': t('preview.remove'),
      onclick: () => attempt(() => actions.removePreview(msg)),
    }, icon('close')) : null);
}
