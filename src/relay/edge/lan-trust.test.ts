import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { LocalBus } from '../../core/local-bus.js';
import { MapPresence } from '../../core/presence.js';
import { sha256Hex } from '../../core/secrets.js';
import { TOKENS_REVOKED_TOPIC, encodeRevocation } from '../../core/token-revocation.js';
import { createMetrics } from '../../core/metrics.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import { PROTOCOL_VERSION } from '../protocol/frames.js';
import { LAN_FEATURE, type RevokedEntry } from '../protocol/lan-frames.js';
import { TunnelSession } from '../protocol/session.js';
import { LanTrustSync } from './lan-trust.js';
import { LocalTunnelRouter } from './local-tunnel-router.js';
import { TunnelServer } from './tunnel-server.js';

const KEY = { kid: '0123456789abcdef', ed25519: 'A'.repeat(43) };
const hash = (n: number) => n.toString(16).padStart(64, '0');

/** A real tunnel server with LAN trust, reaching agents through a LocalTunnelRouter, for device d_1 of user u_1. */
async function edge(t: TestContext) {
  const store = SqliteStore.open(':memory:');
  await store.migrate();
  await store.createUser({ id: 'u_1', email: 'owner@example.com', passwordHash: 'x' });
  await store.createDevice({ id: 'd_1', name: 'd', email: 'owner@example.com', secretHash: sha256Hex('s') });
  // Revoked before any agent connected: every LAN agent of d_1 gets it at connect.
  await store.addRevokedTokens([{ tokenHash: hash(1), userId: 'u_1', expiresAt: Date.now() + 3_600_000, revokedAt: Date.now() }]);
  const bus = new LocalBus();
  const log = pino({ level: 'silent' });
  const presence = new MapPresence('n_test');
  const router = new LocalTunnelRouter(presence);
  const lan = new LanTrustSync({ store, bus, log, router, keys: [KEY], invalidate: () => undefined });
  const tunnels = new TunnelServer(
    { maxFrameBytes: 65_536, windowBytes: 262_144, pingIntervalMs: 10_000, idleTimeoutMs: 30_000, handshakeTimeoutMs: 10_000, maxTunnels: 10, maxHandshakes: 10, maxPerAddress: 0, maxInflightPerDevice: 4, maxQueuedPerDevice: 4 },
    { store, bus, presence, log, metrics: createMetrics(), lan },
  );
  router.attach(tunnels);
  const server = net.createServer((s) => tunnels.accept(s, '127.0.0.1', 'tcp'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const sockets: net.Socket[] = [];
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await tunnels.shutdown(0);
    lan.close();
    server.close();
    store.close();
  });
  const connect = async (speaksLan: boolean) => {
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    sockets.push(socket);
    await once(socket, 'connect');
    const agent = new TunnelSession(socket, 'agent', { maxFrameBytes: 65_536, windowBytes: 262_144 });
    const revoked: RevokedEntry[] = [];
    let keys = 0;
    agent.on('revoked', (list: RevokedEntry[]) => revoked.push(...list));
    agent.on('lanKeys', () => keys++);
    const welcomed = once(agent, 'welcome');
    agent.sendHello({
      version: PROTOCOL_VERSION, deviceId: 'd_1', secret: 's', bootId: `b${sockets.length}`, info: {}, maxFrameBytes: 65_536, windowBytes: 262_144, maxStreams: 4,
      ...(speaksLan ? { features: [LAN_FEATURE] } : {}),
    });
    await welcomed;
    return { agent, socket, revoked, keys: () => keys };
  };
  // As Authenticator.revoke does: recorded in the Store, then published.
  const revoke = async (n: number) => {
    const token = { tokenHash: hash(n), expiresAt: Date.now() + 3_600_000 };
    await store.addRevokedTokens([{ ...token, userId: 'u_1', revokedAt: Date.now() }]);
    bus.publish(TOKENS_REVOKED_TOPIC, encodeRevocation({ userId: 'u_1', tokens: [token] }));
  };
  return { connect, revoke, router };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('a LAN agent that took over its device\'s tunnel gets the revocations made after the old tunnel closed', async (t) => {
  const { connect, revoke } = await edge(t);
  const first = await connect(true);
  await until(() => first.revoked.length === 1, 'the first agent\'s list at connect');
  const second = await connect(true);
  await until(() => second.revoked.length === 1, 'the second agent\'s list at connect');
  assert.equal(second.keys(), 1);
  if (!first.socket.closed) await once(first.socket, 'close'); // the old tunnel is gone (GOAWAY TAKEN_OVER)
  await revoke(2);
  await until(() => second.revoked.length === 2, 'the new revocation');
  assert.deepEqual(second.revoked.map((r) => r.tokenHash), [hash(1), hash(2)]);
});

test('an agent without the "lan" feature that took over from a LAN agent gets no LAN frames', async (t) => {
  const { connect, revoke, router } = await edge(t);
  const lanAgent = await connect(true);
  await until(() => lanAgent.revoked.length === 1, 'the LAN agent\'s list at connect');
  // A request in flight keeps the old tunnel open (draining) after the take-over.
  let atDevice = false;
  lanAgent.agent.onChannel = () => (atDevice = true);
  const opened = router.open('d_1', { method: 'GET', target: '/slow', headers: [] }, true, { onResponse: () => undefined, onData: () => undefined, onError: () => undefined });
  assert.equal(typeof opened, 'object');
  await until(() => atDevice, 'the request at the LAN agent');
  const plain = await connect(false);
  await revoke(2);
  // A LAN agent connecting after the revocation proves it was handled; the plain agent must have heard nothing.
  const later = await connect(true);
  await until(() => later.revoked.length === 2, 'the later agent\'s list at connect');
  assert.deepEqual([plain.revoked.length, plain.keys()], [0, 0]);
});
