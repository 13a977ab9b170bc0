import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import {
  ErrorCode,
  Flag,
  FrameType,
  HEADER_BYTES,
  decodeGoaway,
  decodeNotify,
  encodeFrame,
  encodeGoaway,
  encodeNotify,
  readU32,
  u32,
  type Frame,
} from '../src/relay/protocol/frames.js';
import { decodeRequestHead, decodeResponseHead, encodeRequestHead, encodeResponseHead, type RequestHead, type ResponseHead } from '../src/relay/protocol/heads.js';
import { decodeInvalidate, decodeLanKeys, decodeRevoked, encodeInvalidate, encodeLanKeys, encodeRevoked, type RevokedEntry } from '../src/relay/protocol/lan-frames.js';
import { FrameParser } from '../src/relay/protocol/parser.js';
import type { PublicTokenKey } from '../src/relay/protocol/signed-token.js';
import type { Hello, Welcome } from '../src/relay/protocol/session.js';

// docs/protocol.md is the spec other agents are written from: its byte examples ("```hex vector:<name>"
// blocks) must be exactly what this implementation sends and accepts, and its tables must list exactly
// the frame types and error codes the code knows.

const DOC_PATH = new URL('../docs/protocol.md', import.meta.url);
const doc = readFileSync(DOC_PATH, 'utf8');

type ErrorName = keyof typeof ErrorCode;
type TypeName = keyof typeof FrameType;

/** A frame as the doc describes it, in decoded form. */
type Described =
  | { type: 'HELLO'; hello: Hello }
  | { type: 'WELCOME'; welcome: Welcome }
  | { type: 'REQUEST'; stream: number; end: boolean; head: RequestHead }
  | { type: 'RESPONSE'; stream: number; end: boolean; head: ResponseHead }
  | { type: 'DATA'; stream: number; end: boolean; text: string }
  | { type: 'WINDOW'; stream: number; increment: number }
  | { type: 'RESET'; stream: number; code: ErrorName }
  | { type: 'PING' | 'PONG'; hex: string }
  | { type: 'GOAWAY'; lastStream: number; code: ErrorName; reason: string }
  | { type: 'NOTIFY'; seq: number; text: string }
  | { type: 'NOTIFY_ACK'; seq: number }
  | { type: 'LAN_KEYS'; keys: PublicTokenKey[] }
  | { type: 'REVOKED'; entries: RevokedEntry[] }
  | { type: 'INVALIDATE'; targets: string[] };

/** Every vector in the doc, by name. A vector in the doc and not here (or here and not in the doc) fails. */
const VECTORS: Record<string, Described> = {
  hello: {
    type: 'HELLO',
    hello: {
      version: 1, deviceId: 'dev-1', secret: 's3cret', bootId: 'b1', info: { model: 'x' },
      maxFrameBytes: 65536, windowBytes: 262144, maxStreams: 64,
    },
  },
  welcome: {
    type: 'WELCOME',
    welcome: { version: 1, pingIntervalMs: 20000, idleTimeoutMs: 60000, maxFrameBytes: 65536, windowBytes: 262144 },
  },
  'request-get-device': {
    type: 'REQUEST', stream: 1, end: true,
    head: { method: 'GET', target: '/device', headers: [['accept', 'application/json'], ['x-forwarded-proto', 'https']] },
  },
  'response-200': {
    type: 'RESPONSE', stream: 1, end: false,
    head: { status: 200, headers: [['content-type', 'application/json']] },
  },
  'data-end-stream': { type: 'DATA', stream: 1, end: true, text: '{"id":"dev-1"}' },
  'request-post': {
    type: 'REQUEST', stream: 3, end: false,
    head: { method: 'POST', target: '/leds?id=2', headers: [['content-type', 'application/json']] },
  },
  'data-body': { type: 'DATA', stream: 3, end: false, text: '{"on":true}' },
  'data-empty-end': { type: 'DATA', stream: 3, end: true, text: '' },
  'response-204-end': { type: 'RESPONSE', stream: 3, end: true, head: { status: 204, headers: [] } },
  window: { type: 'WINDOW', stream: 3, increment: 65536 },
  'reset-cancel': { type: 'RESET', stream: 5, code: 'CANCEL' },
  ping: { type: 'PING', hex: '0000018bcfe56800' },
  pong: { type: 'PONG', hex: '0000018bcfe56800' },
  'goaway-shutting-down': { type: 'GOAWAY', lastStream: 7, code: 'SHUTTING_DOWN', reason: 'hub is shutting down' },
  'goaway-auth-failed': { type: 'GOAWAY', lastStream: 0, code: 'AUTH_FAILED', reason: 'unknown device id or wrong secret' },
  notify: { type: 'NOTIFY', seq: 1, text: '{"temp":21.5}' },
  'notify-ack': { type: 'NOTIFY_ACK', seq: 1 },
  'lan-keys': { type: 'LAN_KEYS', keys: [{ kid: '1a63fd7aac1ca037', ed25519: 'pmmHkGqeaFgf1OX9ekFuWuYLu1SinpV9UJpiFec0GqQ' }] },
  revoked: { type: 'REVOKED', entries: [{ tokenHash: '69d3dc72028d1079949b79562de81f74786a2d3db96609b8ccfcbd5e83983915', expiresAt: 1795771690226 }] },
  invalidate: { type: 'INVALIDATE', targets: ['/cached', '/leds?id=2'] },
};

