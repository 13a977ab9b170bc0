import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { selfSignedCert } from '../../test/support/mqtt-peers.js';
import { tempDir } from '../../test/support/procs.js';
import { connectAgent, frontRouter, linkPool, startTestEdge, testCluster, type TestCluster, type TestEdge } from '../../test/support/cluster-router-world.js';
import type { ResponseHead } from '../relay/protocol/heads.js';
import { isWaiting, RouteError, type RequestStream, type ResponseListener } from '../relay/router.js';
import { ClusterTunnelRouter } from './cluster-router.js';
import { NodeLink } from './node-link.js';
import { MapPresence } from '../core/presence.js';
import { pino } from 'pino';
import { MapNodeDirectory } from '../../test/support/cluster-router-world.js';

const OLD = 'the-old-cluster-secret-0001';
const NEW = 'the-new-cluster-secret-0002';
const LINK = { handshakeTimeoutMs: 2000, maxFrameBytes: 65_536, windowBytes: 65_536, pingIntervalMs: 5000, idleTimeoutMs: 30_000 };

async function until(check: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('node link authentication', () => {
  let cluster: TestCluster;
  const edges: TestEdge[] = [];
  before(async () => {
    cluster = await testCluster();
  });
  after(async () => {
    for (const e of edges) await e.close();
    cluster.store.close();
  });
  const edge = async (secrets: [string, ...string[]]): Promise<TestEdge> => {
    const e = await startTestEdge(cluster, `n_e${edges.length}`, { secrets });
    edges.push(e);
    return e;
  };

  test('a node that knows the cluster secret gets a link', async () => {
    const e = await edge([OLD]);
    const link = await NodeLink.connect(e.internalUrl, { ...LINK, secrets: [OLD] });
    assert.ok(link.usable);
    await until(() => e.linkServer.links === 1, 'the edge to count the link');
    link.close();
  });

  test('a node with a wrong secret is refused, and the refusal is logged without any secret', async () => {
    const e = await edge([OLD]);
    await assert.rejects(NodeLink.connect(e.internalUrl, { ...LINK, secrets: [NEW] }), /does not know the cluster secret|closed during the handshake/);
    await until(() => e.logged.some((l) => l.msg === 'node link refused: authentication failed'), 'the refusal in the edge log');
    const text = JSON.stringify(e.logged);
    assert.ok(!text.includes(OLD) && !text.includes(NEW), 'no secret in the log');
    assert.equal(e.linkServer.links, 0);
  });

  test('during a rotation each node accepts the other secret: old and new nodes link both ways', async () => {
    // Step 1 (every node accepts NEW too), then step 2 (every node proves with NEW, accepts OLD): nodes of either step talk.
    const step1 = await edge([OLD, NEW]);
    const step2 = await edge([NEW, OLD]);
    (await NodeLink.connect(step1.internalUrl, { ...LINK, secrets: [NEW, OLD] })).close();
    (await NodeLink.connect(step2.internalUrl, { ...LINK, secrets: [OLD, NEW] })).close();
    // Step 3: the old secret is gone; a node that never got the new one is out.
    const step3 = await edge([NEW]);
    await assert.rejects(NodeLink.connect(step3.internalUrl, { ...LINK, secrets: [OLD] }));
  });

  test('a peer that proves nothing gets only the 36-byte challenge, is dropped at the deadline, and is logged once per interval', async () => {
    const e = await edge([OLD]);
    const port = Number(new URL(e.internalUrl.replace('tcp:', 'http:')).port);
    for (let i = 0; i < 3; i++) {
      const s = net.connect(port, '127.0.0.1');
      let got = 0;
      s.on('data', (b: Buffer) => {
        got += b.length;
      });
      if (i === 0) s.write(Buffer.alloc(68, 0x41)); // a wrong proof: dropped at once
      const started = Date.now();
      await once(s, 'close');
      assert.equal(got, 36, 'nothing but the challenge');
      assert.ok(Date.now() - started < 5000, 'dropped within the handshake deadline');
    }
    const refusals = e.logged.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('node link refused'));
    assert.equal(refusals.length, 1, 'three refusals from one address, one log line in the interval');
  });
});

