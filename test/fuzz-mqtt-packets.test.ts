// Property-based round trips of the hub's MQTT decoder (src/mqtt/codec.ts PacketDecoder, with its fast
// path src/mqtt/fast-decode.ts): what a client encodes, for MQTT 3.1, 3.1.1 and 5.0 with properties,
// comes out of the decoder field for field, however the bytes are split into reads.
// Run count and seed: test/support/fuzz.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Packet } from 'mqtt-packet';
import { PacketDecoder } from '../src/mqtt/codec.js';
import { FUZZ_TEST_OPTIONS, checkProperty, chunksOf, cutPoints } from './support/fuzz.js';
import { sentFields, sessionArb, type Version } from './support/mqtt-arbitraries.js';

const MAX_PACKET = 1 << 20;

function decodeAll(chunks: readonly Buffer[]): { packets: Packet[]; decoder: PacketDecoder } {
  const decoder = new PacketDecoder(MAX_PACKET);
  const packets: Packet[] = [];
  for (const c of chunks) {
    const err = decoder.push(c, packets);
    assert.equal(err, null, `refused a valid packet: ${err?.message}`);
  }
  return { packets, decoder };
}

for (const [version, name] of [[3, 'MQTT 3.1'], [4, 'MQTT 3.1.1'], [5, 'MQTT 5.0']] as Array<[Version, string]>) {
  describe(`${name} packets under fuzzing`, () => {
    test('every packet a client sends decodes to the fields it was encoded from, split at any points', FUZZ_TEST_OPTIONS, () => {
      checkProperty([sessionArb(version), cutPoints], (s, cuts) => {
        const { packets, decoder } = decodeAll(chunksOf(s.bytes, cuts));
        assert.equal(packets.length, s.packets.length);
        s.packets.forEach((sent, i) => assert.deepEqual(sentFields(packets[i]!, sent), sent, `packet ${i} (${sent.cmd})`));
        assert.equal(decoder.protocolVersion, version);
        assert.equal(decoder.pending, 0);
      }, version === 5 ? 1.5 : 1);
    });

    test('the same bytes give the same packets whole, split at random points, or byte by byte', FUZZ_TEST_OPTIONS, () => {
      checkProperty([sessionArb(version, 3), cutPoints], (s, cuts) => {
        const whole = decodeAll([s.bytes]).packets;
        assert.deepEqual(decodeAll(chunksOf(s.bytes, cuts)).packets, whole);
        assert.deepEqual(decodeAll(Array.from(s.bytes, (_, i) => s.bytes.subarray(i, i + 1))).packets, whole);
      }, 0.5);
    });
  });
}
