// A completion list under the composer (@mentions, /commands): ↑/↓ move, Enter or Tab
// pick, Escape closes, a click picks, and focus elsewhere closes it.

import { h } from '../dom.js';

/**
 * The list in `box` for `input`. `option(item, i)` gives an option's attributes (beyond
 * its class, role and selection) and children; `insert(item)` writes a pick into the
 * input (false: nothing to write). `showLatest(load)` opens it on what `load()` resolves
 * to, the first item active.
 */
export function completionList(input, box, { option, insert, onRender = () => {}, onClose = () => {} }) {
  let items = [];
  let active = 0;
  let seq = 0;

  const close = () => {
    box.hidden = true;
    items = [];
    onClose();
  };

  const pick = (item) => {
    if (insert(item) === false) return;
    close();
    input.dispatchEvent(new Event('input', { bubbles: true }));
    input.focus();
  };

  const render = () => {
    box.replaceChildren(...items.map((item, i) => {
      const [props, ...children] = option(item, i);
      return h('div', {
        class: `mention-option${i === active ? ' is-active' : ''}`, role: 'option', ...props,
        'aria-selected': String(i === active),
        onmousedown: (e) => e.preventDefault(), // keep the caret in the textarea
        onclick: () => pick(item),
      }, ...children);
    }));
    box.hidden = !items.length;
    onRender(items, active);
  };

  /** Shows the items `load()` resolves to, unless a later call came first or it resolves
   * to null; a failed load closes the list. */
  const showLatest = async (load) => {
    const mine = ++seq;
    let list;
    try {
      list = await load();
    } catch {
      return close();
    }
    if (mine !== seq || !list) return undefined;
    items = list;
    active = 0;
    render();
    return undefined;
  };

  /** Keys while the list is open; true when the key was used. */
  const handleKey = (event) => {
    if (box.hidden || !items.length) return false;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      active = (active + (event.key === 'ArrowDown' ? 1 : -1) + items.length) % items.length;
      render();
    } else if ((event.key === 'Enter' && !event.shiftKey) || event.key === 'Tab') {
      pick(items[active]);
    } else if (event.key === 'Escape') {
      close();
    } else {
      return false;
    }
    event.preventDefault();
    event.stopPropagation();
    return true;
  };

  // Focus elsewhere closes the list (unless it came back meanwhile: a stale blur must not
  // hide a list opened since).
  input.addEventListener('blur', () => setTimeout(() => { if (document.activeElement !== input) close(); }, 150));
  return { showLatest, close, handleKey };
}