describe('node links over mutual TLS', () => {
  test('a node with a certificate from --internal-tls-ca links; one with another certificate is refused in the TLS handshake', async () => {
    const dir = tempDir('cloudrest-node-tls-');
    const cluster = await testCluster();
    const e = await startTestEdge(cluster, 'n_tls', { secrets: [OLD] });
    const ours = selfSignedCert(dir.path);
    const strangerDir = tempDir('cloudrest-node-tls-other-');
    const stranger = selfSignedCert(strangerDir.path);
    const pem = (f: string) => readFileSync(f);
    const server = tls.createServer({ cert: pem(ours.cert), key: pem(ours.key), ca: pem(ours.cert), requestCert: true, rejectUnauthorized: true }, (s) => e.linkServer.accept(s, s.remoteAddress ?? ''));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `tls://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    try {
      const link = await NodeLink.connect(url, { ...LINK, secrets: [OLD], tls: { cert: pem(ours.cert), key: pem(ours.key), ca: pem(ours.cert) } });
      assert.ok(link.usable);
      link.close();
      await assert.rejects(NodeLink.connect(url, { ...LINK, secrets: [OLD], tls: { cert: pem(stranger.cert), key: pem(stranger.key), ca: pem(ours.cert) } }));
      // The edge's certificate is checked too: a front that trusts another CA does not link.
      await assert.rejects(NodeLink.connect(url, { ...LINK, secrets: [OLD], tls: { cert: pem(ours.cert), key: pem(ours.key), ca: pem(stranger.cert) } }), /certificate/);
    } finally {
      server.close();
      await e.close();
      cluster.store.close();
      dir.remove();
      strangerDir.remove();
    }
  });
});

/** What a caller heard of one exchange, with a consumer that can be slow. */
class Sink implements ResponseListener {
  head: ResponseHead | undefined;
  readonly hash = createHash('sha256');
  bytes = 0;
  ended = false;
  error: Error | undefined;
  onResponse(head: ResponseHead, end: boolean): void {
    this.head = head;
    this.ended = end;
  }
  onData(chunk: Buffer, end: boolean): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    if (end) this.ended = true;
  }
  onError(err: Error): void {
    this.error = err;
  }
}

describe('relaying through a node link', () => {
  let cluster: TestCluster;
  let e: TestEdge;
  const sockets = new Set<net.Socket>();
  before(async () => {
    cluster = await testCluster();
    e = await startTestEdge(cluster, 'n_edge');
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await e.close();
    cluster.store.close();
  });

  test('a 20 MB body goes up and a 20 MB answer comes back through front → edge → device, under flow control', async () => {
    const agent = await connectAgent(cluster, e.tunnelPort, 'd_big', 65_536, sockets);
    const TOTAL = 20 * 1024 * 1024;
    const upHash = createHash('sha256');
    let upBytes = 0;
    // The device answers with as many bytes as it got, once it has them all (its own pace: 64 KiB writes).
    agent.onChannel = (ch) => {
      ch.listener = {
        onData: (chunk, end) => {
          upHash.update(chunk);
          upBytes += chunk.length;
          if (!end) return;
          ch.respond({ status: 200, headers: [['x-up-sha256', upHash.digest('hex')]] });
          let sent = 0;
          const pump = (): void => {
            while (sent < TOTAL) {
              const n = Math.min(65_536, TOTAL - sent);
              const part = Buffer.alloc(n, sent & 0xff);
              sent += n;
              if (!ch.write(part, pump, sent === TOTAL)) return;
            }
          };
          pump();
        },
        onError: () => undefined,
      };
    };
    const pool = linkPool();
    const router = frontRouter(cluster, 'n_front', pool);
    const sink = new Sink();
    const opened = await router.open('d_big', { method: 'PUT', target: '/blob', headers: [] }, false, sink);
    assert.ok(typeof opened !== 'string' && !isWaiting(opened));
    const s: RequestStream = opened;
    const sentHash = createHash('sha256');
    let waits = 0;
    for (let off = 0; off < TOTAL; off += 256 * 1024) {
      const part = Buffer.alloc(256 * 1024, (off >> 18) & 0xff);
      sentHash.update(part);
      await new Promise<void>((resolve) => {
        if (s.write(part, resolve)) resolve();
        else waits++;
      });
    }
    s.end();
    await until(() => sink.head !== undefined || sink.error !== undefined, 'the answer head', 30_000);
    assert.equal(sink.head?.headers[0]?.[1], sentHash.digest('hex'), 'the device got every byte, in order');
    assert.equal(upBytes, TOTAL);
    assert.ok(waits > 0, 'the front was held back while the device read');
    // A slow consumer: paused, the device stops within a few windows; resumed, everything arrives.
    s.pause();
    const pausedAt = sink.bytes;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(sink.bytes - pausedAt <= 4 * 65_536, `${sink.bytes - pausedAt} bytes arrived while paused`);
    s.resume();
    await until(() => sink.ended || sink.error !== undefined, 'the whole answer', 30_000);
    assert.equal(sink.error, undefined);
    assert.equal(sink.bytes, TOTAL);
    router.close();
  });

  test('a request the front cancels is reset at the device, and the link carries on', async () => {
    const agent = await connectAgent(cluster, e.tunnelPort, 'd_cancel', 65_536, sockets);
    const reset = new Promise<Error>((resolve) => {
      agent.onChannel = (ch) => {
        if (ch.request!.target === '/after') {
          ch.respond({ status: 204, headers: [] }, true);
          return;
        }
        ch.listener = { onData: () => undefined, onError: resolve };
        ch.respond({ status: 200, headers: [] });
        ch.write(Buffer.from('first part'), () => undefined);
      };
    });
    const router = frontRouter(cluster, 'n_front2', linkPool());
    const sink = new Sink();
    const s = (await router.open('d_cancel', { method: 'GET', target: '/slow', headers: [] }, true, sink)) as RequestStream;
    await until(() => sink.bytes > 0, 'the first part');
    s.cancel();
    assert.match((await reset).message, /reset|cancel/i);
    const next = new Sink();
    await router.open('d_cancel', { method: 'GET', target: '/after', headers: [] }, true, next);
    await until(() => next.ended, 'the next answer');
    assert.equal(next.head?.status, 204);
    router.close();
  });

  test('a complete request sent ahead for a device the edge no longer holds fails with the offline error, and the link carries on', async () => {
    // Presence still names the edge (a stale entry), but the edge has no tunnel for the device.
    await new MapPresence('n_edge', cluster.table).set('d_ghost', Date.now());
    const router = frontRouter(cluster, 'n_front4', linkPool());
    const sink = new Sink();
    const opened = router.open('d_ghost', { method: 'GET', target: '/', headers: [] }, true, sink);
    const s = opened instanceof Promise ? await opened : opened;
    assert.ok(typeof s !== 'string' && !isWaiting(s), 'a complete request starts without waiting for the edge');
    await until(() => sink.error !== undefined, 'the edge refusal');
    assert.ok(sink.error instanceof RouteError, `a RouteError, not ${String(sink.error)}`);
    assert.equal(sink.error.code, 'CR_ERR_DEVICE_OFFLINE');
    assert.equal(sink.head, undefined);
    const agent = await connectAgent(cluster, e.tunnelPort, 'd_after_ghost', 65_536, sockets);
    agent.onChannel = (ch) => ch.respond({ status: 204, headers: [] }, true);
    const next = new Sink();
    await router.open('d_after_ghost', { method: 'GET', target: '/', headers: [] }, true, next);
    await until(() => next.ended, 'the next answer over the same link');
    assert.equal(next.head?.status, 204);
    router.close();
  });

  test('a device that reconnects to another edge is reached there at once, and the first edge drops its tunnel', async () => {
    const other = await startTestEdge(cluster, 'n_edge_b');
    try {
      const first = await connectAgent(cluster, e.tunnelPort, 'd_moving', 65_536, sockets);
      first.onChannel = (ch) => ch.respond({ status: 200, headers: [['x-edge', 'a']] }, true);
      const router = frontRouter(cluster, 'n_front3', linkPool());
      const a = new Sink();
      await router.open('d_moving', { method: 'GET', target: '/', headers: [] }, true, a);
      await until(() => a.ended, 'the answer from edge a');
      assert.equal(a.head?.headers[0]?.[1], 'a');

      const dropped = once(first, 'goaway');
      const second = await connectAgent(cluster, other.tunnelPort, 'd_moving', 65_536, sockets);
      second.onChannel = (ch) => ch.respond({ status: 200, headers: [['x-edge', 'b']] }, true);
      const [g] = (await dropped) as [{ code: number }];
      assert.equal(g.code, 8 /* TAKEN_OVER */);
      assert.equal(e.tunnels.get('d_moving'), undefined, 'edge a holds no tunnel for it');
      const b = new Sink();
      await router.open('d_moving', { method: 'GET', target: '/', headers: [] }, true, b);
      await until(() => b.ended, 'the answer from edge b');
      assert.equal(b.head?.headers[0]?.[1], 'b');
      router.close();
    } finally {
      await other.close();
    }
  });
});

describe("a front's device → node cache", () => {
  test('reads Presence once for a device, then follows the device-changes channel: a move to another edge costs no read', async () => {
    const cluster = await testCluster();
    const a = await startTestEdge(cluster, 'n_a');
    const b = await startTestEdge(cluster, 'n_b');
    const sockets = new Set<net.Socket>();
    // MapPresence with a count of its reads: what a front would ask Redis.
    let reads = 0;
    const presence = new (class extends MapPresence {
      override get(deviceId: string) {
        reads++;
        return super.get(deviceId);
      }
    })('n_front', cluster.table);
    try {
      const first = await connectAgent(cluster, a.tunnelPort, 'd_cached', 65_536, sockets);
      first.onChannel = (ch) => ch.respond({ status: 200, headers: [['x-edge', 'a']] }, true);
      const router = new ClusterTunnelRouter({ local: undefined, presence, nodes: new MapNodeDirectory(cluster.nodes, 'n_front'), links: linkPool(), bus: cluster.bus, log: pino({ level: 'silent' }) });
      const ask = async (): Promise<string | undefined> => {
        const sink = new Sink();
        await router.open('d_cached', { method: 'GET', target: '/', headers: [] }, true, sink);
        await until(() => sink.ended || sink.error !== undefined, 'an answer');
        return sink.head?.headers[0]?.[1];
      };
      for (let i = 0; i < 5; i++) assert.equal(await ask(), 'a');
      assert.equal(reads, 1, 'one Presence read for five requests');
      const second = await connectAgent(cluster, b.tunnelPort, 'd_cached', 65_536, sockets);
      second.onChannel = (ch) => ch.respond({ status: 200, headers: [['x-edge', 'b']] }, true);
      assert.equal(await ask(), 'b');
      assert.equal(reads, 1, 'the move came with the device-changes message');
      router.close();
    } finally {
      for (const s of sockets) s.destroy();
      await a.close();
      await b.close();
      cluster.store.close();
    }
  });
});
