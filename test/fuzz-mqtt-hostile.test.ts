// Property-based tests of the hub's MQTT decoder (src/mqtt/codec.ts PacketDecoder) against hostile
// input: mutated, spliced and random bytes after (or instead of) a CONNECT, for MQTT 3.1, 3.1.1 and
// 5.0. The decoder reports refusals as a returned MqttError (with the reason code that goes on the
// wire); it must never throw, never hold more than the maximum packet size, and, since one
// mqtt-packet parser serves every connection, one connection's garbage must never leak into another's
// packets. Run count and seed: test/support/fuzz.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { generate, type Packet } from 'mqtt-packet';
import { MAX_REMAINING_LENGTH, PacketDecoder } from '../src/mqtt/codec.js';
import { MqttError } from '../src/mqtt/errors.js';
import { REASON_NAMES } from '../src/mqtt/reason-codes.js';
import { FUZZ_TEST_OPTIONS, checkProperty, chunksOf, cutPoints, hostile } from './support/fuzz.js';
import { anyVersionSessionArb, connectArb, sessionArb } from './support/mqtt-arbitraries.js';

/** Small, so that mutated lengths often cross it, yet above any CONNECT the arbitraries make. */
const MAX_PACKET = 1024;

interface Fed {
  packets: Packet[];
  error: MqttError | null;
  maxPending: number;
}

/** Feeds `chunks` to `decoder` the way the connection does; push() must not throw. */
function feed(chunks: readonly Buffer[], decoder = new PacketDecoder(MAX_PACKET)): Fed {
  const packets: Packet[] = [];
  let error: MqttError | null = null;
  let maxPending = 0;
  for (const c of chunks) {
    let r: MqttError | null;
    try {
      r = decoder.push(c, packets);
    } catch (err) {
      assert.fail(`push threw ${(err as Error).stack}`);
    }
    maxPending = Math.max(maxPending, decoder.pending);
    if (r !== null) {
      assert.ok(r instanceof MqttError, `returned ${String(r)}`);
      // Once refused, a connection stays refused with the same error (it is being closed).
      if (error !== null) assert.equal(r, error);
      error = r;
    }
  }
  return { packets, error, maxPending };
}

/** A session's bytes with hostile bytes after its CONNECT, or instead of everything. */
const hostileStream = fc.oneof(
  anyVersionSessionArb(4).chain((s) => hostile(fc.constant(s.bytes))),
  (fc.constantFrom(3, 4, 5) as fc.Arbitrary<3 | 4 | 5>).chain((v) => fc.tuple(connectArb(v), hostile(sessionArb(v, 4).map((s) => s.bytes))).map(([connect, rest]) => Buffer.concat([generate(connect, { protocolVersion: v }), rest]))),
);

describe('MQTT decoder against hostile input', () => {
  test('mutated, spliced and random packets are refused only with an MqttError, never a throw', FUZZ_TEST_OPTIONS, () => {
    checkProperty([hostileStream, cutPoints], (bytes, cuts) => {
      const r = feed(chunksOf(bytes, cuts));
      if (r.error) assert.ok(r.error.reasonCode in REASON_NAMES, `reason code 0x${r.error.reasonCode.toString(16)} has no name`);
      // [MQTT-3.1.0-1]: the first packet is a CONNECT, or nothing is decoded (the handler refuses the rest).
      for (const p of r.packets) {
        if (p.cmd === 'publish') assert.ok(p.payload.length <= MAX_PACKET);
        assert.ok((p.length ?? 0) <= MAX_PACKET);
      }
    }, 4);
  });

  test('a connection never holds more than the maximum packet size, whatever it is sent', FUZZ_TEST_OPTIONS, () => {
    checkProperty([hostileStream, cutPoints], (bytes, cuts) => {
      const r = feed(chunksOf(bytes, cuts));
      assert.ok(r.maxPending < MAX_PACKET, `held ${r.maxPending} bytes`);
    }, 2);
  });

  test('a packet announced over the maximum size is refused with 0x95 from its fixed header alone', FUZZ_TEST_OPTIONS, () => {
    const arb = fc.record({
      session: anyVersionSessionArb(1).filter((s) => s.bytes.length <= MAX_PACKET),
      type: fc.integer({ min: 2, max: 14 }),
      remaining: fc.integer({ min: MAX_PACKET, max: MAX_REMAINING_LENGTH }),
      cuts: cutPoints,
    });
    checkProperty([arb], ({ session, type, remaining, cuts }) => {
      const header = [type << 4];
      let n = remaining;
      do {
        header.push((n % 128) | (n >= 128 ? 0x80 : 0));
        n = Math.floor(n / 128);
      } while (n > 0);
      const decoder = new PacketDecoder(MAX_PACKET);
      assert.equal(feed([session.bytes], decoder).error, null, 'the session itself is accepted');
      const r = feed(chunksOf(Buffer.concat([Buffer.from(header), Buffer.alloc(64)]), cuts), decoder);
      assert.equal(r.error?.reasonCode, 0x95, r.error?.message);
      assert.ok(r.maxPending <= header.length, `held ${r.maxPending} bytes`);
    });
  });

  test('hostile bytes give the same packets and the same refusal whole or split into reads', FUZZ_TEST_OPTIONS, () => {
    checkProperty([hostileStream, cutPoints], (bytes, cuts) => {
      const whole = feed([bytes]);
      const split = feed(chunksOf(bytes, cuts));
      assert.deepEqual(split.packets, whole.packets);
      assert.equal(split.error?.reasonCode, whole.error?.reasonCode);
      assert.equal(split.error?.message, whole.error?.message);
    }, 2);
  });

  test("one connection's garbage never changes what another connection decodes", FUZZ_TEST_OPTIONS, () => {
    checkProperty([hostileStream, cutPoints, anyVersionSessionArb(4), cutPoints], (bad, badCuts, good, goodCuts) => {
      const expected = feed([good.bytes], new PacketDecoder(1 << 20));
      assert.equal(expected.error, null);
      // Reads of the two connections interleaved, as the event loop delivers them.
      const badChunks = chunksOf(bad, badCuts);
      const goodChunks = chunksOf(good.bytes, goodCuts);
      const badDecoder = new PacketDecoder(MAX_PACKET);
      const goodDecoder = new PacketDecoder(1 << 20);
      const got: Packet[] = [];
      for (let i = 0; i < Math.max(badChunks.length, goodChunks.length); i++) {
        if (i < badChunks.length) feed([badChunks[i]!], badDecoder);
        if (i < goodChunks.length) assert.equal(goodDecoder.push(goodChunks[i]!, got), null);
      }
      assert.deepEqual(got, expected.packets);
    });
  });
});
