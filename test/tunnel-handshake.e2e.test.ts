import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorCode } from '../src/relay/protocol/frames.js';
import { addDevice, addUser, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { eventually, helloFrame, slowPeer, slowPeers, type SlowPeer } from './support/slow-peers.js';

const open = (peers: SlowPeer[]) => peers.filter((p) => p.closedAt === undefined).length;

describe('tunnel handshake: strangers who never finish a HELLO cannot hold the hub', () => {
  const data = tempDir();
  const stoppers: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const s of stoppers.reverse()) await s();
    data.remove();
  });

  it('closes connections that trickle a HELLO one byte a second at the handshake timeout counted from accept, on the tunnel port and /v1/agent', async () => {
    const hub = await startHub(data.path, ['--tunnel-handshake-timeout-ms', '2000']);
    stoppers.push(() => hub.stop());
    const tcp = await slowPeers(300, { port: hub.tunnelPort, transport: 'tcp', everyMs: 1000 });
    const ws = await slowPeers(100, { port: hub.httpPort, transport: 'ws', everyMs: 1000 });
    const peers = [...tcp, ...ws];
    try {
      // Deadline 2 s from accept, swept every 0.5 s; 6 s more is slack for a busy machine. Before the
      // fix every byte restarted the timer and all of them were still open here.
      const closed = await eventually(() => open(peers) === 0, 8000);
      assert.ok(closed, `${open(tcp)} of ${tcp.length} TCP and ${open(ws)} of ${ws.length} WebSocket connections still open ${Date.now() - peers[0]!.openedAt} ms after the first was accepted`);
      const lifetimes = peers.map((p) => p.closedAt! - p.openedAt);
      assert.ok(Math.min(...lifetimes) >= 1900, `closed after ${Math.min(...lifetimes)} ms, before the timeout`);
      assert.equal(peers.filter((p) => p.goaway?.code === ErrorCode.TIMEOUT).length, peers.length, 'each got GOAWAY TIMEOUT');
      process.stdout.write(`# ${peers.length} slow-HELLO connections (2 s timeout): longest lived ${Math.max(...lifetimes)} ms\n`);
    } finally {
      for (const p of peers) p.stop();
    }
  });

  describe('with --max-tunnels 20 and --max-tunnel-handshakes 30', () => {
    let hub: HubProc;
    let device: Proc & { url: string };
    let credentials: { id: string; secret: string };
    const peers: SlowPeer[] = [];
    before(async () => {
      const d = tempDir();
      stoppers.push(async () => d.remove());
      await addUser(d.path, 'owner@example.com', 'correct horse battery');
      credentials = await addDevice(d.path, 'Thermostat', 'owner@example.com');
      // A long handshake timeout: what is tested here is the counting, not the deadline.
      hub = await startHub(d.path, ['--max-tunnels', '20', '--max-tunnel-handshakes', '30', '--tunnel-handshake-timeout-ms', '60000']);
      device = await startDevice('owner@example.com');
      stoppers.push(() => hub.stop(), () => device.stop(), async () => peers.forEach((p) => p.stop()));
    });

    it('keeps at most 30 connections waiting for their HELLO, dropping the oldest first', async () => {
      // One at a time, so the hub accepts them in this order: 10 over WebSocket (open once the hub has
      // taken it), then 40 over TCP (the kernel queues those in connect order).
      for (let i = 0; i < 50; i++) peers.push(await slowPeer({ port: i < 10 ? hub.httpPort : hub.tunnelPort, transport: i < 10 ? 'ws' : 'tcp', everyMs: 1000 }));
      assert.ok(await eventually(() => open(peers) <= 30, 5000), `${open(peers)} of 50 still waiting for a HELLO`);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(open(peers), 30);
      const states = peers.map((p, i) => `${i}:${p.closedAt === undefined ? 'open' : p.goaway?.reason ?? 'closed'}`).join(' ');
      assert.equal(open(peers.slice(0, 20)), 0, `the oldest were dropped: ${states}`);
      assert.equal(open(peers.slice(20)), 30, `the newest are waiting: ${states}`);
      const dropped = peers.filter((p) => p.closedAt !== undefined);
      assert.ok(dropped.every((p) => p.goaway?.code === ErrorCode.SHUTTING_DOWN && p.goaway.reason === 'too many tunnel handshakes'), JSON.stringify(dropped.map((p) => p.goaway)));
    });

    it('lets a real agent in while strangers hold every handshake slot, and its device answers through the relay', async () => {
      // Strangers hold at least --max-tunnels connections (all 30 handshake slots, with the fix).
      assert.ok(open(peers) >= 20, `${open(peers)} strangers connected`);
      const agent = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: credentials.id, secret: credentials.secret, api: device.url, waitConnected: false });
      stoppers.push(() => agent.stop());
      // Before the fix the agent was refused with "too many tunnels" for as long as the strangers trickled.
      await agent.waitForLog('connected', () => true, 10_000);
      const token = await login(hub.url, 'owner@example.com', 'correct horse battery');
      const r = await fetch(`${hub.url}/v1/devices/${credentials.id}/api/device`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(r.status, 200, await r.clone().text());
      assert.ok(open(peers) <= 30);
    });
  });

  it('refuses tunnel connections past --max-tunnels-per-address from one address, on both transports, and takes other addresses', async () => {
    const d = tempDir();
    const hub = await startHub(d.path, ['--max-tunnels-per-address', '10', '--tunnel-handshake-timeout-ms', '60000']);
    const peers: SlowPeer[] = [];
    try {
      for (let i = 0; i < 12; i++) peers.push(await slowPeer({ port: i % 2 === 0 ? hub.tunnelPort : hub.httpPort, transport: i % 2 === 0 ? 'tcp' : 'ws', everyMs: 0 }));
      assert.ok(await eventually(() => open(peers) <= 10, 5000), `${open(peers)} of 12 from one address open`);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(open(peers), 10);
      assert.deepEqual(peers.slice(10).map((p) => [p.goaway?.code, p.goaway?.reason]), [1, 2].map(() => [ErrorCode.SHUTTING_DOWN, 'too many tunnels from this address']));
      // Another address gets through to the HELLO check (and is refused there, for its wrong secret).
      const other = await helloFrom(hub.tunnelPort, '127.0.0.2');
      assert.equal(other?.code, ErrorCode.AUTH_FAILED);
      // Closed connections give their places back.
      peers[0]!.stop();
      await new Promise((r) => setTimeout(r, 200));
      const again = await helloFrom(hub.tunnelPort, '127.0.0.1');
      assert.equal(again?.code, ErrorCode.AUTH_FAILED);
    } finally {
      for (const p of peers) p.stop();
      await hub.stop();
      d.remove();
    }
  });
});

/** Sends a complete HELLO (wrong secret) from `localAddress` and returns the hub's GOAWAY. */
async function helloFrom(port: number, localAddress: string): Promise<{ code: number; reason: string } | undefined> {
  const p = await slowPeer({ port, transport: 'tcp', everyMs: 0, localAddress, send: helloFrame() });
  await eventually(() => p.closedAt !== undefined, 5000);
  p.stop();
  return p.goaway;
}
