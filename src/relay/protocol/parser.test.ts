import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode, Flag, FrameType, HEADER_BYTES, ProtocolError, encodeFrame, encodeHeader, type Frame } from './frames.js';
import { FrameParser } from './parser.js';

const bytesOf = (type: number, flags: number, stream: number, payload?: Buffer): Buffer => Buffer.concat(encodeFrame(type, flags, stream, payload));

function parseAll(parser: FrameParser, chunks: Buffer[]): Frame[] {
  const out: Frame[] = [];
  for (const c of chunks) parser.push(c, (f) => out.push({ ...f, payload: Buffer.from(f.payload) }));
  return out;
}

const sample = (): Buffer => Buffer.concat([
  bytesOf(FrameType.PING, 0, 0, Buffer.from('12345678')),
  bytesOf(FrameType.DATA, Flag.END_STREAM, 3, Buffer.from('hello')),
  bytesOf(FrameType.WINDOW, 0, 3, Buffer.from([0, 0, 1, 0])),
  bytesOf(FrameType.DATA, 0, 5), // empty payload
]);

const expected: Frame[] = [
  { type: FrameType.PING, flags: 0, stream: 0, payload: Buffer.from('12345678') },
  { type: FrameType.DATA, flags: Flag.END_STREAM, stream: 3, payload: Buffer.from('hello') },
  { type: FrameType.WINDOW, flags: 0, stream: 3, payload: Buffer.from([0, 0, 1, 0]) },
  { type: FrameType.DATA, flags: 0, stream: 5, payload: Buffer.alloc(0) },
];

test('several frames in one chunk come out whole and in order', () => {
  assert.deepEqual(parseAll(new FrameParser(1024), [sample()]), expected);
});

test('frames split at every byte are reassembled', () => {
  const b = sample();
  const chunks = Array.from(b, (_, i) => b.subarray(i, i + 1));
  assert.deepEqual(parseAll(new FrameParser(1024), chunks), expected);
});

test('frames split at every possible point between two chunks are reassembled', () => {
  const b = sample();
  for (let i = 0; i <= b.length; i++) {
    assert.deepEqual(parseAll(new FrameParser(1024), [b.subarray(0, i), b.subarray(i)]), expected, `split at ${i}`);
  }
});

test('pending counts the bytes of an unfinished frame and drops to 0 once it completes', () => {
  const p = new FrameParser(1024);
  const b = bytesOf(FrameType.DATA, 0, 1, Buffer.alloc(100));
  assert.equal(p.pending, 0);
  parseAll(p, [b.subarray(0, 4)]);
  assert.equal(p.pending, 4);
  parseAll(p, [b.subarray(4, 50)]);
  assert.equal(p.pending, 50);
  assert.equal(parseAll(p, [b.subarray(50)]).length, 1);
  assert.equal(p.pending, 0);
});

test('a header announcing more than maxFrameBytes is refused before any payload arrives', () => {
  const p = new FrameParser(1024);
  assert.doesNotThrow(() => parseAll(p, [encodeHeader(FrameType.DATA, 0, 1, 1024)]));
  assert.throws(() => parseAll(new FrameParser(1024), [encodeHeader(FrameType.DATA, 0, 1, 1025)]),
    (err: unknown) => err instanceof ProtocolError && err.code === ErrorCode.FRAME_TOO_LARGE);
  // Also when the header arrives in pieces.
  const h = encodeHeader(FrameType.DATA, 0, 1, 0xffffffff);
  assert.throws(() => parseAll(new FrameParser(1024), [h.subarray(0, 3), h.subarray(3)]),
    (err: unknown) => err instanceof ProtocolError && err.code === ErrorCode.FRAME_TOO_LARGE);
});

test('raising the limit with setMaxFrameBytes applies to the frames that follow', () => {
  const p = new FrameParser(1024);
  p.setMaxFrameBytes(4096);
  assert.equal(parseAll(p, [bytesOf(FrameType.DATA, 0, 1, Buffer.alloc(4096))]).length, 1);
});

test('an unknown frame type is a protocol error', () => {
  for (const type of [0x00, 0x10, 0xff]) {
    assert.throws(() => parseAll(new FrameParser(1024), [encodeHeader(type, 0, 0, 0)]),
      (err: unknown) => err instanceof ProtocolError && err.code === ErrorCode.PROTOCOL_ERROR && /unknown frame type/.test(err.message));
  }
});

test('a large frame arriving in small pieces is parsed in linear time, wherever the pieces split it', () => {
  // Joining the held bytes on every piece made this quadratic: some 30 GB of copying per case here.
  const size = 8 * 1024 * 1024;
  const b = bytesOf(FrameType.DATA, 0, 1, Buffer.alloc(size, 7));
  for (const firstPiece of [1024, HEADER_BYTES, 5]) { // 5: the header itself straddles two reads
    const p = new FrameParser(size);
    const started = performance.now();
    let got = 0;
    p.push(b.subarray(0, firstPiece), () => assert.fail('incomplete frame emitted'));
    for (let i = firstPiece; i < b.length; i += 1024) p.push(b.subarray(i, i + 1024), (f) => (got += f.payload.length));
    assert.equal(got, size);
    assert.equal(p.pending, 0);
    const ms = performance.now() - started;
    assert.ok(ms < 2000, `first piece ${firstPiece} bytes: took ${Math.round(ms)} ms`);
  }
});

test('a frame whose header fills a chunk exactly waits for its payload', () => {
  const b = bytesOf(FrameType.NOTIFY, 0, 0, Buffer.from('\0\0\0\x01hi'));
  const p = new FrameParser(1024);
  assert.equal(parseAll(p, [b.subarray(0, HEADER_BYTES)]).length, 0);
  const [f] = parseAll(p, [b.subarray(HEADER_BYTES)]);
  assert.equal(f!.payload.toString('latin1'), '\0\0\0\x01hi');
});
