// Keyboard paths through the message log: the log is one Tab stop, ↑/↓/Home/End move
// between messages, and a focused message shows its action buttons, which Tab reaches
// next (hidden ones are never Tab stops). Escape goes back to the log.

const KEYS = new Set(['ArrowUp', 'ArrowDown', 'Home', 'End', 'Escape']);

export function mountMessageKeys(list) {
  list.tabIndex = 0;
  list.addEventListener('keydown', (event) => {
    if (!KEYS.has(event.key)) return;
    const current = event.target.closest('.msg');
    if (event.target !== list && event.target !== current) return; // a button inside keeps its keys
    const messages = [...list.querySelectorAll(':scope > .msg')];
    if (!messages.length) return;
    const i = current ? messages.indexOf(current) : messages.length;
    const last = messages.length - 1;
    const next = {
      ArrowUp: messages[Math.max(0, i - 1)],
      ArrowDown: current ? messages[Math.min(last, i + 1)] : messages[last],
      Home: messages[0],
      End: messages[last],
      Escape: current ? list : null,
    }[event.key];
    if (!next) return;
    event.preventDefault();
    event.stopPropagation();
    next.focus();
    if (next !== list) next.scrollIntoView({ block: 'nearest' });
  });
}
