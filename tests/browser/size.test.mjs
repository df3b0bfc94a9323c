// Test 8: the tracker stays small. It is one file with no dependencies and no build step.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Script } from 'node:vm';
import { gzipSync } from 'node:zlib';
import { TRACKER } from './lib.mjs';

const LIMIT = 8 * 1024;

test(`pulse.js is at most ${LIMIT} bytes gzipped`, () => {
  const source = readFileSync(TRACKER);
  const gzipped = gzipSync(source, { level: 9 }).length;
  console.log(`pulse.js: ${source.length} bytes, ${gzipped} bytes gzipped (limit ${LIMIT})`);
  assert.ok(gzipped <= LIMIT, `pulse.js is ${gzipped} bytes gzipped, over ${LIMIT}`);
});

test('pulse.js is a plain script with no imports', () => {
  const source = readFileSync(TRACKER, 'utf8');
  assert.doesNotThrow(() => new Script(source, { filename: 'pulse.js' }));
  assert.doesNotMatch(source, /^\s*(import|export)\s/m);
  assert.doesNotMatch(source, /\brequire\(/);
});
