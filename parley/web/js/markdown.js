// A small, safe Markdown subset for message content, built as DOM nodes (never HTML):
//
//   **bold** __bold__  *italic* _italic_  ~~strike~~  `code`  ```code block```
//   > quote   - item / * item   1. item   [label](https://link)   bare https:// links
//   @mentions
//
// Everything else, raw HTML included, stays text. Links are http(s) only and open in a
// new tab with rel="noopener noreferrer"; there are no images from URLs.
//
// markdownTree() is pure (the unit tests in tests/js/ run it in Node): it returns nodes,
// {tag, props, children} or a string of text. renderMarkdown() builds them as DOM with
// dom.js's h(), which puts every string in as a text node.

import { h } from './dom.js';

// Code spans bind first: nothing inside them is markup (nor a mention, as on the server).
const CODE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g;

const SPANS = new RegExp([
  '\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*', // 1: bold
  '(?<![\\p{L}\\p{N}_])__(?=\\S)([\\s\\S]*?\\S)__(?![\\p{L}\\p{N}_])', // 2: bold
  '~~(?=\\S)([\\s\\S]*?\\S)~~', // 3: strike
  '\\*(?=[^\\s*])([\\s\\S]*?[^\\s*])\\*', // 4: italic
  '(?<![\\p{L}\\p{N}_])_(?=[^\\s_])([\\s\\S]*?[^\\s_])_(?![\\p{L}\\p{N}_])', // 5: italic
  '\\[([^\\]\\n]+)\\]\\((https?:\\/\\/[^\\s()<>]+)\\)', // 6, 7: link
  '(https?:\\/\\/[^\\s<>"\']+[^\\s<>"\'.,;:!?)\\]])', // 8: bare link
  '(?<![\\p{L}\\p{N}_.@])@([A-Za-z0-9_](?:[A-Za-z0-9_.\\-]*[A-Za-z0-9_])?)', // 9: mention
].join('|'), 'gu');

const MAX_DEPTH = 6;

const node = (tag, props, ...children) => ({ tag, props, children: children.flat() });

function link(href, children) {
  return node('a', { href, target: '_blank', rel: 'noopener noreferrer nofollow' }, children);
}

/**
 * Inline nodes for `text`. `isMe(username)` marks mentions of me (`@all` included when
 * the message mentions me).
 */
function inline(text, opts = {}) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(CODE)) {
    if (m.index > last) out.push(...spans(text.slice(last, m.index), opts, 0));
    out.push(node('code', { class: 'md-code' }, m[2]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(...spans(text.slice(last), opts, 0));
  return out;
}

function spans(text, opts, depth) {
  if (depth > MAX_DEPTH) return [text];
  const out = [];
  let last = 0;
  for (const m of text.matchAll(SPANS)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    last = m.index + m[0].length;
    const inner = (s) => spans(s, opts, depth + 1);
    if (m[1] !== undefined) out.push(node('strong', null, inner(m[1])));
    else if (m[2] !== undefined) out.push(node('strong', null, inner(m[2])));
    else if (m[3] !== undefined) out.push(node('s', null, inner(m[3])));
    else if (m[4] !== undefined) out.push(node('em', null, inner(m[4])));
    else if (m[5] !== undefined) out.push(node('em', null, inner(m[5])));
    else if (m[6] !== undefined) out.push(link(m[7], inner(m[6])));
    else if (m[8] !== undefined) out.push(link(m[8], m[8]));
    else if (m[9] !== undefined) {
      const me = opts.isMe ? opts.isMe(m[9]) : false;
      out.push(node('span', { class: `mention${me ? ' is-me' : ''}`, testid: 'mention', dataset: { username: m[9] } }, `@${m[9]}`));
    }
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

/** Block structure: fenced code, quotes, and paragraphs (line breaks kept), as nodes. */
export function markdownTree(text, opts = {}) {
  const lines = String(text || '').split('\n');
  const out = [];
  let para = [];
  const flush = () => {
    if (!para.length) return;
    out.push(node('p', { class: 'md-p' }, inline(para.join('\n'), opts)));
    para = [];
  };
  for (let i = 0; i < lines.length; i += 1) {
    const line = lines[i];
    const fence = line.match(/^\s*```(.*)$/);
    if (fence) {
      const end = lines.findIndex((l, j) => j > i && /^\s*```\s*$/.test(l));
      if (end !== -1) {
        flush(); // the text after the opening fence is a language name: not shown
        out.push(node('pre', { class: 'md-pre' }, node('code', null, lines.slice(i + 1, end).join('\n'))));
        i = end;
        continue;
      }
      const oneLine = line.match(/^\s*```(.+?)```\s*$/);
      if (oneLine) {
        flush();
        out.push(node('pre', { class: 'md-pre' }, node('code', null, oneLine[1])));
        continue;
      }
    }
    if (/^\s*>/.test(line)) {
      flush();
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) {
        quoted.push(lines[i].replace(/^\s*> ?/, ''));
        i += 1;
      }
      i -= 1;
      out.push(node('blockquote', { class: 'md-quote' }, inline(quoted.join('\n'), opts)));
      continue;
    }
    const item = listItem(line);
    if (item) {
      flush();
      const items = [];
      const start = item.number;
      while (i < lines.length) {
        const next = listItem(lines[i]);
        if (!next || next.ordered !== item.ordered) break;
        items.push(node('li', null, inline(next.text, opts)));
        i += 1;
      }
      i -= 1;
      const props = { class: 'md-list' };
      if (item.ordered && start !== 1) props.start = String(start);
      out.push(node(item.ordered ? 'ol' : 'ul', props, items));
      continue;
    }
    para.push(line);
  }
  flush();
  return out;
}

/** `- item`, `* item`, `+ item` or `1. item` / `1) item`: the item, else null. */
function listItem(line) {
  const bullet = line.match(/^\s*[-*+]\s+(\S.*)$/);
  if (bullet) return { ordered: false, text: bullet[1] };
  const numbered = line.match(/^\s*(\d{1,9})[.)]\s+(\S.*)$/);
  if (numbered) return { ordered: true, number: Number(numbered[1]), text: numbered[2] };
  return null;
}

/** The message as DOM nodes, ready to append. */
export const renderMarkdown = (text, opts = {}) => toDom(markdownTree(text, opts));

function toDom(nodes) {
  return nodes.map((n) => (typeof n === 'string' ? n : h(n.tag, n.props, toDom(n.children))));
}

/** The text without markup characters (for previews and notifications). */
export function plainText(text) {
  return String(text || '')
    .replace(/```/g, '')
    .replace(/\[([^\]\n]+)\]\((https?:\/\/[^\s()<>]+)\)/g, '$1')
    .replace(/(\*\*|__|~~|`)(?=\S)([\s\S]*?\S)\1/g, '$2')
    .replace(/\*(?=[^\s*])([\s\S]*?[^\s*])\*/g, '$1')
    .replace(/^\s*> ?/gm, '')
    .replace(/^\s*[-*+]\s+(?=\S)/gm, '• ');
}
