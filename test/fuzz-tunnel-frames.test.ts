// Property-based tests of the tunnel's decoders (docs/protocol.md): the streaming frame parser and
// every payload decoder a peer's frame reaches. Run count and seed: test/support/fuzz.ts.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import {
  ErrorCode,
  FRAME_TYPE_NAMES,
  HEADER_BYTES,
  ProtocolError,
  decodeGoaway,
  decodeNotify,
  encodeFrame,
  encodeGoaway,
  encodeHeader,
  encodeNotify,
  readU32,
  u32,
  type Frame,
} from '../src/relay/protocol/frames.js';
import { hasFeature, parseHandshake, peerLimits } from '../src/relay/protocol/handshake.js';
import { decodeRequestHead, decodeResponseHead, encodeRequestHead, encodeResponseHead, type HeaderList } from '../src/relay/protocol/heads.js';
import { PartialBytes } from '../src/relay/protocol/partial-bytes.js';
import { FrameParser } from '../src/relay/protocol/parser.js';
import { FUZZ_TEST_OPTIONS, checkProperty, chunksOf, cutPoints, hostile, onlyThrows, randomBytes, record } from './support/fuzz.js';

const MAX_FRAME = 1024;
const TYPES = Object.keys(FRAME_TYPE_NAMES).map(Number);

const frameArb = (maxPayload = MAX_FRAME): fc.Arbitrary<Frame> => record({
  type: fc.constantFrom(...TYPES),
  flags: fc.integer({ min: 0, max: 255 }),
  stream: fc.integer({ min: 0, max: 0xffffffff }),
  payload: randomBytes(maxPayload),
});
const encode = (frames: readonly Frame[]): Buffer => Buffer.concat(frames.flatMap((f) => encodeFrame(f.type, f.flags, f.stream, f.payload)));
const framesArb = fc.array(frameArb(), { maxLength: 6 });
/** Valid frame streams, with small payloads so that mutations land in headers as often as in payloads. */
const streamArb = fc.array(frameArb(40), { minLength: 1, maxLength: 6 }).map(encode);

/** Feeds `chunks` to a fresh parser: the frames it gave, the ProtocolError that stopped it, the most it held. */
function feed(chunks: readonly Buffer[], maxFrame = MAX_FRAME): { frames: Frame[]; error: ProtocolError | undefined; maxPending: number } {
  const parser = new FrameParser(maxFrame);
  const frames: Frame[] = [];
  let maxPending = 0;
  const error = onlyThrows(ProtocolError, () => {
    for (const c of chunks) {
      parser.push(c, (f) => frames.push({ ...f, payload: Buffer.from(f.payload) }));
      maxPending = Math.max(maxPending, parser.pending);
    }
  });
  return { frames, error, maxPending };
}

describe('tunnel frame parser under fuzzing', () => {
  test('valid frames split anywhere come out as they went in, and nothing is left held', FUZZ_TEST_OPTIONS, () => {
    checkProperty([framesArb, cutPoints], (frames, cuts) => {
      const parser = new FrameParser(MAX_FRAME);
      const out: Frame[] = [];
      for (const c of chunksOf(encode(frames), cuts)) parser.push(c, (f) => out.push({ ...f, payload: Buffer.from(f.payload) }));
      assert.deepEqual(out, frames);
      assert.equal(parser.pending, 0);
    });
  });

  test('hostile bytes are refused only with ProtocolError, and never held past one frame', FUZZ_TEST_OPTIONS, () => {
    checkProperty([hostile(streamArb), cutPoints], (bytes, cuts) => {
      const r = feed(chunksOf(bytes, cuts));
      assert.ok(r.maxPending < HEADER_BYTES + MAX_FRAME, `held ${r.maxPending} bytes`);
      for (const f of r.frames) {
        assert.ok(f.payload.length <= MAX_FRAME);
        assert.ok(f.type in FRAME_TYPE_NAMES);
      }
    }, 4);
  });

  test('hostile bytes give the same frames and the same refusal whether they come whole or in pieces', FUZZ_TEST_OPTIONS, () => {
    checkProperty([hostile(streamArb), cutPoints], (bytes, cuts) => {
      const whole = feed([bytes]);
      const split = feed(chunksOf(bytes, cuts));
      assert.deepEqual(split.frames, whole.frames);
      assert.equal(split.error?.message, whole.error?.message);
    }, 2);
  });

  test('a frame announced over the limit is refused once its header is in, before any payload is held', FUZZ_TEST_OPTIONS, () => {
    const arb = record({
      type: fc.constantFrom(...TYPES),
      length: fc.integer({ min: MAX_FRAME + 1, max: 0xffffffff }),
      body: randomBytes(64),
      cuts: cutPoints,
    });
    checkProperty([arb], ({ type, length, body, cuts }) => {
      const bytes = Buffer.concat([encodeHeader(type, 0, 1, length), body]);
      const parser = new FrameParser(MAX_FRAME);
      let fed = 0;
      const err = onlyThrows(ProtocolError, () => {
        for (const c of chunksOf(bytes, cuts)) {
          parser.push(c, () => assert.fail('no frame may come out'));
          fed += c.length;
          assert.ok(parser.pending < HEADER_BYTES, `held ${parser.pending} bytes of an oversized frame`);
        }
      });
      assert.equal(err?.code, ErrorCode.FRAME_TOO_LARGE);
      assert.ok(fed < HEADER_BYTES, `refused only after ${fed} bytes`); // the chunk that completed the header threw
    });
  });
});

