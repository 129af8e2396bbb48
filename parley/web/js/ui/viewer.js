// The image viewer: a message's images full screen, ← and → between them; Escape, a click
// outside the image, the close button or a swipe down closes it and focus returns.

import { h, icon } from '../dom.js';
import { t } from '../i18n.js';

const SWIPE_CLOSE_PX = 90;

/** images: [{url, filename}]; opens at `index`. Returns the <dialog>. */
export function openViewer(images, index = 0) {
  let current = index;
  const img = h('img', { class: 'viewer-img', testid: 'viewer-image', draggable: 'false', alt: '' });
  const caption = h('span', { class: 'viewer-caption', testid: 'viewer-caption', id: 'viewer-caption' });
  const counter = h('span', { class: 'viewer-count', testid: 'viewer-count' });
  const button = (name, label, testid, onclick) => {
    const b = h('button', { type: 'button', class: `icon-btn viewer-${name}`, title: label, 'aria-label': label, testid, onclick });
    b.append(icon(name === 'prev' ? 'back' : name === 'next' ? 'back' : name));
    return b;
  };
  const download = h('a', { class: 'icon-btn viewer-download', testid: 'viewer-download', title: t('viewer.open'), 'aria-label': t('viewer.open'), target: '_blank', rel: 'noopener' });
  download.append(icon('down'));
  const prev = button('prev', t('viewer.previous'), 'viewer-prev', () => show(current - 1));
  const next = button('next', t('viewer.next'), 'viewer-next', () => show(current + 1));
  const closeButton = button('close', t('viewer.close'), 'viewer-close', () => dialog.close());
  const stage = h('div', { class: 'viewer-stage', testid: 'viewer-stage' }, img);
  const dialog = h('dialog', { class: 'viewer', testid: 'image-viewer', 'aria-modal': 'true', 'aria-labelledby': 'viewer-caption' },
    h('div', { class: 'viewer-bar' }, caption, counter, h('span', { class: 'spacer' }), download, closeButton),
    stage,
    images.length > 1 ? [prev, next] : null);
  const opener = document.activeElement;

  function show(i) {
    current = (i + images.length) % images.length;
    const { url, filename } = images[current];
    img.src = url;
    img.alt = filename;
    caption.textContent = filename;
    download.href = url;
    counter.textContent = images.length > 1 ? t('viewer.count', { n: current + 1, total: images.length }) : '';
  }

  dialog.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowLeft' && images.length > 1) show(current - 1);
    else if (event.key === 'ArrowRight' && images.length > 1) show(current + 1);
  });
  // A click on the dark area around the picture closes; a click on the picture does not.
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog || event.target === stage) dialog.close();
  });
  swipeToClose(stage, img, () => dialog.close());
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener && opener.isConnected) opener.focus();
  });
  show(current);
  document.body.append(dialog);
  dialog.showModal();
  closeButton.focus();
  return dialog;
}

/** Drag the picture down (touch or pen) past a threshold to close; it follows the finger. */
function swipeToClose(stage, img, close) {
  let start = null;
  stage.addEventListener('pointerdown', (event) => {
    if (event.pointerType === 'mouse') return;
    start = { x: event.clientX, y: event.clientY };
    img.style.transition = 'none';
  });
  stage.addEventListener('pointermove', (event) => {
    if (!start) return;
    const dy = Math.max(0, event.clientY - start.y);
    img.style.transform = `translateY(${dy}px)`;
    img.style.opacity = String(Math.max(0.3, 1 - dy / 400));
  });
  const end = (event) => {
    if (!start) return;
    const dy = event.clientY - start.y;
    const dx = Math.abs(event.clientX - start.x);
    start = null;
    img.style.transition = '';
    if (dy > SWIPE_CLOSE_PX && dy > dx) {
      close();
      return;
    }
    img.style.transform = '';
    img.style.opacity = '';
  };
  stage.addEventListener('pointerup', end);
  stage.addEventListener('pointercancel', end);
}
