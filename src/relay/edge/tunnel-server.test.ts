import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { LocalBus } from '../../core/local-bus.js';
import { MapPresence } from '../../core/presence.js';
import { sha256Hex } from '../../core/secrets.js';
import { createMetrics } from '../../core/metrics.js';
import { SqliteStore } from '../../store/sqlite/sqlite-store.js';
import type { Store } from '../../store/store.js';
import { ErrorCode, PROTOCOL_VERSION } from '../protocol/frames.js';
import { TunnelSession } from '../protocol/session.js';
import { TunnelServer } from './tunnel-server.js';

/** A TunnelServer with `maxTunnels` on loopback TCP, closed when the test ends. */
async function serveTunnels(t: TestContext, store: Store, maxTunnels: number): Promise<{ tunnels: TunnelServer; port: number }> {
  const tunnels = new TunnelServer(
    { maxFrameBytes: 65_536, windowBytes: 262_144, pingIntervalMs: 10_000, idleTimeoutMs: 30_000, handshakeTimeoutMs: 10_000, maxTunnels, maxHandshakes: 10, maxPerAddress: 0, maxInflightPerDevice: 4, maxQueuedPerDevice: 4 },
    { store, bus: new LocalBus(), presence: new MapPresence('n_test'), log: pino({ level: 'silent' }), metrics: createMetrics() },
  );
  t.after(() => tunnels.shutdown(0));
  const server = net.createServer((s) => tunnels.accept(s, '127.0.0.1', 'tcp'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return { tunnels, port: (server.address() as net.AddressInfo).port };
}

test('a device revoked while its HELLO is being checked is not admitted', async (t) => {
  const real = SqliteStore.open(':memory:');
  await real.migrate();
  t.after(() => real.close());
  await real.createDevice({ id: 'd_1', name: 'd', email: null, secretHash: sha256Hex('s') });
  // The real store, with its first device lookup held until the revocation has been handled.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let looked = false;
  const store = new Proxy(real, {
    get(target, prop, receiver) {
      if (prop !== 'getDevice') return Reflect.get(target, prop, receiver) as unknown;
      return async (id: string) => {
        const d = await target.getDevice(id); // read before the revocation, as in the race
        if (!looked) {
          looked = true;
          await held;
        }
        return d;
      };
    },
  }) as Store;
  const { tunnels, port } = await serveTunnels(t, store, 10);
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const agent = new TunnelSession(socket, 'agent', { maxFrameBytes: 65_536, windowBytes: 262_144 });
  const goaway = once(agent, 'goaway');
  agent.sendHello({ version: PROTOCOL_VERSION, deviceId: 'd_1', secret: 's', bootId: 'b', info: {}, maxFrameBytes: 65_536, windowBytes: 262_144, maxStreams: 4 });
  while (!looked) await new Promise((r) => setTimeout(r, 5));

  await real.setDeviceRevoked('d_1', Date.now());
  assert.equal(tunnels.closeDevice('d_1', ErrorCode.REVOKED, 'device revoked'), false, 'no established tunnel yet');
  release();
  const [g] = (await goaway) as [{ code: number; reason: string }];
  assert.deepEqual([g.code, g.reason], [ErrorCode.REVOKED, 'device revoked']);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(tunnels.isOnline('d_1'), false);
});

test('--max-tunnels counts authenticated tunnels: a new device past it is refused, the same device taking over its tunnel is let in', async (t) => {
  const store = SqliteStore.open(':memory:');
  await store.migrate();
  t.after(() => store.close());
  for (const id of ['d_1', 'd_2']) await store.createDevice({ id, name: id, email: null, secretHash: sha256Hex('s') });
  const { tunnels, port } = await serveTunnels(t, store, 1);
  // Three connections idle in the handshake do not count against the one tunnel allowed.
  const idle = await Promise.all([1, 2, 3].map(async () => {
    const s = net.connect(port, '127.0.0.1');
    await once(s, 'connect');
    return s;
  }));
  t.after(() => idle.forEach((s) => s.destroy()));
  const hello = async (deviceId: string): Promise<string> => {
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const agent = new TunnelSession(socket, 'agent', { maxFrameBytes: 65_536, windowBytes: 262_144 });
    const answer = Promise.race([
      once(agent, 'welcome').then(() => 'welcome'),
      once(agent, 'goaway').then(([g]) => (g as { reason: string }).reason),
    ]);
    agent.sendHello({ version: PROTOCOL_VERSION, deviceId, secret: 's', bootId: 'b', info: {}, maxFrameBytes: 65_536, windowBytes: 262_144, maxStreams: 4 });
    return answer;
  };
  assert.equal(await hello('d_1'), 'welcome');
  assert.equal(await hello('d_2'), 'too many tunnels');
  assert.equal(await hello('d_1'), 'welcome', 'a take-over does not add a tunnel');
  assert.equal(tunnels.size, 1);
});
