// The emoji picker: every emoji by category, search by name (English and the interface
// language), recently used and a skin tone, both remembered in localStorage. Used for
// reactions and by the composer. The data (js/emoji-data.js) loads on first open.

import { h } from '../dom.js';
import { shortcodesOf } from '../emoji-shortcodes.js';
import { locale, t } from '../i18n.js';

const RECENT_KEY = 'parley.emoji.recent';
const TONE_KEY = 'parley.emoji.tone';
const RECENT_MAX = 24;
const TONES = ['', '\u{1F3FB}', '\u{1F3FC}', '\u{1F3FD}', '\u{1F3FE}', '\u{1F3FF}'];
const CATEGORY_ICONS = {
  recent: '🕘', smileys: '😀', people: '👋', nature: '🐻', food: '🍔', travel: '✈️',
  activities: '⚽', objects: '💡', symbols: '❤️', flags: '🏁',
};

let data = null; // {categories, list: [{emoji, category, en, ru, tones}], byEmoji}
let open = null; // {panel, close}

async function loadData() {
  if (data) return data;
  const { CATEGORIES, EMOJI } = await import('../emoji-data.js');
  const list = EMOJI.map(([cat, emoji, en, ru, tones]) => ({
    emoji, category: CATEGORIES[cat], tones: Boolean(tones),
    en: en.split('|')[0], ru: ru.split('|')[0],
    // The :shortcodes: (tada, +1, thumbsup) count as names: an exact one ranks first.
    names: [en.split('|')[0].toLowerCase(), ru.split('|')[0].toLowerCase(), ...shortcodesOf(emoji)],
    words: `${en} ${ru} ${shortcodesOf(emoji).join(' ')}`.replaceAll('|', ' ').toLowerCase(),
  }));
  data = { categories: CATEGORIES, list, byEmoji: new Map(list.map((e) => [e.emoji, e])) };
  return data;
}

function read(key, fallback) {
  try { return JSON.parse(localStorage.getItem(key)) ?? fallback; } catch { return fallback; }
}

function write(key, value) {
  try { localStorage.setItem(key, JSON.stringify(value)); } catch { /* private mode */ }
}

export const recentEmoji = () => read(RECENT_KEY, []);
export const skinTone = () => Math.min(5, Math.max(0, Number(read(TONE_KEY, 0)) || 0));

/** The skin-tone variant: the modifier right after the first code point (FE0F dropped). */
export function withTone(emoji, tone) {
  if (!tone) return emoji;
  const [first, ...rest] = [...emoji];
  if (rest[0] === '\uFE0F') rest.shift();
  return first + TONES[tone] + rest.join('');
}

function remember(base) {
  write(RECENT_KEY, [base, ...recentEmoji().filter((e) => e !== base)].slice(0, RECENT_MAX));
}

export function closeEmojiPicker() {
  open?.close();
}

/**
 * Opens the picker next to `anchor`; `onPick(emoji)` gets the chosen emoji (skin tone
 * applied). Escape, a click outside or a pick closes it and focus returns to the anchor.
 */
