// Slow and killed subscribers: what a subscriber that stops reading costs the broker (bounded queue,
// bounded socket buffer) and everyone else (nothing: the others keep receiving).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { IPublishPacket } from 'mqtt-packet';
import { collect, mosquitto, sleep, startBroker } from './mqtt-harness.js';

async function until(test: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

describe('MQTT backpressure: slow and killed subscribers', () => {
  it('does not let a subscriber that stops reading delay the others, and bounds its queue and its socket buffer', async (t) => {
    const b = await startBroker({ allowAnonymous: true, maxQueuedPerClient: 100 });
    try {
      const slow = await b.raw();
      await slow.handshake(4, { clientId: 'slow' });
      slow.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/t', qos: 0 }] });
      await slow.next((p) => p.cmd === 'suback');
      const slowAtBroker = b.serverSockets().find((s) => s.remotePort === slow.socket.localPort);
      assert.ok(slowAtBroker !== undefined);
      slow.socket.pause();
      const fast = await b.client();
      await fast.subscribeAsync('flood/t', { qos: 0 });
      let received = 0;
      fast.on('message', () => received++);
      const pub = await b.client();
      const payload = Buffer.alloc(8_192, 7);
      // 32 MB in batches the (in-process) fast subscriber keeps up with; the slow one reads nothing,
      // so the kernel buffers fill, then the broker's socket buffer, then the slow one's queue.
      let maxBuffered = 0;
      for (let i = 0; i < 80; i++) {
        for (let j = 0; j < 50; j++) pub.publish('flood/t', payload, { qos: 0 });
        await until(() => received >= (i + 1) * 50, `the fast subscriber to get ${(i + 1) * 50} (it has ${received})`);
        maxBuffered = Math.max(maxBuffered, slowAtBroker.writableLength);
      }
      t.diagnostic(`slow subscriber: broker socket buffer peaked at ${maxBuffered} bytes; queued ${b.broker.queued}; dropped ${b.broker.stats.dropped}`);
      assert.equal(received, 4_000);
      assert.ok(b.broker.queued <= 100, `queued ${b.broker.queued}`);
      assert.ok(b.broker.stats.dropped > 0, 'the slow subscriber reached its queue limit');
      // The broker stops writing once the socket reports backpressure: its buffer holds about one
      // high-water mark (16 KiB) plus the packet that crossed it, never the backlog.
      assert.ok(maxBuffered > 0, 'the slow socket did fill');
      assert.ok(maxBuffered < 64 * 1024, `socket buffer grew to ${maxBuffered} bytes`);
    } finally {
      await b.stop();
    }
  });

  it('keeps a bounded backlog for a killed persistent subscriber, without delaying others, and delivers it when it comes back', async () => {
    const b = await startBroker({ allowAnonymous: true, maxQueuedPerClient: 200, maxInflightPerClient: 20 });
    // A real process, stopped (it reads nothing, acknowledges nothing), then killed.
    const victim = mosquitto('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv311', '-q', '1', '-c', '-i', 'victim', '-t', 'backlog/t']);
    try {
      await until(() => b.broker.subscriptions === 1, 'mosquitto_sub to subscribe');
      process.kill(victim.child.pid!, 'SIGSTOP');
      const other = await b.client({ clientId: 'other' });
      await other.subscribeAsync('backlog/t', { qos: 1 });
      const otherGot = collect(other, 1_000, 20_000);
      let otherCount = 0;
      other.on('message', () => otherCount++);
      const pub = await b.client({ clientId: 'publisher' });
      const payload = Buffer.alloc(1_024, 1);
      for (let i = 0; i < 1_000; i += 100) {
        // The other subscriber is paced, not the stopped one: its own queue (200) must not overflow
        // when a loaded machine slows it down, or it would lose messages by design (drop-oldest).
        await until(() => otherCount >= i, 'the other subscriber to keep up');
        // Every PUBACK arrives: the stopped subscriber does not hold the publisher back.
        await Promise.all(Array.from({ length: 100 }, (_, k) => pub.publishAsync('backlog/t', Buffer.concat([Buffer.from(`m${i + k}:`), payload]), { qos: 1 })));
      }
      const got = await otherGot;
      assert.deepEqual(got.map((g) => g.payload.slice(0, g.payload.indexOf(':'))), Array.from({ length: 1_000 }, (_, i) => `m${i}`));
      // The other subscriber's last PUBACKs may still be on their way.
      await until(() => b.broker.inflight <= 20, 'the other subscriber to acknowledge everything');
      assert.equal(b.broker.inflight, 20, 'the inflight window of the stopped subscriber');
      assert.equal(b.broker.queued, 200, 'its queue limit');
      assert.equal(b.broker.stats.dropped, 780);

      victim.child.kill('SIGKILL');
      await until(() => b.broker.connections === 2, 'the broker to notice the killed subscriber');
      assert.equal(b.broker.sessions, 3, 'its session stays');
      assert.equal(b.broker.queued + b.broker.inflight, 220);

      const back = b.unconnected({ protocolVersion: 4, clientId: 'victim', clean: false });
      const backGot = collect(back, 220, 10_000);
      back.connect();
      const redelivered = await backGot;
      const ids = redelivered.map((g) => g.payload.slice(0, g.payload.indexOf(':')));
      // [MQTT-4.4.0-1] the unacknowledged ones first, with DUP; then the newest 200 (drop-oldest).
      assert.deepEqual(ids, [...Array.from({ length: 20 }, (_, i) => `m${i}`), ...Array.from({ length: 200 }, (_, i) => `m${800 + i}`)]);
      assert.ok(redelivered.slice(0, 20).every((g) => (g.packet as IPublishPacket).dup));
      await until(() => b.broker.inflight === 0 && b.broker.queued === 0, 'the backlog to be acknowledged');
    } finally {
      victim.child.kill('SIGKILL');
      await b.stop();
    }
  });
});
