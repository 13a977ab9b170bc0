import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { generate } from 'mqtt-packet';
import { startHub, tempDir, type HubProc } from './support/procs.js';
import { eventually, helloFrame } from './support/slow-peers.js';

const ATTEMPTS = 2000;
const INTERVAL_MS = 2000;

/** Sends `bytes` on a new connection and waits until the hub closes it (or `untilData` says it answered). */
function refusedOnce(port: number, bytes: Buffer, untilData = false): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write(bytes));
    s.resume(); // read, so the hub's close is seen
    const done = () => {
      s.destroy();
      resolve();
    };
    if (untilData) s.once('data', done);
    s.once('close', done);
    s.on('error', done);
  });
}

async function repeat(n: number, concurrency: number, once: () => Promise<void>): Promise<void> {
  let started = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (started < n) {
      started++;
      await once();
    }
  }));
}

describe('refused HELLOs and CONNECTs do not flood the log', () => {
  const data = tempDir();
  let hub: HubProc;
  before(async () => {
    hub = await startHub(data.path, ['--log-refusals-interval-ms', String(INTERVAL_MS)]);
  });
  after(async () => {
    await hub?.stop();
    data.remove();
  });

  /** Lines with `msg`, and the count of lines held back for `kind` once the summaries are written. */
  async function written(prefix: string, kind: string): Promise<{ lines: number; suppressed: number }> {
    const count = () => {
      const lines = hub.lines.filter((l) => l.includes(`"msg":"${prefix}`)).length;
      const suppressed = hub.logs('repeated log lines suppressed').filter((o) => o.kind === kind).reduce((n, o) => n + (o.suppressed as number), 0);
      return { lines, suppressed };
    };
    // The last summary comes when its interval ends.
    await eventually(() => count().lines + count().suppressed >= ATTEMPTS, INTERVAL_MS * 3);
    return count();
  }

  it('writes a few lines and a count for 2,000 refused tunnel HELLOs from one address', async () => {
    const hello = helloFrame('d_nobody', 'wrong');
    const started = Date.now();
    await repeat(ATTEMPTS, 50, () => refusedOnce(hub.tunnelPort, hello));
    const { lines, suppressed } = await written('tunnel refused', 'tunnel refused');
    const intervals = Math.ceil((Date.now() - started) / INTERVAL_MS) + 1;
    process.stdout.write(`# ${ATTEMPTS} refused HELLOs: ${lines} lines written, ${suppressed} counted in summaries\n`);
    // Before: one line per refusal (2,000). Now one per interval, and the summaries account for the rest.
    assert.ok(lines <= intervals, `${lines} lines for ${ATTEMPTS} refusals over ${intervals} intervals`);
    assert.equal(lines + suppressed, ATTEMPTS);
  });

  it('writes a few lines and a count for 2,000 MQTT CONNECTs with a wrong password from one address', async () => {
    const connectPacket = generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'intruder', clean: true, keepalive: 30, username: 'someone@example.com', password: Buffer.from('wrong') });
    const started = Date.now();
    await repeat(ATTEMPTS, 50, () => refusedOnce(hub.mqttPort!, connectPacket, true));
    const { lines, suppressed } = await written('mqtt connection refused', 'mqtt connection refused');
    const intervals = Math.ceil((Date.now() - started) / INTERVAL_MS) + 1;
    process.stdout.write(`# ${ATTEMPTS} refused CONNECTs: ${lines} lines written, ${suppressed} counted in summaries\n`);
    assert.ok(lines <= intervals, `${lines} lines for ${ATTEMPTS} refusals over ${intervals} intervals`);
    assert.equal(lines + suppressed, ATTEMPTS);
    const health = await fetch(`${hub.url}/healthz`);
    assert.equal(health.status, 200);
  });
});