/** Encodes with the same calls TunnelSession and TunnelStream make when they send these frames. */
function encode(d: Described): Buffer {
  const frame = (type: number, flags: number, stream: number, payload?: Buffer): Buffer => Buffer.concat(encodeFrame(type, flags, stream, payload));
  const end = (e: boolean): number => (e ? Flag.END_STREAM : 0);
  switch (d.type) {
    case 'HELLO': return frame(FrameType.HELLO, 0, 0, Buffer.from(JSON.stringify(d.hello)));
    case 'WELCOME': return frame(FrameType.WELCOME, 0, 0, Buffer.from(JSON.stringify(d.welcome)));
    case 'REQUEST': return frame(FrameType.REQUEST, end(d.end), d.stream, encodeRequestHead(d.head));
    case 'RESPONSE': return frame(FrameType.RESPONSE, end(d.end), d.stream, encodeResponseHead(d.head));
    case 'DATA': return frame(FrameType.DATA, end(d.end), d.stream, d.text ? Buffer.from(d.text) : undefined);
    case 'WINDOW': return frame(FrameType.WINDOW, 0, d.stream, u32(d.increment));
    case 'RESET': return frame(FrameType.RESET, 0, d.stream, u32(ErrorCode[d.code]));
    case 'PING': return frame(FrameType.PING, 0, 0, Buffer.from(d.hex, 'hex'));
    case 'PONG': return frame(FrameType.PONG, 0, 0, Buffer.from(d.hex, 'hex'));
    case 'GOAWAY': return frame(FrameType.GOAWAY, 0, 0, encodeGoaway(d.lastStream, ErrorCode[d.code], d.reason));
    case 'NOTIFY': return frame(FrameType.NOTIFY, 0, 0, encodeNotify(d.seq, Buffer.from(d.text)));
    case 'NOTIFY_ACK': return frame(FrameType.NOTIFY_ACK, 0, 0, u32(d.seq));
    case 'LAN_KEYS': return frame(FrameType.LAN_KEYS, 0, 0, encodeLanKeys(d.keys));
    case 'REVOKED': return frame(FrameType.REVOKED, 0, 0, encodeRevoked(d.entries));
    case 'INVALIDATE': return frame(FrameType.INVALIDATE, 0, 0, encodeInvalidate(d.targets));
  }
}

const errorName = (code: number): ErrorName => {
  const name = (Object.keys(ErrorCode) as ErrorName[]).find((k) => ErrorCode[k] === code);
  assert.ok(name, `unknown error code ${code}`);
  return name;
};

