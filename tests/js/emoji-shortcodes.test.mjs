// The common emoji shortcodes (parley/web/js/emoji-shortcodes.js): names, and expansion as
// the closing colon is typed in the composer.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { EMOJI } from '../../parley/web/js/emoji-data.js';
import { emojiOf, expandShortcode, shortcodesOf, SHORTCODES } from '../../parley/web/js/emoji-shortcodes.js';

test('the common names are known, with or without colons, in any case', () => {
  assert.equal(emojiOf('tada'), '🎉');
  assert.equal(emojiOf(':+1:'), '👍');
  assert.equal(emojiOf('ThumbsUp'), '👍');
  assert.equal(emojiOf('-1'), '👎');
  assert.equal(emojiOf('nosuchname'), null);
  assert.equal(emojiOf('constructor'), null); // not an Object.prototype name
  assert.deepEqual(shortcodesOf('👍'), ['+1', 'thumbsup']);
});

test('every shortcode names an emoji the picker (and the server) knows', () => {
  const known = new Set(EMOJI.map((row) => row[1]));
  const missing = Object.entries(SHORTCODES).filter(([, emoji]) => !known.has(emoji));
  assert.deepEqual(missing, []);
});

test('expandShortcode replaces a :name: just closed at the caret', () => {
  assert.deepEqual(expandShortcode('well done :tada:', 16), { text: 'well done 🎉', caret: 12 });
  assert.deepEqual(expandShortcode(':+1: and more', 4), { text: '👍 and more', caret: 2 });
  assert.equal(expandShortcode('at 10:30:', 9), null); // a time, not a name
  assert.equal(expandShortcode('say :nothing:', 13), null); // unknown name
  assert.equal(expandShortcode('`a :tada:', 9), null); // inside code
  assert.equal(expandShortcode('say :tada: now', 14), null); // not at the caret
});
