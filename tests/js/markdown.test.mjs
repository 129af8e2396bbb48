// The message Markdown subset (parley/web/js/markdown.js): the node tree it builds, raw
// HTML kept as text, links limited to http(s), and the plain text of previews.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { markdownTree, plainText } from '../../parley/web/js/markdown.js';

/** A node tree as compact markup, strings escaped, so an expectation reads at a glance. */
function show(nodes) {
  return nodes.map((n) => {
    if (typeof n === 'string') return n.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
    const attrs = Object.entries(n.props || {})
      .filter(([key]) => key !== 'target' && key !== 'rel')
      .map(([key, value]) => ` ${key}=${JSON.stringify(value)}`)
      .join('');
    return `<${n.tag}${attrs}>${show(n.children)}</${n.tag}>`;
  }).join('');
}

const md = (text, opts) => show(markdownTree(text, opts));
const p = (inner) => `<p class="md-p">${inner}</p>`;

/** Every node of the tree, depth first. */
function* walk(nodes) {
  for (const n of nodes) {
    if (typeof n === 'string') continue;
    yield n;
    yield* walk(n.children);
  }
}

test('plain text is one paragraph, line breaks kept', () => {
  assert.deepEqual(markdownTree('hello\nworld'), [{ tag: 'p', props: { class: 'md-p' }, children: ['hello\nworld'] }]);
});

test('empty or missing content gives one empty paragraph', () => {
  assert.equal(md(''), p(''));
  assert.equal(md(null), p(''));
});

test('bold, italic and strike, both spellings', () => {
  assert.equal(md('**a** __b__ *c* _d_ ~~e~~'), p('<strong>a</strong> <strong>b</strong> <em>c</em> <em>d</em> <s>e</s>'));
});

test('spans nest', () => {
  assert.equal(md('**bold _and italic_**'), p('<strong>bold <em>and italic</em></strong>'));
  assert.equal(md('~~**gone**~~'), p('<s><strong>gone</strong></s>'));
});

test('underscores inside words are not italic (snake_case_names)', () => {
  assert.equal(md('call snake_case_name now'), p('call snake_case_name now'));
});

test('markers need text right inside them', () => {
  assert.equal(md('2 * 3 * 4 and ** x **'), p('2 * 3 * 4 and ** x **'));
});

test('inline code keeps its content as text: no markup, no mentions inside', () => {
  assert.equal(md('run `**x** @bob` now'), p('run <code class="md-code">**x** @bob</code> now'));
  assert.equal(md('``a ` b``'), p('<code class="md-code">a ` b</code>'));
});

test('fenced code block: a pre of the lines between the fences, language not shown', () => {
  assert.equal(md('before\n```js\nlet a = 1;\n**not bold**\n```\nafter'),
    `${p('before')}<pre class="md-pre"><code>let a = 1;\n**not bold**</code></pre>${p('after')}`);
});

test('a one-line fence is a code block; an unclosed fence is text', () => {
  assert.equal(md('```x = 1```'), '<pre class="md-pre"><code>x = 1</code></pre>');
  assert.equal(md('```\nnever closed'), p('```\nnever closed'));
});

test('quotes: consecutive > lines form one blockquote', () => {
  assert.equal(md('> one\n>two\nthree'), `<blockquote class="md-quote">one\ntwo</blockquote>${p('three')}`);
});

test('raw HTML stays text: no element is made from it', () => {
  const text = '<img src=x onerror=alert(1)> <script>alert(2)</script> <b>hi</b> &amp;';
  const tree = markdownTree(text);
  assert.deepEqual(tree, [{ tag: 'p', props: { class: 'md-p' }, children: [text] }]);
  assert.equal(md('**<i>x</i>**'), p('<strong>&lt;i&gt;x&lt;/i&gt;</strong>'));
});

test('the only tags ever built are the subset\'s own', () => {
  const text = '<div><a href="javascript:x">a</a></div>\n> <iframe>\n```\n<svg onload=x>\n```\n**<style>** @bob https://ok.example';
  const tags = new Set([...walk(markdownTree(text))].map((n) => n.tag));
  for (const tag of tags) assert.ok(['p', 'strong', 'em', 's', 'code', 'pre', 'blockquote', 'a', 'span'].includes(tag), tag);
});

