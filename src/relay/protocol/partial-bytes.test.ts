import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { encodeHeader } from './frames.js';
import { PartialBytes } from './partial-bytes.js';
import { FrameParser } from './parser.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** Heap and ArrayBuffer bytes in use after a full collection. */
function used(): number {
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

test('pieces of every size come back joined in order, and peek shows the start without consuming it', () => {
  const held = new PartialBytes();
  const pieces = [1, 3, 70, 0, 200, 5000, 2, 4095, 4096, 9].map((n, i) => Buffer.alloc(n, i + 1));
  const whole = Buffer.concat(pieces);
  for (const p of pieces) held.append(p);
  assert.equal(held.length, whole.length);
  assert.deepEqual(held.peek(80), whole.subarray(0, 80));
  assert.equal(held.length, whole.length);
  assert.deepEqual(held.take(Buffer.from('end')), Buffer.concat([whole, Buffer.from('end')]));
  assert.equal(held.length, 0);
});

test('a small piece is copied, so it does not pin the large read it came from', () => {
  const read = Buffer.alloc(64 * 1024, 7);
  const held = new PartialBytes();
  held.append(read.subarray(read.length - 10));
  assert.notEqual(held.take().buffer, read.buffer);
});

test('a frame trickled one byte per read costs about its size, not a Buffer per byte', () => {
  const parser = new FrameParser(1 << 20);
  parser.push(encodeHeader(5, 0, 1, 1 << 20), () => assert.fail('the frame is not complete'));
  const before = used();
  for (let i = 0; i < 100_000; i++) parser.push(Buffer.from([0x61]), () => assert.fail('the frame is not complete'));
  const grown = used() - before;
  assert.equal(parser.pending, 100_010);
  // One Buffer per read held ~13 MB here.
  assert.ok(grown < 1_000_000, `grew ${grown} bytes holding 100,000`);
});
