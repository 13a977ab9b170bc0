import { once } from 'node:events';
import net from 'node:net';
import { pino } from 'pino';
import { LocalBus } from '../../src/core/local-bus.js';
import { MapPresence } from '../../src/core/presence.js';
import { sha256Hex } from '../../src/core/secrets.js';
import { createMetrics } from '../../src/core/metrics.js';
import { LocalTunnelRouter } from '../../src/relay/edge/local-tunnel-router.js';
import { TunnelServer } from '../../src/relay/edge/tunnel-server.js';
import { PROTOCOL_VERSION } from '../../src/relay/protocol/frames.js';
import { TunnelSession } from '../../src/relay/protocol/session.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { RouterWorld, RouterWorldLimits } from '../tunnel-router-contract.js';

/** A real tunnel server on loopback TCP, its registry behind a LocalTunnelRouter; agents are real TunnelSessions. */
export async function localRouterWorld(limits: RouterWorldLimits): Promise<RouterWorld> {
  const store = SqliteStore.open(':memory:');
  await store.migrate();
  const presence = new MapPresence('n_test');
  const router = new LocalTunnelRouter(presence);
  const tunnels = new TunnelServer(
    {
      maxFrameBytes: 65_536, windowBytes: limits.windowBytes, pingIntervalMs: 10_000, idleTimeoutMs: 30_000, handshakeTimeoutMs: 10_000,
      maxTunnels: 100, maxHandshakes: 100, maxPerAddress: 0, maxInflightPerDevice: limits.maxInflightPerDevice, maxQueuedPerDevice: limits.maxQueuedPerDevice,
    },
    { store, bus: new LocalBus(), presence, log: pino({ level: 'silent' }), metrics: createMetrics() },
  );
  router.attach(tunnels);
  const server = net.createServer((s) => tunnels.accept(s, '127.0.0.1', 'tcp'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const sockets = new Set<net.Socket>();
  const known = new Set<string>();
  return {
    router,
    async connect(deviceId) {
      if (!known.has(deviceId)) {
        await store.createDevice({ id: deviceId, name: deviceId, email: null, secretHash: sha256Hex(`secret-${deviceId}`) });
        known.add(deviceId);
      }
      const socket = net.connect(port, '127.0.0.1');
      sockets.add(socket);
      await once(socket, 'connect');
      const agent = new TunnelSession(socket, 'agent', { maxFrameBytes: 65_536, windowBytes: limits.windowBytes });
      const welcomed = once(agent, 'welcome');
      agent.sendHello({ version: PROTOCOL_VERSION, deviceId, secret: `secret-${deviceId}`, bootId: `b-${sockets.size}`, info: {}, maxFrameBytes: 65_536, windowBytes: limits.windowBytes, maxStreams: 64 });
      await welcomed; // the registry points at the tunnel before its WELCOME leaves
      return agent;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await tunnels.shutdown(0);
      server.close();
      store.close();
    },
  };
}

