import { once } from 'node:events';
import net from 'node:net';
import { pino } from 'pino';
import { ClusterTunnelRouter } from '../../src/cluster/cluster-router.js';
import type { ClusterSecrets } from '../../src/cluster/node-link-auth.js';
import { NodeLinkPool } from '../../src/cluster/node-link-pool.js';
import { NodeLinkServer } from '../../src/cluster/node-link-server.js';
import { LocalBus } from '../../src/core/local-bus.js';
import { LogLimiter } from '../../src/core/log-limiter.js';
import { createMetrics } from '../../src/core/metrics.js';
import { MapPresence, type NodeDirectory, type NodeInfo, type PresenceEntry } from '../../src/core/presence.js';
import { sha256Hex } from '../../src/core/secrets.js';
import { LocalTunnelRouter } from '../../src/relay/edge/local-tunnel-router.js';
import { TunnelServer } from '../../src/relay/edge/tunnel-server.js';
import { PROTOCOL_VERSION } from '../../src/relay/protocol/frames.js';
import { TunnelSession } from '../../src/relay/protocol/session.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import type { RouterWorld, RouterWorldLimits } from '../tunnel-router-contract.js';

/** The node directory of nodes in one process: one shared Map, each node's view writing its own entry. */
export class MapNodeDirectory implements NodeDirectory {
  constructor(
    private readonly table: Map<string, NodeInfo>,
    private readonly nodeId: string,
  ) {}

  async nodeAlive(nodeId: string): Promise<boolean> {
    return this.table.has(nodeId);
  }

  async nodeInfo(nodeId: string): Promise<NodeInfo | undefined> {
    return this.table.get(nodeId);
  }

  async setNodeInfo(info: NodeInfo): Promise<void> {
    this.table.set(this.nodeId, info);
  }
}

export const TEST_SECRETS: ClusterSecrets = ['cluster-secret-for-tests-0001'];

export interface EdgeOptions {
  /** Secrets the edge accepts (default TEST_SECRETS). */
  secrets?: ClusterSecrets;
  windowBytes?: number;
  maxInflightPerDevice?: number;
  maxQueuedPerDevice?: number;
}

/** One edge node in this process: a real tunnel server and node link server, each on loopback TCP. */
export interface TestEdge {
  readonly nodeId: string;
  readonly tunnels: TunnelServer;
  readonly linkServer: NodeLinkServer;
  /** tcp://127.0.0.1:PORT of the node link server. */
  readonly internalUrl: string;
  readonly tunnelPort: number;
  /** Lines the edge logged (refusals among them). */
  readonly logged: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

/** What the nodes of one test cluster share, as processes share Redis and the database. */
export interface TestCluster {
  store: SqliteStore;
  bus: LocalBus;
  table: Map<string, PresenceEntry>;
  nodes: Map<string, NodeInfo>;
}

export async function testCluster(): Promise<TestCluster> {
  const store = SqliteStore.open(':memory:');
  await store.migrate();
  return { store, bus: new LocalBus(), table: new Map(), nodes: new Map() };
}

export async function startTestEdge(cluster: TestCluster, nodeId: string, opts: EdgeOptions = {}): Promise<TestEdge> {
  const logged: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line) as Record<string, unknown>) });
  const presence = new MapPresence(nodeId, cluster.table);
  const local = new LocalTunnelRouter(presence);
  const windowBytes = opts.windowBytes ?? 65_536;
  const tunnels = new TunnelServer(
    {
      maxFrameBytes: 65_536, windowBytes, pingIntervalMs: 10_000, idleTimeoutMs: 30_000, handshakeTimeoutMs: 10_000,
      maxTunnels: 100, maxHandshakes: 100, maxPerAddress: 0, maxInflightPerDevice: opts.maxInflightPerDevice ?? 8, maxQueuedPerDevice: opts.maxQueuedPerDevice ?? 8,
    },
    { store: cluster.store, bus: cluster.bus, presence, log, metrics: createMetrics() },
  );
  local.attach(tunnels);
  const refusals = new LogLimiter(log, { intervalMs: 60_000, maxKeys: 100 });
  const linkServer = new NodeLinkServer(
    { nodeId, secrets: opts.secrets ?? TEST_SECRETS, handshakeTimeoutMs: 2000, maxHandshakes: 8, maxFrameBytes: 65_536, windowBytes, idleTimeoutMs: 30_000, maxStreamsPerLink: 1000 },
    { router: local, log, refusals },
  );
  const tunnelServer = net.createServer((s) => tunnels.accept(s, '127.0.0.1', 'tcp'));
  const internal = net.createServer((s) => linkServer.accept(s, s.remoteAddress ?? ''));
  tunnelServer.listen(0, '127.0.0.1');
  internal.listen(0, '127.0.0.1');
  await Promise.all([once(tunnelServer, 'listening'), once(internal, 'listening')]);
  const internalUrl = `tcp://127.0.0.1:${(internal.address() as net.AddressInfo).port}`;
  await new MapNodeDirectory(cluster.nodes, nodeId).setNodeInfo({ internalUrl });
  const unfollow = cluster.bus.subscribe('devices/+/node', (topic, payload) => {
    const [owner, at] = payload.toString('latin1').split(' ');
    if (owner && owner !== nodeId) tunnels.yieldDevice(topic.slice(8, -5), Number(at));
  });
  return {
    nodeId, tunnels, linkServer, internalUrl, logged,
    tunnelPort: (tunnelServer.address() as net.AddressInfo).port,
    async close() {
      unfollow();
      linkServer.close();
      await tunnels.shutdown(0);
      tunnelServer.close();
      internal.close();
      refusals.close();
    },
  };
}

