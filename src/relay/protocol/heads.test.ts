import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ErrorCode, ProtocolError } from './frames.js';
import { decodeRequestHead, decodeResponseHead, encodeRequestHead, encodeResponseHead, type RequestHead } from './heads.js';

const isProtocolError = (re: RegExp) => (err: unknown): boolean =>
  err instanceof ProtocolError && err.code === ErrorCode.PROTOCOL_ERROR && re.test(err.message);

test('a request head round-trips, with repeated headers kept in order', () => {
  const head: RequestHead = {
    method: 'PATCH',
    target: '/config/wifi?ssid=caf%C3%A9&x=1',
    headers: [['content-type', 'application/json'], ['x-tag', 'a'], ['x-tag', 'b'], ['empty', '']],
  };
  assert.deepEqual(decodeRequestHead(encodeRequestHead(head)), head);
});

test('the request target is UTF-8 and header values are latin1, byte for byte', () => {
  const head: RequestHead = { method: 'GET', target: '/näme/😀', headers: [['x-v', 'caf\u00e9']] };
  const b = encodeRequestHead(head);
  const target = Buffer.from('/näme/😀', 'utf8');
  assert.equal(b.readUInt16BE(4), target.length);
  assert.deepEqual(b.subarray(6, 6 + target.length), target);
  assert.equal(b.at(-1), 0xe9, 'é is one latin1 byte');
  assert.deepEqual(decodeRequestHead(b), head);
});

test('a response head round-trips, with or without headers', () => {
  for (const head of [{ status: 200, headers: [['set-cookie', 'a=1'], ['set-cookie', 'b=2']] as Array<[string, string]> }, { status: 204, headers: [] }]) {
    assert.deepEqual(decodeResponseHead(encodeResponseHead(head)), head);
  }
});

test('a request head with no method, a bad method or a target not starting with / is refused', () => {
  assert.throws(() => decodeRequestHead(Buffer.alloc(0)), isProtocolError(/empty/));
  assert.throws(() => decodeRequestHead(Buffer.from([0, 0, 1, 0x2f, 0, 0])), isProtocolError(/method/));
  const withMethod = (m: string) => Buffer.concat([Buffer.from([m.length]), Buffer.from(m, 'latin1'), Buffer.from([0, 1, 0x2f, 0, 0])]);
  assert.throws(() => decodeRequestHead(withMethod('GE T')), isProtocolError(/invalid method/));
  assert.throws(() => decodeRequestHead(withMethod('GET\n')), isProtocolError(/invalid method/));
  const b = encodeRequestHead({ method: 'GET', target: 'x', headers: [] });
  assert.throws(() => decodeRequestHead(b), isProtocolError(/start with \//));
});

test('a head cut short anywhere, or with bytes after the headers, is refused', () => {
  const b = encodeRequestHead({ method: 'GET', target: '/device', headers: [['accept', '*/*'], ['host', 'd']] });
  for (let n = 1; n < b.length; n++) assert.throws(() => decodeRequestHead(b.subarray(0, n)), ProtocolError, `cut at ${n}`);
  assert.throws(() => decodeRequestHead(Buffer.concat([b, Buffer.from([0])])), isProtocolError(/trailing/));
  const r = encodeResponseHead({ status: 200, headers: [['content-type', 'text/plain']] });
  for (let n = 0; n < r.length; n++) assert.throws(() => decodeResponseHead(r.subarray(0, n)), ProtocolError, `cut at ${n}`);
  assert.throws(() => decodeResponseHead(Buffer.concat([r, Buffer.from([1])])), isProtocolError(/trailing/));
});

test('a status outside 100-999 is refused', () => {
  for (const status of [0, 99, 1000, 65535]) {
    const b = Buffer.from([status >> 8, status & 0xff, 0, 0]);
    assert.throws(() => decodeResponseHead(b), isProtocolError(/invalid status/));
  }
  assert.equal(decodeResponseHead(Buffer.from([0x03, 0xe7, 0, 0])).status, 999);
});

test('heads that cannot be encoded are refused by the encoder, not sent', () => {
  assert.throws(() => encodeRequestHead({ method: '', target: '/', headers: [] }), RangeError);
  assert.throws(() => encodeRequestHead({ method: 'X'.repeat(256), target: '/', headers: [] }), RangeError);
  assert.throws(() => encodeRequestHead({ method: 'GET', target: `/${'a'.repeat(65_535)}`, headers: [] }), RangeError);
  assert.throws(() => encodeResponseHead({ status: 200, headers: [['x-big', 'v'.repeat(65_536)]] }), RangeError);
});
