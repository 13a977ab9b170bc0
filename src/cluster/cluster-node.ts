import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { HubConfig } from '../config/hub-options.js';
import type { Bus } from '../core/bus.js';
import type { LogLimiter } from '../core/log-limiter.js';
import type { NodeDirectory, Presence } from '../core/presence.js';
import { DEVICE_NODE_FILTER, decodeDeviceNode } from '../relay/edge/device-node-topic.js';
import type { LocalTunnelRouter } from '../relay/edge/local-tunnel-router.js';
import type { TunnelServer } from '../relay/edge/tunnel-server.js';
import { internalUrlOf, type ClusterSettings } from './cluster-config.js';
import { ClusterTunnelRouter } from './cluster-router.js';
import { NodeLinkPool } from './node-link-pool.js';
import { NodeLinkServer } from './node-link-server.js';

/** Links this node keeps to each edge: two, so one slow connection never holds up all traffic. */
const LINKS_PER_NODE = 2;
/** Node link handshakes at once (connections still proving the cluster secret). */
const MAX_LINK_HANDSHAKES = 64;
/** Streams on one link at once: far above what a front sends (the devices' own limits come first). */
const MAX_STREAMS_PER_LINK = 16_384;

export interface ClusterNodeDeps {
  local: LocalTunnelRouter;
  tunnels: TunnelServer;
  presence: Presence;
  nodes: NodeDirectory;
  bus: Bus;
  log: Logger;
  refusals: LogLimiter;
}

/** The scaled-out part of one hub process: its router to other nodes and, on an edge, its internal port. */
export interface ClusterNode {
  readonly router: ClusterTunnelRouter;
  /** Opens the internal port (edge and all) and announces it; resolves with the internal URL, undefined on a front. */
  listen(bind: (server: NetServer, port: number) => Promise<number>): Promise<string | undefined>;
  close(): void;
}

export function startCluster(settings: ClusterSettings, config: HubConfig, deps: ClusterNodeDeps): ClusterNode {
  const { log } = deps;
  const links = new NodeLinkPool({
    secrets: settings.secrets,
    handshakeTimeoutMs: config.tunnelHandshakeTimeoutMs,
    maxFrameBytes: config.tunnelMaxFrameBytes,
    windowBytes: config.tunnelWindowBytes,
    pingIntervalMs: config.tunnelPingIntervalMs,
    idleTimeoutMs: config.tunnelIdleTimeoutMs,
    ...(settings.tls ? { tls: { cert: settings.tls.cert, key: settings.tls.key, ...(settings.tls.ca ? { ca: settings.tls.ca } : {}) } } : {}),
    linksPerNode: LINKS_PER_NODE,
    backoffMs: 100,
    maxBackoffMs: 5000,
  });
  const router = new ClusterTunnelRouter({ local: settings.holdsTunnels ? deps.local : undefined, presence: deps.presence, nodes: deps.nodes, links, bus: deps.bus, log });
  if (!settings.holdsTunnels) {
    return { router, listen: async () => undefined, close: () => router.close() };
  }

  // A device that connects to another edge is gone from here at once (never reachable through two edges).
  const unfollow = deps.bus.subscribe(DEVICE_NODE_FILTER, (topic, payload) => {
    const change = decodeDeviceNode(topic, payload);
    if (change?.nodeId !== undefined && change.nodeId !== settings.nodeId) deps.tunnels.yieldDevice(change.deviceId, change.at);
  });
  const linkServer = new NodeLinkServer(
    {
      nodeId: settings.nodeId, secrets: settings.secrets, handshakeTimeoutMs: config.tunnelHandshakeTimeoutMs, maxHandshakes: MAX_LINK_HANDSHAKES,
      maxFrameBytes: config.tunnelMaxFrameBytes, windowBytes: config.tunnelWindowBytes, idleTimeoutMs: config.tunnelIdleTimeoutMs, maxStreamsPerLink: MAX_STREAMS_PER_LINK,
    },
    { router: deps.local, log, refusals: deps.refusals },
  );
  const onLink = (s: Socket | TLSSocket): void => {
    s.setNoDelay(true);
    s.setKeepAlive(true, 30_000);
    linkServer.accept(s, s.remoteAddress ?? '');
  };
  const tls = settings.tls;
  // With --internal-tls-ca, only nodes with a certificate from that CA get past TLS (mutual TLS).
  const server: NetServer = tls
    ? createTlsServer({ cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: true } : {}) }, onLink)
    : createNetServer(onLink);
  server.on('tlsClientError', (err: Error, s: TLSSocket) => {
    deps.refusals.warn('node link refused', s.remoteAddress ?? '', { remoteAddress: s.remoteAddress, reason: err.message }, 'node link refused: TLS handshake failed');
  });
  return {
    router,
    async listen(bind) {
      const port = await bind(server, config.internalPort);
      const url = internalUrlOf(config, settings, port);
      await deps.nodes.setNodeInfo({ internalUrl: url });
      return url;
    },
    close() {
      unfollow();
      server.close();
      linkServer.close();
      router.close();
    },
  };
}