describe('partial frame bytes under fuzzing', () => {
  test('any reads held, peeked at and taken come back as the bytes that were read, in order', FUZZ_TEST_OPTIONS, () => {
    const step = fc.oneof(
      { arbitrary: fc.oneof(randomBytes(80), randomBytes(9000)).map((b) => ({ append: b })), weight: 4 },
      { arbitrary: fc.nat().map((n) => ({ peek: n })), weight: 1 },
    );
    checkProperty([fc.array(step, { maxLength: 20 }), randomBytes(16)], (steps, last) => {
      const held = new PartialBytes();
      const expected: Buffer[] = [];
      for (const s of steps) {
        if ('append' in s) {
          held.append(s.append);
          expected.push(s.append);
        } else {
          const n = s.peek % (held.length + 1);
          assert.deepEqual(held.peek(n), Buffer.concat(expected).subarray(0, n));
        }
        assert.equal(held.length, Buffer.concat(expected).length);
      }
      assert.deepEqual(held.take(last), Buffer.concat([...expected, last]));
      assert.equal(held.length, 0);
    });
  });
});

const latin1 = (max: number): fc.Arbitrary<string> => fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)), maxLength: max });
const headersArb: fc.Arbitrary<HeaderList> = fc.array(fc.tuple(latin1(20), latin1(40)), { maxLength: 8 });
const requestHeadArb = record({
  method: fc.stringMatching(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,16}$/),
  target: fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => `/${s}`),
  headers: headersArb,
});
const responseHeadArb = record({ status: fc.integer({ min: 100, max: 999 }), headers: headersArb });

describe('tunnel payload decoders under fuzzing', () => {
  test('request and response heads round-trip', FUZZ_TEST_OPTIONS, () => {
    checkProperty([requestHeadArb, responseHeadArb], (req, res) => {
      assert.deepEqual(decodeRequestHead(encodeRequestHead(req)), req);
      assert.deepEqual(decodeResponseHead(encodeResponseHead(res)), res);
    });
  });

  test('hostile REQUEST and RESPONSE payloads are refused only with ProtocolError', FUZZ_TEST_OPTIONS, () => {
    checkProperty([hostile(requestHeadArb.map(encodeRequestHead)), hostile(responseHeadArb.map(encodeResponseHead))], (req, res) => {
      onlyThrows(ProtocolError, () => {
        const h = decodeRequestHead(req);
        assert.ok(h.target.startsWith('/') && h.method.length > 0);
        assert.ok(h.headers.length <= 0xffff);
      });
      onlyThrows(ProtocolError, () => {
        const h = decodeResponseHead(res);
        assert.ok(h.status >= 100 && h.status <= 999);
      });
    }, 2);
  });

  test('GOAWAY, NOTIFY and the u32 payloads round-trip, and hostile ones are refused only with ProtocolError', FUZZ_TEST_OPTIONS, () => {
    const goawayArb = record({ lastStream: fc.integer({ min: 0, max: 0xffffffff }), code: fc.integer({ min: 0, max: 0xffffffff }), reason: fc.string({ unit: 'grapheme', maxLength: 60 }) });
    const notifyArb = record({ seq: fc.integer({ min: 0, max: 0xffffffff }), text: randomBytes(64) });
    checkProperty([goawayArb, notifyArb, fc.integer({ min: 0, max: 0xffffffff }), randomBytes(16)], (g, n, x, junk) => {
      assert.deepEqual(decodeGoaway(encodeGoaway(g.lastStream, g.code, g.reason)), g);
      assert.deepEqual(decodeNotify(encodeNotify(n.seq, n.text)), n);
      assert.equal(readU32(u32(x), 'WINDOW'), x);
      for (const decode of [decodeGoaway, decodeNotify, (p: Buffer) => readU32(p, 'RESET')]) onlyThrows(ProtocolError, () => decode(junk));
    });
  });

  const helloArb = record({
    version: fc.constant(1),
    deviceId: fc.string({ maxLength: 20 }),
    secret: fc.string({ maxLength: 20 }),
    bootId: fc.string({ maxLength: 20 }),
    info: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4, noNullPrototype: true }),
    maxFrameBytes: fc.integer({ min: 1024, max: 16 * 1024 * 1024 }),
    windowBytes: fc.integer({ min: 1024, max: 0x7fffffff }),
    maxStreams: fc.integer({ min: 1, max: 1024 }),
    features: fc.array(fc.constantFrom('lan', 'x'), { maxLength: 3 }),
  });

  test('HELLO round-trips and its limits are read back', FUZZ_TEST_OPTIONS, () => {
    checkProperty([helloArb], (hello) => {
      const parsed = parseHandshake<typeof hello>('HELLO', Buffer.from(JSON.stringify(hello)));
      assert.deepEqual(parsed, JSON.parse(JSON.stringify(hello)));
      assert.deepEqual(peerLimits(parsed), { maxFrameBytes: hello.maxFrameBytes, windowBytes: hello.windowBytes });
      assert.equal(hasFeature(parsed, 'lan'), hello.features.includes('lan'));
    });
  });

  test('hostile HELLO and WELCOME payloads are refused only with ProtocolError', FUZZ_TEST_OPTIONS, () => {
    const valid = helloArb.map((h) => Buffer.from(JSON.stringify(h)));
    const anyJson = fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify({ version: 1, maxFrameBytes: v, windowBytes: v, features: v })));
    checkProperty([fc.oneof(hostile(valid), anyJson)], (payload) => {
      onlyThrows(ProtocolError, () => {
        const msg = parseHandshake<{ maxFrameBytes?: unknown; windowBytes?: unknown; features?: unknown }>('WELCOME', payload);
        assert.equal(typeof msg, 'object');
        hasFeature(msg, 'lan');
        const limits = peerLimits(msg);
        assert.ok(limits.maxFrameBytes >= 1024 && limits.maxFrameBytes <= 16 * 1024 * 1024);
      });
    }, 2);
  });
});
