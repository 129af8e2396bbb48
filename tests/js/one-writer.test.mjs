// state.js is the only writer of the client's state: no other module of parley/web/js
// assigns a field of `state`, changes one of its maps or sets, or a loaded history's fields.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';

const ROOT = new URL('../../parley/web/js/', import.meta.url);
const WRITES = [
  /\bstate\.\w+\s*(=(?!=)|\+=|-=|\|\|=|\?\?=)/, // state.me = …
  /\bstate\.\w+(\.get\([^)]*\))?\.(set|delete|clear|add)\(/, // state.history.delete(…)
  /\bhist\.\w+\s*=(?!=)/, // hist.loading = …
  /\bpendingOf\([^)]*\)\.(set|delete|clear)\(/, // store.pendingOf(id).delete(…)
];

test('no module but state.js writes the state', () => {
  const files = readdirSync(ROOT, { recursive: true })
    .filter((f) => f.endsWith('.js') && f !== 'state.js' && f !== 'emoji-data.js');
  assert.ok(files.includes('actions.js') && files.includes('app.js'), 'the modules were found');
  const writes = [];
  for (const file of files) {
    readFileSync(new URL(file, ROOT), 'utf8').split('\n').forEach((line, i) => {
      if (WRITES.some((re) => re.test(line))) writes.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assert.deepEqual(writes, []);
});