test('a labelled link opens in a new tab without opener or referrer', () => {
  const [para] = markdownTree('see [the docs](https://example.org/docs?a=1)');
  const a = para.children[1];
  assert.deepEqual(a, {
    tag: 'a',
    props: { href: 'https://example.org/docs?a=1', target: '_blank', rel: 'noopener noreferrer nofollow' },
    children: ['the docs'],
  });
});

test('bare links are links; trailing punctuation stays outside', () => {
  assert.equal(md('go to https://example.org/a. or (http://x.io/b)!'),
    p('go to <a href="https://example.org/a">https://example.org/a</a>. or (<a href="http://x.io/b">http://x.io/b</a>)!'));
});

test('javascript:, data: and other schemes are refused: the text stays as written', () => {
  for (const text of [
    '[click](javascript:alert(1))',
    '[click](JavaScript:alert(1))',
    '[x](data:text/html,<script>alert(1)</script>)',
    '[x](vbscript:msgbox)',
    '[x](//evil.example/path)',
    'javascript:alert(1)',
    '[x]( javascript:alert(1))',
  ]) {
    const links = [...walk(markdownTree(text))].filter((n) => n.tag === 'a');
    assert.deepEqual(links, [], text);
    assert.equal(md(text), p(show([text])), text);
  }
});

test('every href built is http or https', () => {
  const text = '[a](https://a.example) http://b.example [c](ftp://c.example) [d](javascript:void(0)) mailto:x@y.z';
  const hrefs = [...walk(markdownTree(text))].filter((n) => n.tag === 'a').map((n) => n.props.href);
  assert.deepEqual(hrefs, ['https://a.example', 'http://b.example']);
});

test('a label is Markdown too, but a link cannot hide inside a link', () => {
  assert.equal(md('[**bold** label](https://x.example)'), p('<a href="https://x.example"><strong>bold</strong> label</a>'));
});

test('mentions: marked, and "is-me" when isMe says so', () => {
  const isMe = (name) => name === 'ann';
  assert.equal(md('hi @ann and @bob.smith', { isMe }),
    p('hi <span class="mention is-me" testid="mention" dataset={"username":"ann"}>@ann</span> and '
      + '<span class="mention" testid="mention" dataset={"username":"bob.smith"}>@bob.smith</span>'));
});

test('an e-mail address is not a mention', () => {
  assert.equal(md('mail ann@example.org'), p('mail ann@example.org'));
});

test('deep nesting stops at a bounded depth instead of recursing forever', () => {
  const text = `${'**'.repeat(40)}x${'**'.repeat(40)}`;
  assert.doesNotThrow(() => markdownTree(text));
});

test('plainText drops markup characters for previews', () => {
  assert.equal(plainText('**bold** _it_ ~~s~~ `code` *em*'), 'bold _it_ s code em');
  assert.equal(plainText('[the docs](https://example.org) and ```x```'), 'the docs and x');
  assert.equal(plainText('> quoted\n> twice'), 'quoted\ntwice');
  assert.equal(plainText('<b>stays</b>'), '<b>stays</b>');
  assert.equal(plainText(undefined), '');
});

test('lists: "- item" / "* item" make a bulleted list, "1. item" a numbered one', () => {
  assert.equal(md('- milk\n- **eggs**'), '<ul class="md-list"><li>milk</li><li><strong>eggs</strong></li></ul>');
  assert.equal(md('* one\n+ two'), '<ul class="md-list"><li>one</li><li>two</li></ul>');
  assert.equal(md('1. first\n2. second'), '<ol class="md-list"><li>first</li><li>second</li></ol>');
  assert.equal(md('3) third\n4) fourth'), '<ol class="md-list" start="3"><li>third</li><li>fourth</li></ol>');
  // Text around a list stays paragraphs; a bullet list then a numbered list are two lists.
  assert.equal(md('To buy:\n- milk\nThanks'), `${p('To buy:')}<ul class="md-list"><li>milk</li></ul>${p('Thanks')}`);
  assert.equal(md('- a\n1. b'), '<ul class="md-list"><li>a</li></ul><ol class="md-list"><li>b</li></ol>');
});

test('lists: not a list without the space, and HTML in an item stays text', () => {
  assert.equal(md('*italic* text'), p('<em>italic</em> text'));
  assert.equal(md('-5 degrees'), p('-5 degrees'));
  assert.equal(md('2024.was'), p('2024.was'));
  assert.equal(md('- <b>x</b>'), '<ul class="md-list"><li>&lt;b&gt;x&lt;/b&gt;</li></ul>');
  assert.equal(plainText('- milk\n- eggs'), '• milk\n• eggs');
});