/** Parses the bytes with the streaming parser (they must hold exactly one frame) and decodes its payload. */
function decode(bytes: Buffer): Described {
  const frames: Frame[] = [];
  const parser = new FrameParser(1 << 24);
  parser.push(bytes, (f) => frames.push(f));
  assert.equal(frames.length, 1, 'a vector holds exactly one frame');
  assert.equal(parser.pending, 0, 'no bytes after the frame');
  const f = frames[0]!;
  const end = (f.flags & Flag.END_STREAM) !== 0;
  const connectionLevel = (): void => {
    assert.equal(f.stream, 0, 'connection frames are on stream 0');
    assert.equal(f.flags, 0);
  };
  const streamLevel = (allowedFlags: number): void => {
    assert.ok(f.stream > 0, 'stream frames are on a nonzero stream');
    assert.equal(f.flags & ~allowedFlags, 0, 'no undefined flags');
  };
  switch (f.type) {
    case FrameType.HELLO: connectionLevel(); return { type: 'HELLO', hello: JSON.parse(f.payload.toString('utf8')) as Hello };
    case FrameType.WELCOME: connectionLevel(); return { type: 'WELCOME', welcome: JSON.parse(f.payload.toString('utf8')) as Welcome };
    case FrameType.REQUEST: streamLevel(Flag.END_STREAM); return { type: 'REQUEST', stream: f.stream, end, head: decodeRequestHead(f.payload) };
    case FrameType.RESPONSE: streamLevel(Flag.END_STREAM); return { type: 'RESPONSE', stream: f.stream, end, head: decodeResponseHead(f.payload) };
    case FrameType.DATA: streamLevel(Flag.END_STREAM); return { type: 'DATA', stream: f.stream, end, text: f.payload.toString('utf8') };
    case FrameType.WINDOW: streamLevel(0); return { type: 'WINDOW', stream: f.stream, increment: readU32(f.payload, 'WINDOW') };
    case FrameType.RESET: streamLevel(0); return { type: 'RESET', stream: f.stream, code: errorName(readU32(f.payload, 'RESET')) };
    case FrameType.PING:
    case FrameType.PONG:
      connectionLevel();
      assert.equal(f.payload.length, 8);
      return { type: f.type === FrameType.PING ? 'PING' : 'PONG', hex: f.payload.toString('hex') };
    case FrameType.GOAWAY: {
      connectionLevel();
      const g = decodeGoaway(f.payload);
      return { type: 'GOAWAY', lastStream: g.lastStream, code: errorName(g.code), reason: g.reason };
    }
    case FrameType.NOTIFY: {
      connectionLevel();
      const n = decodeNotify(f.payload);
      return { type: 'NOTIFY', seq: n.seq, text: n.text.toString('utf8') };
    }
    case FrameType.NOTIFY_ACK: connectionLevel(); return { type: 'NOTIFY_ACK', seq: readU32(f.payload, 'NOTIFY_ACK') };
    case FrameType.LAN_KEYS: connectionLevel(); return { type: 'LAN_KEYS', keys: decodeLanKeys(f.payload) };
    case FrameType.REVOKED: connectionLevel(); return { type: 'REVOKED', entries: decodeRevoked(f.payload) };
    case FrameType.INVALIDATE: connectionLevel(); return { type: 'INVALIDATE', targets: decodeInvalidate(f.payload) };
    default: throw new Error(`unexpected frame type ${f.type}`);
  }
}

/** The doc's layout: the header's four fields on the first line, then the payload 16 bytes a line. */
function formatHex(b: Buffer): string {
  const h = b.subarray(0, HEADER_BYTES).toString('hex');
  const lines = [`${h.slice(0, 2)} ${h.slice(2, 10)} ${h.slice(10, 12)} ${h.slice(12, 20)}`];
  for (let i = HEADER_BYTES; i < b.length; i += 16) {
    lines.push(Array.from(b.subarray(i, i + 16), (x) => x.toString(16).padStart(2, '0')).join(' '));
  }
  return lines.join('\n');
}

interface DocVector {
  name: string;
  /** The nearest non-blank line above the block: the frame in words. */
  description: string;
  bytes: Buffer;
  line: number;
}