export async function openEmojiPicker({ anchor, onPick, onClose, label = t('emoji.title') }) {
  const again = open?.anchor === anchor;
  closeEmojiPicker();
  if (again) return null; // its button toggles it
  const { categories, list, byEmoji } = await loadData();
  let tone = skinTone();
  const search = h('input', { type: 'search', class: 'input emoji-search', placeholder: t('emoji.search'), 'aria-label': t('emoji.search'), testid: 'emoji-search', autocomplete: 'off' });
  const grid = h('div', { class: 'emoji-grid', testid: 'emoji-grid' });
  const nav = h('div', { class: 'emoji-nav', role: 'toolbar', 'aria-label': t('emoji.categories') });
  const toneButton = h('button', { type: 'button', class: 'emoji-tone-btn', testid: 'emoji-tone', 'aria-haspopup': 'true', 'aria-expanded': 'false' });
  const tones = h('div', { class: 'emoji-tones', role: 'radiogroup', 'aria-label': t('emoji.skinTone'), testid: 'emoji-tones', hidden: true });
  const status = h('div', { class: 'emoji-status', role: 'status', 'aria-live': 'polite' });
  const panel = h('div', { class: 'emoji-panel', role: 'dialog', 'aria-label': label, testid: 'emoji-panel' },
    h('div', { class: 'emoji-top' }, search, toneButton), tones, nav, grid, status);

  const nameOf = (e) => (locale() === 'ru' ? e.ru : e.en) || e.en;
  const shown = (e) => (e.tones ? withTone(e.emoji, tone) : e.emoji);
  const button = (e) => h('button', {
    type: 'button', class: 'emoji-btn', title: nameOf(e), 'aria-label': nameOf(e), tabindex: -1,
    testid: `emoji-option-${e.emoji}`, dataset: { emoji: e.emoji },
    onclick: () => pick(e),
  }, shown(e));
  const section = (key, items) => h('section', { class: 'emoji-section', dataset: { category: key }, 'aria-label': t(`emoji.category.${key}`) },
    h('h4', { class: 'emoji-heading', id: `emoji-cat-${key}` }, t(`emoji.category.${key}`)),
    h('div', { class: 'emoji-row', role: 'group', 'aria-labelledby': `emoji-cat-${key}`, testid: `emoji-section-${key}` }, items.map(button)));

  const renderAll = () => {
    const recent = recentEmoji().map((e) => byEmoji.get(e)).filter(Boolean);
    const sections = recent.length ? [section('recent', recent)] : [];
    for (const cat of categories) sections.push(section(cat, list.filter((e) => e.category === cat)));
    grid.replaceChildren(...sections);
    nav.replaceChildren(...['recent', ...categories].filter((c) => c !== 'recent' || recent.length).map((cat) => h('button', {
      type: 'button', class: 'emoji-nav-btn', title: t(`emoji.category.${cat}`), 'aria-label': t(`emoji.category.${cat}`), testid: `emoji-nav-${cat}`,
      onclick: () => grid.querySelector(`[data-category="${cat}"]`)?.scrollIntoView({ block: 'start' }),
    }, CATEGORY_ICONS[cat])));
    status.textContent = '';
    rove();
  };
  const renderSearch = (q) => {
    const query = q.toLowerCase().replace(/^:|:$/g, ''); // `:tada:` as typed in a message
    const words = query.split(/\s+/).filter(Boolean);
    // Best first: the exact name, a name that starts with it, the words in a name, a tag.
    const rank = (e) => (e.names.includes(query) ? 0 : e.names.some((n) => n.startsWith(query)) ? 1
      : e.names.some((n) => words.every((w) => n.includes(w))) ? 2 : 3);
    const found = list.filter((e) => words.every((w) => e.words.includes(w)))
      .map((e) => [rank(e), e]).sort((a, b) => a[0] - b[0]).map(([, e]) => e).slice(0, 200);
    grid.replaceChildren(found.length
      ? h('section', { class: 'emoji-section', 'aria-label': t('emoji.results') }, h('div', { class: 'emoji-row', role: 'group', testid: 'emoji-results' }, found.map(button)))
      : h('p', { class: 'list-empty', testid: 'emoji-none' }, t('emoji.none')));
    status.textContent = t('emoji.found', { count: found.length });
    rove();
  };
  const renderTones = () => {
    toneButton.textContent = withTone('✋', tone);
    toneButton.title = t('emoji.skinTone');
    toneButton.setAttribute('aria-label', `${t('emoji.skinTone')}: ${t(`emoji.tone.${tone}`)}`);
    tones.replaceChildren(...TONES.map((_, i) => h('button', {
      type: 'button', role: 'radio', class: 'emoji-btn', 'aria-checked': String(i === tone), title: t(`emoji.tone.${i}`), 'aria-label': t(`emoji.tone.${i}`),
      testid: `emoji-tone-${i}`, onclick: () => setTone(i),
    }, withTone('✋', i))));
  };
  const setTone = (i) => {
    tone = i;
    write(TONE_KEY, i);
    tones.hidden = true;
    toneButton.setAttribute('aria-expanded', 'false');
    renderTones();
    if (search.value.trim()) renderSearch(search.value.trim()); else renderAll();
    toneButton.focus();
  };
  // One tab stop in the grid (roving tabindex); arrows move between emoji.
  const rove = () => {
    const first = grid.querySelector('.emoji-btn');
    if (first) first.tabIndex = 0;
  };
  grid.addEventListener('keydown', (event) => {
    const buttons = [...grid.querySelectorAll('.emoji-btn')];
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    const columns = Math.max(1, Math.round(grid.clientWidth / (buttons[0].offsetWidth || 36)));
    const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns, Home: -i, End: buttons.length - 1 - i }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    const next = buttons[Math.min(buttons.length - 1, Math.max(0, i + step))];
    buttons[i].tabIndex = -1;
    next.tabIndex = 0;
    next.focus();
  });
  search.addEventListener('input', () => {
    const q = search.value.trim();
    if (q) renderSearch(q); else renderAll();
  });
  search.addEventListener('keydown', (event) => {
    if (event.key === 'Enter') {
      event.preventDefault();
      grid.querySelector('.emoji-btn')?.click();
    } else if (event.key === 'ArrowDown') {
      event.preventDefault();
      grid.querySelector('.emoji-btn')?.focus();
    }
  });
  toneButton.addEventListener('click', () => {
    tones.hidden = !tones.hidden;
    toneButton.setAttribute('aria-expanded', String(!tones.hidden));
    if (!tones.hidden) tones.querySelector('[aria-checked="true"]')?.focus();
  });

  function pick(e) {
    remember(e.emoji);
    close();
    onPick(shown(e));
  }
  const onOutside = (event) => {
    if (!panel.contains(event.target) && !anchor.contains(event.target)) close(false);
  };
  const onKey = (event) => {
    if (event.key !== 'Escape') return;
    event.preventDefault();
    event.stopPropagation();
    close();
  };
  function close(refocus = true) {
    if (!panel.isConnected) return;
    panel.remove();
    document.removeEventListener('pointerdown', onOutside, true);
    window.removeEventListener('resize', place);
    open = null;
    anchor.setAttribute('aria-expanded', 'false');
    if (refocus && anchor.isConnected) anchor.focus();
    onClose?.();
  }
  function place() {
    const r = anchor.getBoundingClientRect();
    const width = Math.min(352, window.innerWidth - 16);
    const height = Math.min(420, window.innerHeight - 16);
    panel.style.width = `${width}px`;
    panel.style.height = `${height}px`;
    const left = Math.min(Math.max(8, r.right - width), window.innerWidth - width - 8);
    const above = r.top - height - 6;
    const top = above >= 8 ? above : Math.min(r.bottom + 6, window.innerHeight - height - 8);
    panel.style.left = `${left}px`;
    panel.style.top = `${Math.max(8, top)}px`;
  }

  renderTones();
  renderAll();
  panel.addEventListener('keydown', onKey);
  // A dialog open (chat info, search...) is the top layer: the panel goes inside it.
  (anchor.closest('dialog[open]') || document.body).append(panel);
  place();
  window.addEventListener('resize', place);
  document.addEventListener('pointerdown', onOutside, true);
  anchor.setAttribute('aria-expanded', 'true');
  open = { panel, close, anchor };
  if (window.matchMedia('(pointer: fine)').matches) search.focus();
  else grid.querySelector('.emoji-btn')?.focus({ preventScroll: true });
  return panel;
}
