import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { LogLimiter, SUPPRESSED_MSG } from './log-limiter.js';

function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

const flushed = () => new Promise((r) => setImmediate(r));

describe('log rate limits', () => {
  it('write one line per kind and address per interval, then one summary with the count held back', async () => {
    let now = 1000;
    const { log, lines } = capture();
    const l = new LogLimiter(log, { intervalMs: 10_000, maxKeys: 100, now: () => now });
    for (let i = 0; i < 500; i++) l.warn('tunnel refused', '10.0.0.1', { i }, 'tunnel refused: authentication failed');
    l.warn('tunnel refused', '10.0.0.2', {}, 'tunnel refused: authentication failed');
    l.warn('mqtt connection refused', '10.0.0.1', {}, 'mqtt connection refused');
    await flushed();
    assert.deepEqual(lines.map((x) => x.msg), ['tunnel refused: authentication failed', 'tunnel refused: authentication failed', 'mqtt connection refused']);
    assert.equal(lines[0]!.i, 0);
    now += 10_000;
    l.warn('tunnel refused', '10.0.0.1', { i: 500 }, 'tunnel refused: authentication failed');
    await flushed();
    const summary = lines[3]!;
    assert.equal(summary.msg, SUPPRESSED_MSG);
    assert.deepEqual([summary.kind, summary.remoteAddress, summary.suppressed, summary.level], ['tunnel refused', '10.0.0.1', 499, 40]);
    assert.equal(lines[4]!.i, 500, 'the first line of the next interval is written');
    assert.equal(lines.length, 5);
  });

  it('count an IPv6 /64 as one address', async () => {
    const { log, lines } = capture();
    const l = new LogLimiter(log, { intervalMs: 60_000, maxKeys: 100 });
    for (let i = 1; i <= 50; i++) l.warn('k', `2001:db8:1:2::${i.toString(16)}`, {}, 'refused');
    l.warn('k', '2001:db8:1:3::1', {}, 'refused');
    await flushed();
    assert.equal(lines.length, 2);
    l.close();
    await flushed();
    assert.deepEqual(lines.slice(2).map((x) => [x.remoteAddress, x.suppressed]), [['2001:db8:1:2::/64', 49]]);
  });

  it('write the summary when the interval ends even if the refusals stopped', async () => {
    const { log, lines } = capture();
    const l = new LogLimiter(log, { intervalMs: 40, maxKeys: 100 });
    for (let i = 0; i < 10; i++) l.warn('k', '10.0.0.1', {}, 'refused');
    const deadline = Date.now() + 5000;
    while (lines.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(lines.map((x) => [x.msg, x.suppressed]), [['refused', undefined], [SUPPRESSED_MSG, 9]]);
    l.warn('k', '10.0.0.1', {}, 'refused');
    await flushed();
    assert.equal(lines.length, 3, 'after the summary the next refusal is written at once');
    l.close();
  });

  it('stay bounded in memory with many addresses, writing the summary of an address pushed out', async () => {
    const { log, lines } = capture();
    const l = new LogLimiter(log, { intervalMs: 60_000, maxKeys: 10 });
    l.warn('k', '10.0.0.1', {}, 'refused');
    l.warn('k', '10.0.0.1', {}, 'refused');
    for (let i = 0; i < 1000; i++) l.warn('k', `10.1.${i >> 8}.${i & 255}`, {}, 'refused');
    assert.equal(l.size, 10);
    await flushed();
    const summaries = lines.filter((x) => x.msg === SUPPRESSED_MSG);
    assert.deepEqual(summaries.map((x) => [x.remoteAddress, x.suppressed]), [['10.0.0.1', 1]]);
    l.close();
  });

  it('write every line when the interval is 0', async () => {
    const { log, lines } = capture();
    const l = new LogLimiter(log, { intervalMs: 0, maxKeys: 10 });
    for (let i = 0; i < 20; i++) l.warn('k', '10.0.0.1', {}, 'refused');
    await flushed();
    assert.equal(lines.length, 20);
  });
});
