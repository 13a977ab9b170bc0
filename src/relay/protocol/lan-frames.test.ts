import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { ErrorCode, FrameType, ProtocolError, encodeFrame } from './frames.js';
import { decodeInvalidate, decodeLanKeys, decodeRevoked, encodeInvalidate, encodeRevoked, revokedPerFrame } from './lan-frames.js';
import { TunnelSession } from './session.js';

const HASH = 'ab'.repeat(32);

describe('LAN frame payloads', () => {
  test('REVOKED and INVALIDATE round-trip', () => {
    const entries = [{ tokenHash: HASH, expiresAt: 1_800_000_000_000 }, { tokenHash: 'cd'.repeat(32), expiresAt: 1 }];
    assert.deepEqual(decodeRevoked(encodeRevoked(entries)), entries);
    assert.deepEqual(decodeInvalidate(encodeInvalidate(['/a', '/b?x=é'])), ['/a', '/b?x=é']);
    assert.deepEqual(decodeInvalidate(encodeInvalidate([])), []);
  });

  test('a REVOKED payload whose length does not match its count is a protocol error', () => {
    const good = encodeRevoked([{ tokenHash: HASH, expiresAt: 5 }]);
    assert.throws(() => decodeRevoked(good.subarray(0, good.length - 1)), ProtocolError);
    assert.throws(() => decodeRevoked(Buffer.concat([good, Buffer.from([0])])), ProtocolError);
    assert.throws(() => decodeRevoked(Buffer.from([1])), ProtocolError);
    const huge = Buffer.from(good);
    huge.writeBigUInt64BE(2n ** 63n, 34);
    assert.throws(() => decodeRevoked(huge), /out of range/);
  });

  test('INVALIDATE refuses truncated entries, trailing bytes and targets that are not paths', () => {
    const good = encodeInvalidate(['/x']);
    assert.throws(() => decodeInvalidate(good.subarray(0, good.length - 1)), /truncated/);
    assert.throws(() => decodeInvalidate(Buffer.concat([good, Buffer.from([0])])), /after its last/);
    assert.throws(() => decodeInvalidate(encodeInvalidate(['relative'])), /start with \//);
  });

  test('LAN_KEYS takes at most 8 well-formed keys', () => {
    const key = { kid: '0123456789abcdef', ed25519: 'A'.repeat(43) };
    assert.deepEqual(decodeLanKeys(Buffer.from(JSON.stringify({ keys: [key] }))), [key]);
    assert.throws(() => decodeLanKeys(Buffer.from('nope')), /not JSON/);
    assert.throws(() => decodeLanKeys(Buffer.from(JSON.stringify({ keys: Array(9).fill(key) }))), /at most 8/);
    assert.throws(() => decodeLanKeys(Buffer.from(JSON.stringify({ keys: [{ ...key, kid: 'XYZ' }] }))), ProtocolError);
    assert.throws(() => decodeLanKeys(Buffer.from(JSON.stringify({ keys: [{ ...key, ed25519: 'short' }] }))), ProtocolError);
  });

  test('a REVOKED frame sized for the peer never exceeds its frame limit', () => {
    for (const max of [1024, 65536, 16 * 1024 * 1024]) {
      const n = revokedPerFrame(max);
      assert.ok(2 + n * 40 <= max && n <= 0xffff);
    }
  });
});

describe('LAN frames on a session', () => {
  /** An established session of `role`, a way to feed it bytes, and what it sent. */
  function established(role: 'hub' | 'agent'): { session: TunnelSession; feed: (b: Buffer[]) => void; sent: Buffer[] } {
    const duplex = new PassThrough();
    const sent: Buffer[] = [];
    const session = new TunnelSession(duplex, role, { maxFrameBytes: 65536, windowBytes: 65536 });
    duplex.write = ((chunk: Buffer) => {
      sent.push(chunk);
      return true;
    }) as typeof duplex.write;
    session.established = true;
    return { session, sent, feed: (bufs) => bufs.forEach((b) => duplex.emit('data', b)) };
  }

  test('the agent gets LAN_KEYS and REVOKED as events; the hub gets INVALIDATE', () => {
    const agent = established('agent');
    const keys: unknown[] = [];
    agent.session.on('lanKeys', (k: unknown) => keys.push(k));
    agent.session.on('revoked', (r: unknown) => keys.push(r));
    agent.feed(encodeFrame(FrameType.LAN_KEYS, 0, 0, Buffer.from('{"keys":[]}')));
    agent.feed(encodeFrame(FrameType.REVOKED, 0, 0, encodeRevoked([{ tokenHash: HASH, expiresAt: 9 }])));
    assert.deepEqual(keys, [[], [{ tokenHash: HASH, expiresAt: 9 }]]);
    const hub = established('hub');
    let targets: unknown;
    hub.session.on('invalidate', (t: unknown) => (targets = t));
    hub.feed(encodeFrame(FrameType.INVALIDATE, 0, 0, encodeInvalidate(['/settings'])));
    assert.deepEqual(targets, ['/settings']);
  });

  test('a LAN frame in the wrong direction or on a stream is a protocol error', () => {
    for (const [role, frames] of [
      ['hub', encodeFrame(FrameType.LAN_KEYS, 0, 0, Buffer.from('{"keys":[]}'))],
      ['agent', encodeFrame(FrameType.INVALIDATE, 0, 0, encodeInvalidate([]))],
      ['agent', encodeFrame(FrameType.REVOKED, 0, 3, encodeRevoked([]))],
    ] as const) {
      const s = established(role);
      let err: ProtocolError | undefined;
      s.session.on('protocolError', (e: ProtocolError) => (err = e));
      s.feed(frames);
      assert.equal(err?.code, ErrorCode.PROTOCOL_ERROR, `${role}: ${err?.message}`);
      assert.ok(s.session.closed);
    }
  });
});
