import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { rssBytes } from './support/procs.js';
import { startWorld, type World } from './support/world.js';

const MB = 1024 * 1024;
const SIZE = 100 * MB;
/**
 * How much the hub's resident memory may grow while relaying 100 MB. Measured here: the peak settles
 * at about 25 MB whatever the body size (10, 100 or 400 MB): freed socket read buffers waiting for the
 * next garbage collection, not relayed data held. A hub that buffered would grow by the body size.
 */
const RSS_BUDGET = 40 * MB;

/** Samples a process's RSS every 25 ms until stopped; returns the peak. */
function sampleRss(pid: number): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssBytes(pid));
      await new Promise((r) => setTimeout(r, 25));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}

function generated(total: number): ReadableStream<Uint8Array> {
  const block = Buffer.alloc(64 * 1024);
  for (let i = 0; i < block.length; i++) block[i] = (i * 7) % 256;
  let sent = 0;
  return new ReadableStream({
    pull(controller) {
      if (sent >= total) return controller.close();
      const n = Math.min(block.length, total - sent);
      sent += n;
      controller.enqueue(new Uint8Array(block.subarray(0, n)));
    },
  });
}

describe('large bodies stream through the relay without the hub buffering them', () => {
  let w: World;
  let base: number;
  before(async () => {
    w = await startWorld();
    // Warm up the paths once so the baseline includes code and pools, not the first allocation.
    const r = await fetch(`${w.api}/bytes?n=${4 * MB}`, { headers: w.auth });
    await r.arrayBuffer();
    await new Promise((res) => setTimeout(res, 300));
    base = await rssBytes(w.hub.child.pid!);
  });
  after(async () => {
    await w?.stop();
  });

  it('downloads 100 MB from the device intact, with hub memory bounded', async () => {
    const sampler = sampleRss(w.hub.child.pid!);
    const r = await fetch(`${w.api}/bytes?n=${SIZE}`, { headers: w.auth });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('content-length'), String(SIZE));
    let got = 0;
    const reader = r.body!.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      got += value.length;
    }
    const peak = await sampler.stop();
    assert.equal(got, SIZE);
    const growth = peak - base;
    process.stdout.write(`# hub RSS growth relaying 100 MB down: ${(growth / MB).toFixed(1)} MB (peak ${(peak / MB).toFixed(1)} MB)\n`);
    assert.ok(growth < RSS_BUDGET, `hub RSS grew by ${(growth / MB).toFixed(1)} MB`);
  });

  it('uploads 100 MB to the device intact (same SHA-256), with hub memory bounded', async () => {
    const expected = createHash('sha256');
    const check = generated(SIZE).getReader();
    for (;;) {
      const { value, done } = await check.read();
      if (done) break;
      expected.update(value);
    }
    const sampler = sampleRss(w.hub.child.pid!);
    const r = await fetch(`${w.api}/sink`, { method: 'POST', headers: { ...w.auth, 'content-type': 'application/octet-stream' }, body: generated(SIZE), duplex: 'half' } as RequestInit);
    const body = (await r.json()) as { size: number; sha256: string };
    const peak = await sampler.stop();
    assert.equal(r.status, 200);
    assert.equal(body.size, SIZE);
    assert.equal(body.sha256, expected.digest('hex'));
    const growth = peak - base;
    process.stdout.write(`# hub RSS growth relaying 100 MB up: ${(growth / MB).toFixed(1)} MB (peak ${(peak / MB).toFixed(1)} MB)\n`);
    assert.ok(growth < RSS_BUDGET, `hub RSS grew by ${(growth / MB).toFixed(1)} MB`);
  });

  it('stops reading from the device when the client stops reading (flow control, not buffering)', async () => {
    const r = await fetch(`${w.api}/bytes?n=${SIZE}`, { headers: w.auth });
    const reader = r.body!.getReader();
    await reader.read();
    // The client reads nothing more for a while: the hub must not pull the rest into memory.
    const sampler = sampleRss(w.hub.child.pid!);
    await new Promise((res) => setTimeout(res, 1500));
    const peak = await sampler.stop();
    await reader.cancel();
    const growth = peak - base;
    process.stdout.write(`# hub RSS growth with a stalled 100 MB download: ${(growth / MB).toFixed(1)} MB\n`);
    assert.ok(growth < RSS_BUDGET, `hub RSS grew by ${(growth / MB).toFixed(1)} MB while the client stalled`);
    // The relay still serves others afterwards.
    const ok = await fetch(`${w.api}/device`, { headers: w.auth });
    assert.equal(ok.status, 200);
  });
});
