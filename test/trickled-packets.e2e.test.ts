// A peer that sends a large packet one byte per TCP segment, against a real hub process: the bytes of
// the partial packet must cost about what they weigh. Held as one Buffer per read, they cost some 130
// bytes of heap per byte (found while fuzzing the decoders: test/fuzz-*.test.ts).
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { rssBytes, startHub, tempDir, type HubProc } from './support/procs.js';

const CONNECTIONS = 400;
/**
 * How long the bytes trickle before the first measure (the hub's memory settles: GC spaces grow) and
 * then until the second; both inside the hub's CONNECT deadline (10 s from accept), which closes them.
 */
const SETTLE_MS = 2_500;
const TRICKLE_MS = 5_000;

/** Remaining Length as a Variable Byte Integer (MQTT 5.0 §1.5.5). */
function vbi(n: number): number[] {
  const out: number[] = [];
  do {
    out.push((n % 128) | (n >= 128 ? 0x80 : 0));
    n = Math.floor(n / 128);
  } while (n > 0);
  return out;
}

async function open(port: number, first: Buffer): Promise<Socket> {
  const s = connect({ port, host: '127.0.0.1', noDelay: true });
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
  s.write(first);
  return s;
}

/**
 * One byte to every socket per tick, for `ms`: paced, so that the hub has read each byte before the
 * next arrives and every byte is a read of its own (unpaced, loopback joins them into large reads).
 */
async function trickle(sockets: readonly Socket[], ms: number): Promise<number> {
  const one = Buffer.from([0x61]);
  const end = Date.now() + ms;
  let ticks = 0;
  while (Date.now() < end) {
    for (const s of sockets) s.write(one);
    ticks++;
    await new Promise((r) => setImmediate(r));
  }
  return ticks;
}

describe('a peer trickling a large packet one byte at a time', () => {
  const data = tempDir();
  let hub: HubProc;
  before(async () => {
    hub = await startHub(data.path);
  });
  after(async () => {
    await hub.stop();
    data.remove();
  });

  test('an MQTT CONNECT trickled a byte per segment costs the hub about its size, not a hundred times it', async () => {
    // A CONNECT announcing ~1 MB (under the 1 MiB default maximum), never finished.
    const header = Buffer.from([0x10, ...vbi(1_000_000)]);
    const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, () => open(hub.mqttPort!, header)));
    const settled = await trickle(sockets, SETTLE_MS);
    const before = await rssBytes(hub.child.pid!);
    const ticks = await trickle(sockets, TRICKLE_MS);
    const grown = (await rssBytes(hub.child.pid!)) - before;
    // Measured while the hub still holds them (its CONNECT deadline has not closed them yet).
    assert.ok(sockets.every((s) => !s.destroyed && s.readyState === 'open'), 'the connections are still open');
    const held = CONNECTIONS * ticks;
    console.log(`${CONNECTIONS} connections × ${settled} + ${ticks} bytes trickled: hub RSS grew ${(grown / 1e6).toFixed(1)} MB over the last ${(held / 1e6).toFixed(2)} MB (${(grown / held).toFixed(0)} bytes per byte held)`);
    for (const s of sockets) s.destroy();
    // Held one Buffer per read, each byte cost ~100 bytes or more; held in blocks, a few.
    assert.ok(grown < 30 * held, `RSS grew ${grown} bytes for ${held} bytes held`);
  });
});