function docVectors(): DocVector[] {
  const lines = doc.split('\n');
  const out: DocVector[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```hex vector:(\S+)\s*$/.exec(lines[i]!);
    if (!open) {
      assert.doesNotMatch(lines[i]!, /^```.*vector/, `line ${i + 1}: a vector block must open with \`\`\`hex vector:<name>`);
      continue;
    }
    let j = i + 1;
    const body: string[] = [];
    while (j < lines.length && !/^```\s*$/.test(lines[j]!)) body.push(lines[j++]!);
    assert.ok(j < lines.length, `vector ${open[1]} (line ${i + 1}) is not closed`);
    const hex = body.join('').replace(/\s+/g, '');
    assert.match(hex, /^([0-9a-f]{2})+$/, `vector ${open[1]} (line ${i + 1}) must be pairs of lower-case hex digits`);
    let k = i - 1;
    while (k >= 0 && lines[k]!.trim() === '') k--;
    out.push({ name: open[1]!, description: k >= 0 ? lines[k]! : '', bytes: Buffer.from(hex, 'hex'), line: i + 1 });
    i = j;
  }
  return out;
}

/** The rows of the first markdown table under `heading`: the first two cells, backticks removed. */
function tableRows(heading: string): Array<[string, string]> {
  const start = doc.indexOf(`\n${heading}\n`);
  assert.ok(start >= 0, `docs/protocol.md has a "${heading}" section`);
  const rest = doc.slice(start + heading.length + 2);
  const next = rest.search(/^#{1,3} /m);
  const section = next >= 0 ? rest.slice(0, next) : rest;
  const rows: Array<[string, string]> = [];
  for (const line of section.split('\n')) {
    const cells = line.split('|').slice(1, -1).map((c) => c.trim().replace(/`/g, ''));
    if (cells.length < 2 || /^-+$/.test(cells[0]!.replace(/:/g, '')) || cells[0] === 'Code') continue;
    rows.push([cells[0]!, cells[1]!]);
  }
  return rows;
}

const vectors = docVectors();

test('docs/protocol.md and the vector table list the same vectors, each once', () => {
  const names = vectors.map((v) => v.name);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'duplicate vector names in the doc');
  assert.deepEqual([...names].sort(), Object.keys(VECTORS).sort());
});

test('every frame type appears in at least one vector', () => {
  const covered = new Set(Object.values(VECTORS).map((d) => d.type));
  assert.deepEqual((Object.keys(FrameType) as TypeName[]).filter((t) => !covered.has(t)), []);
});

describe('each vector in docs/protocol.md', () => {
  for (const v of vectors) {
    const described = VECTORS[v.name];
    test(`${v.name}: encoding the described frame gives exactly the documented bytes`, () => {
      assert.ok(described, `vector ${v.name} (line ${v.line}) is missing from VECTORS`);
      const encoded = encode(described);
      assert.equal(formatHex(v.bytes), formatHex(encoded), `docs/protocol.md line ${v.line} should read:\n${formatHex(encoded)}\n`);
    });
    test(`${v.name}: parsing the documented bytes gives the described frame back`, () => {
      assert.ok(described);
      assert.deepEqual(decode(v.bytes), described);
    });
    test(`${v.name}: the line above the bytes names the frame type`, () => {
      assert.ok(described);
      assert.match(v.description, new RegExp(`\\b${described.type}\\b`), `line above ${v.name}: "${v.description}"`);
    });
  }
});

test('the frame type table lists every frame type with its code, and nothing else', () => {
  const rows = tableRows('## Frame types');
  const fromDoc = Object.fromEntries(rows.map(([code, name]) => [name, Number(code)]));
  assert.deepEqual(fromDoc, { ...FrameType });
});

test('the error code table lists every RESET/GOAWAY code with its number, and nothing else', () => {
  const rows = tableRows('## Error codes');
  const fromDoc = Object.fromEntries(rows.map(([code, name]) => [name, Number(code)]));
  assert.deepEqual(fromDoc, { ...ErrorCode });
});