export function linkPool(secrets: ClusterSecrets = TEST_SECRETS, windowBytes = 65_536): NodeLinkPool {
  return new NodeLinkPool({
    secrets, handshakeTimeoutMs: 2000, maxFrameBytes: 65_536, windowBytes, pingIntervalMs: 5000, idleTimeoutMs: 30_000,
    linksPerNode: 2, backoffMs: 50, maxBackoffMs: 500,
  });
}

export function frontRouter(cluster: TestCluster, nodeId: string, pool: NodeLinkPool): ClusterTunnelRouter {
  return new ClusterTunnelRouter({ local: undefined, presence: new MapPresence(nodeId, cluster.table), nodes: new MapNodeDirectory(cluster.nodes, nodeId), links: pool, bus: cluster.bus, log: pino({ level: 'silent' }) });
}

/** Registers a device (secret `secret-ID`) if new and connects a real agent session to `port`; resolves once welcomed. */
export async function connectAgent(cluster: TestCluster, port: number, deviceId: string, windowBytes = 65_536, sockets?: Set<net.Socket>): Promise<TunnelSession> {
  if ((await cluster.store.getDevice(deviceId)) === undefined) {
    await cluster.store.createDevice({ id: deviceId, name: deviceId, email: null, secretHash: sha256Hex(`secret-${deviceId}`) });
  }
  const socket = net.connect(port, '127.0.0.1');
  sockets?.add(socket);
  await once(socket, 'connect');
  const agent = new TunnelSession(socket, 'agent', { maxFrameBytes: 65_536, windowBytes });
  const welcomed = once(agent, 'welcome');
  agent.sendHello({ version: PROTOCOL_VERSION, deviceId, secret: `secret-${deviceId}`, bootId: `b-${Math.random()}`, info: {}, maxFrameBytes: 65_536, windowBytes, maxStreams: 64 });
  await welcomed;
  return agent;
}

/**
 * The TunnelRouter contract's world for ClusterTunnelRouter: the router is a front's, holding no
 * tunnel; agents connect to an edge in the same process, reached over a real node link on loopback.
 */
export async function clusterRouterWorld(limits: RouterWorldLimits): Promise<RouterWorld> {
  const cluster = await testCluster();
  const edge = await startTestEdge(cluster, 'n_edge', limits);
  const pool = linkPool(TEST_SECRETS, limits.windowBytes);
  const router = frontRouter(cluster, 'n_front', pool);
  const sockets = new Set<net.Socket>();
  return {
    router,
    connect: (deviceId) => connectAgent(cluster, edge.tunnelPort, deviceId, limits.windowBytes, sockets),
    async close() {
      for (const s of sockets) s.destroy();
      router.close();
      await edge.close();
      await cluster.bus.close();
      cluster.store.close();
    },
  };
}
