// Property-based tests of the UDP discovery text (seed 002 "Local Discovery Service"): the query test
// a device applies to every datagram on its LAN, and the answer parser `cloudrest discover` applies to
// every reply. Run count and seed: test/support/fuzz.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { MAX_QUERY_BYTES, formatAnswer, isQuery, parseAnswer } from '../src/agent/discovery/udp-text.js';
import { FUZZ_TEST_OPTIONS, checkProperty, hostile, randomBytes, record } from './support/fuzz.js';

const macArb = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 })
  .chain((b) => fc.boolean().map((upper) => b.map((x) => x.toString(16).padStart(2, '0')).join(':')[upper ? 'toUpperCase' : 'toLowerCase']()));
const urlArb = fc.webUrl({ validSchemes: ['http', 'https'], size: 'small' });
/** Any name a device's GET /device may report, separators and control characters included. */
const nameArb = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 80 }),
  fc.string({ unit: fc.constantFrom('|', ' ', 'a', '\n', '\t', '\u0000', 'é'), maxLength: 20 }),
);
const answerArb = record({ mac: macArb, name: nameArb, url: urlArb });

describe('UDP discovery text under fuzzing', () => {
  test('every answer a device formats parses back to its MAC and URL, whatever its name', FUZZ_TEST_OPTIONS, () => {
    checkProperty([answerArb], (a) => {
      const parsed = parseAnswer(Buffer.from(formatAnswer(a)));
      assert.ok(parsed, `not parsed: ${JSON.stringify(formatAnswer(a))}`);
      assert.equal(parsed.mac, a.mac.toLowerCase());
      assert.equal(parsed.url, a.url);
      assert.ok(!parsed.name.includes('||'));
      // eslint-disable-next-line no-control-regex
      assert.ok(!/[\u0000-\u001f\u007f]/.test(parsed.name));
      assert.ok(parsed.name.length > 0 && parsed.name.length <= 64);
    }, 2);
  });

  test('a clean device name comes back exactly', FUZZ_TEST_OPTIONS, () => {
    const clean = fc.string({ unit: fc.constantFrom('a', 'Z', '0', ' ', '-', 'é', '|'), minLength: 1, maxLength: 64 })
      .filter((s) => s.trim() === s && s.length > 0 && !s.includes('||'));
    checkProperty([macArb, clean, urlArb], (mac, name, url) => {
      assert.equal(parseAnswer(Buffer.from(formatAnswer({ mac, name, url })))?.name, name);
    });
  });

  test('hostile datagrams never throw, and what is taken as an answer is well-formed', FUZZ_TEST_OPTIONS, () => {
    const valid = answerArb.map((a) => Buffer.from(formatAnswer(a)));
    checkProperty([fc.oneof(hostile(valid, 1500), randomBytes(MAX_QUERY_BYTES + 8))], (msg) => {
      const q = isQuery(msg);
      if (q) assert.ok(msg.length <= MAX_QUERY_BYTES && !msg.toString('latin1').startsWith('CloudREST ||'));
      const a = parseAnswer(msg);
      if (a) {
        assert.ok(!q, 'an answer is never also a query (devices would answer each other)');
        assert.match(a.mac, /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/);
        assert.ok(/^https?:$/.test(new URL(a.url).protocol));
      }
    }, 2);
  });
});
