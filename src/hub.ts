import { mkdirSync, readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import Fastify from 'fastify';
import { pino, type Logger } from 'pino';
import { WebSocketServer } from 'ws';
import { createAccounts } from './accounts/service.js';
import { openBackends } from './backends.js';
import { startCluster, type ClusterNode } from './cluster/cluster-node.js';
import { clusterSettings } from './cluster/cluster-config.js';
import { newId } from './core/secrets.js';
import type { TunnelRouter } from './relay/router.js';
import type { HubConfig } from './config/hub-options.js';
import { ADMIN_SOCKET_NAME, startAdminSocket } from './admin/admin-socket.js';
import { applyDeviceUpdate, followDeviceUpdates } from './admin/device-updates.js';
import { HubError, PortInUseError } from './errors.js';
import { registerApi } from './http/api.js';
import { backendUnavailable } from './core/backend-errors.js';
import { Authenticator } from './core/auth/authenticator.js';
import { EventsService } from './http/events-service.js';
import { LanTrustSync } from './relay/edge/lan-trust.js';
import { LocalTunnelRouter } from './relay/edge/local-tunnel-router.js';
import { createMetrics } from './core/metrics.js';
import { sendError } from './http/reply.js';
import { TunnelServer } from './relay/edge/tunnel-server.js';
import { createRelay, parseRelayUrl } from './relay/forward.js';
import { wsDuplex } from './relay/protocol/ws-duplex.js';
import { RelayCache } from './relay/relay-cache.js';
import { createMqtt, type MqttService } from './mqtt/hub/service.js';
import { PasswordHasher } from './core/password-hasher.js';
import { LogLimiter } from './core/log-limiter.js';
import { StreamSlots } from './http/stream-slots.js';
import { registerFactoryApi } from './factory/factory-api.js';
import { registerOAuth } from './oauth/http.js';
import { OAuthService } from './oauth/oauth-service.js';
import type { Store } from './store/store.js';

/** With a shared (Redis) cache: how long a target whose answer was not storable skips the cache lookup. */
const UNSTORABLE_PASS_MS = 5000;

export interface Hub {
  readonly config: HubConfig;
  readonly store: Store;
  readonly tunnels: TunnelServer;
  /** Users, tokens and device ownership. */
  readonly auth: Authenticator;
  readonly log: Logger;
  /** The MQTT broker and its listeners; undefined with --no-mqtt. */
  readonly mqtt: MqttService | undefined;
  /** Bound ports (useful when configured as 0). */
  readonly httpPort: number;
  readonly tunnelPort: number;
  /** Base URL of the HTTP API on this machine. */
  readonly httpUrl: string;
  readonly tunnelUrl: string;
  /** This node's role and id (docs/scale-out.md); `internalUrl` is how other nodes reach its tunnels. */
  readonly role: 'all' | 'front' | 'edge';
  readonly nodeId: string;
  readonly internalUrl: string | undefined;
  /** Graceful stop: refuse new work, GOAWAY to agents, drain in flight up to shutdownGraceMs. */
  close(): Promise<void>;
}

function listen(server: NetServer | HttpServer, port: number, host: string, what: string, flag: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(err.code === 'EADDRINUSE' ? new PortInUseError(`${what} port ${port} on ${host} is already in use; choose another with ${flag} (0 picks a free one)`) : err);
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** The routes an edge answers itself; every other client route belongs to a front. */
const EDGE_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

/** Wires the parts of a hub from a validated config, on the backends src/backends.ts picks from it. */
export async function createHub(config: HubConfig, options: { log?: Logger } = {}): Promise<Hub> {
  const log = options.log ?? pino({ level: config.logLevel, base: { role: 'hub' } });
  const tls = config.tlsCert && config.tlsKey ? { cert: readFileSync(config.tlsCert), key: readFileSync(config.tlsKey) } : undefined;
  if ((config.tunnelTls || config.httpTls) && !tls) throw new Error('--tunnel-tls and --http-tls need --tls-cert and --tls-key');
  const nodeId = config.nodeId ?? newId('n_');
  const cluster = clusterSettings({ ...config, nodeId });
  if (cluster?.storeWarning) log.warn(cluster.storeWarning);
  const holdsTunnels = cluster?.holdsTunnels ?? true;
  const servesClients = cluster?.servesClients ?? true;
  // MQTT across nodes is issue 14: until then a front runs no broker, and its devices' edges do.
  if (!holdsTunnels) config = { ...config, mqtt: false };

  // On PostgreSQL nothing else creates --data, which still holds this node's admin socket and outbox.
  mkdirSync(config.data, { recursive: true, mode: 0o700 });
  const backends = await openBackends({ ...config, nodeId }, {
    onBusError: (err) => log.error({ err }, 'bus subscriber failed'),
    onBackendError: (err, backend) => log.warn({ err, backend }, 'shared state could not be written; retrying (at most one line per 10 s)'),
  });
  const { store, bus, presence } = backends;
  // This process's tunnels; given them once they exist (LAN trust, which they call, needs the router first).
  const local = new LocalTunnelRouter(presence);
  let clusterNode: ClusterNode | undefined;
  // The only way to a device: the local tunnels, or, scaled out, wherever Presence says the device is.
  let router: TunnelRouter = local;
  const metrics = createMetrics();
  // Tokens are signed so agents can check them on the LAN with no hub (docs/api.md "LAN access").
  const signer = await backends.openTokenSigner(config.data);
  const hasher = new PasswordHasher({ maxConcurrent: config.maxConcurrentPasswordHashes, maxQueued: config.maxQueuedPasswordHashes, maxWaitMs: config.passwordHashMaxWaitMs });
  const auth = new Authenticator(store, { tokenTtlMs: config.tokenTtlMs, rememberTokenTtlMs: config.rememberTokenTtlMs, signer, hasher }, bus);
  const cache = backends.responseCache && new RelayCache(backends.responseCache, { maxEntryBytes: config.cacheMaxEntryBytes, passMs: config.redis === undefined ? 0 : UNSTORABLE_PASS_MS });
  const lan = new LanTrustSync({
    store, bus, log, router, keys: [signer.publicKey],
    invalidate: (deviceId, target) => (target === '*' ? cache?.invalidateDevice(deviceId) : cache?.invalidateUri(deviceId, target)),
  });
  let shuttingDown = false;
  let ready = false;
  // Refused tunnel HELLOs and MQTT CONNECTs: one log line per kind and address per interval (src/core/log-limiter.ts).
  const refusals = new LogLimiter(log, { intervalMs: config.logRefusalsIntervalMs, maxKeys: 10_000 });
  // SSE streams of every route (/v1/events, /v1/devices/{id}/events, /v1/topics/events) share these slots.
  const sseSlots = new StreamSlots({ max: config.maxSseClients, maxPerUser: config.maxSseClientsPerUser });

  const tunnels = new TunnelServer(
    {
      maxFrameBytes: config.tunnelMaxFrameBytes,
      windowBytes: config.tunnelWindowBytes,
      pingIntervalMs: config.tunnelPingIntervalMs,
      idleTimeoutMs: config.tunnelIdleTimeoutMs,
      handshakeTimeoutMs: config.tunnelHandshakeTimeoutMs,
      maxTunnels: config.maxTunnels,
      maxHandshakes: config.maxTunnelHandshakes,
      maxPerAddress: config.maxTunnelsPerAddress,
      maxInflightPerDevice: config.maxInflightPerDevice,
      maxQueuedPerDevice: config.maxQueuedPerDevice,
    },
    {
      store, bus, presence, log, metrics, lan, refusals,
      onDeviceConnected: (id, info) => {
        auth.forgetDevice(id);
        cache?.invalidateDevice(id);
        accounts.deviceConnected(id, info);
      },
    },
  );
  local.attach(tunnels);
  if (cluster) {
    if (backends.nodes === undefined) throw new Error(`--role ${cluster.role} needs backends that share the node directory (--redis)`);
    clusterNode = startCluster(cluster, config, { local, tunnels, presence, nodes: backends.nodes, bus, log, refusals });
    router = clusterNode.router;
  }
  // Links in mails point at --public-url, else at this hub's HTTP URL once its port is bound.
  let linkBase = config.publicUrl ?? '';
  const accounts = createAccounts({
    config, store, auth, router, presence, metrics, log, publicUrl: () => linkBase, attemptLimiter: backends.attemptLimiter,
    // An accepted claim (issue 12): the new owner is read again wherever an owner is cached.
    deviceOwnerChanged: (id) => {
      auth.forgetDevice(id);
      cache?.invalidateDevice(id);
      mqtt?.deviceOwnerChanged(id);
    },
  });
  const events = new EventsService({ bus, auth, presence, metrics, history: await backends.eventHistory({ eventHistory: config.eventHistory }), heartbeatMs: config.sseHeartbeatMs, slots: sseSlots });
  const relay = createRelay(
    { maxRequestBodyBytes: config.maxRequestBodyBytes, requestTimeoutMs: config.requestTimeoutMs },
    { router, auth, cache, metrics, log, isShuttingDown: () => shuttingDown, deviceAuth: accounts.deviceAuth },
  );

  let httpServer!: HttpServer;
  const app = Fastify({
    logger: false,
    bodyLimit: 64 * 1024,
    serverFactory: (fastifyHandler) => {
      const route = (req: IncomingMessage, res: ServerResponse) => {
        // The relay and SSE streams are the hot and long-lived paths: they bypass the framework.
        const url = req.url ?? '/';
        if (!servesClients && !EDGE_ROUTES.has(url.split('?')[0]!)) {
          sendError(res, 'CR_ERR_WRONG_NODE_ROLE', 'this node is an edge (--role edge): it takes agent tunnels; clients use a front');
          return;
        }
        const r = parseRelayUrl(url);
        if (r) {
          relay(req, res, r.deviceId, r.target).catch((err: unknown) => {
            // A backend away (Redis, the database) is the client's 503 with its code, not an internal error.
            const down = backendUnavailable(err);
            if (down) return sendError(res, down.code, down.message);
            if (err instanceof HubError) return sendError(res, err.code, err.message);
            log.error({ err }, 'relay failed');
            sendError(res, 'CR_ERR_INTERNAL');
          });
          return;
        }
        if (req.method === 'GET' && events.handles(url)) {
          events.handle(req, res).catch((err: unknown) => {
            const down = backendUnavailable(err);
            if (down) return sendError(res, down.code, down.message);
            if (err instanceof HubError) return sendError(res, err.code, err.message);
            log.error({ err }, 'event stream failed');
            sendError(res, 'CR_ERR_INTERNAL');
          });
          return;
        }
        fastifyHandler(req, res);
      };
      httpServer = config.httpTls && tls ? createHttpsServer({ ...tls }, route) : createHttpServer(route);
      return httpServer;
    },
  });
  registerApi(app, { store, auth, presence, metrics, isReady: () => ready && !shuttingDown, backendHealth: () => backends.health(), attempts: accounts.attempts });
  accounts.register(app);
  // Factory provisioning (src/factory/): POST /v1/factory/devices, authenticated by factory keys.
  const limiter = backends.attemptLimiter({ name: 'factory-address', maxFailures: config.factoryMaxFailures, windowMs: config.factoryFailureWindowMs, maxKeys: 10_000 });
  registerFactoryApi(app, { store, log, metrics, limiter });
  // OAuth 2.0 provider for third-party services (src/oauth/); the issuer is known once the port is bound.
  let issuer = config.publicUrl?.replace(/\/+$/, '') ?? '';
  const oauth = new OAuthService(
    { store, auth, log, issuer: () => issuer },
    { codeTtlMs: config.oauthCodeTtlMs, accessTokenTtlMs: config.oauthAccessTokenTtlMs, refreshTokenTtlMs: config.oauthRefreshTokenTtlMs },
  );
  registerOAuth(app, { store, auth, service: oauth, log, issuer: () => issuer, secureCookies: config.httpTls || issuer.startsWith('https:'), attempts: accounts.attempts });
  // MQTT broker (src/mqtt/hub/): its listeners, /mqtt upgrades, /v1/topics routes, metrics; one block.
  const mqtt = await createMqtt({ config, store, openPersistence: backends.openMqttPersistence, bus, cluster: { redis: backends.redis, nodes: backends.nodes }, auth, metrics, log, app, tls, refusals, sseSlots });
  // `cloudrest devices revoke --redis` with no hub beside it: each node closes what it holds of the device.
  const unfollowDeviceUpdates = followDeviceUpdates(bus, { store, auth, router: local, mqtt, log, forgetCached: (id) => cache?.invalidateDevice(id) });
  await app.ready();
  httpServer.keepAliveTimeout = 65_000;
  httpServer.headersTimeout = 30_000;
  httpServer.requestTimeout = 0; // relayed bodies and SSE may be long; the relay has its own timeouts
  httpServer.on('connection', (s: Socket) => {
    s.setNoDelay(true);
    metrics.httpConnections.inc();
    s.once('close', () => metrics.httpConnections.dec());
  });

  // The agent tunnel over WebSocket on the HTTP port, for networks that pass only HTTP(S).
  const wss = new WebSocketServer({ noServer: true, maxPayload: config.tunnelMaxFrameBytes + 64 * 1024, perMessageDeflate: false });
  httpServer.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    if (!shuttingDown && mqtt?.handleUpgrade(req, socket, head)) return;
    const path = (req.url ?? '').split('?')[0];
    if (path === '/v1/agent' && !holdsTunnels) {
      const body = JSON.stringify({ error: { code: 'CR_ERR_WRONG_NODE_ROLE', message: 'this node is a front (--role front): agents connect to an edge' } });
      socket.end(`HTTP/1.1 421 Misdirected Request\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      return;
    }
    if (path !== '/v1/agent' || shuttingDown) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      tunnels.accept(wsDuplex(ws), req.socket.remoteAddress ?? '', config.httpTls ? 'wss' : 'ws');
    });
  });

  const onTunnelSocket = (s: Socket) => {
    s.setNoDelay(true);
    s.setKeepAlive(true, 30_000);
    tunnels.accept(s, s.remoteAddress ?? '', config.tunnelTls ? 'tls' : 'tcp');
  };
  const tunnelServer: NetServer = config.tunnelTls && tls ? createTlsServer({ ...tls }, onTunnelSocket) : createNetServer(onTunnelSocket);
  tunnelServer.on('tlsClientError', (err: Error) => log.debug({ err: err.message }, 'tunnel TLS handshake failed'));

  let httpPort: number;
  let tunnelPort = 0;
  let internalUrl: string | undefined;
  let admin: Awaited<ReturnType<typeof startAdminSocket>>;
  try {
    httpPort = await listen(httpServer, config.httpPort, config.host, 'HTTP', '--http-port');
    // A front holds no tunnels: no tunnel port at all, so a misconfigured agent fails at once.
    if (holdsTunnels) tunnelPort = await listen(tunnelServer, config.tunnelPort, config.host, 'Tunnel', '--tunnel-port');
    internalUrl = await clusterNode?.listen((server, port) => listen(server, port, config.host, 'Internal', '--internal-port'));
    await mqtt?.listen();
    // The local admin channel (src/admin/): `cloudrest devices revoke` tells this hub to act at once.
    admin = config.adminSocket
      ? await startAdminSocket(join(config.data, ADMIN_SOCKET_NAME), { deviceUpdated: (id) => applyDeviceUpdate({ store, auth, router, mqtt, log }, id) }, log)
      : undefined;
  } catch (err) {
    httpServer.close();
    tunnelServer.close();
    clusterNode?.close();
    unfollowDeviceUpdates();
    await mqtt?.close();
    await accounts.close();
    await backends.close();
    throw err;
  }
  ready = true;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  const httpUrl = `${config.httpTls ? 'https' : 'http'}://${shownHost}:${httpPort}`;
  issuer ||= httpUrl;
  oauth.start();
  const tunnelUrl = holdsTunnels ? `${config.tunnelTls ? 'tls' : 'tcp'}://${shownHost}:${tunnelPort}` : '';
  linkBase ||= httpUrl;
  const mqttPorts = mqtt ? { mqttPort: mqtt.mqttPort, mqttsPort: mqtt.mqttsPort, mqttWsUrl: `${httpUrl.replace(/^http/, 'ws')}/mqtt` } : {};
  const role = cluster?.role ?? 'all';
  const tunnelUrls = holdsTunnels ? { tunnelPort, tunnelUrl, agentWsUrl: `${httpUrl.replace(/^http/, 'ws')}/v1/agent` } : {};
  log.info({ role, nodeId, internalUrl, httpPort, httpUrl, ...tunnelUrls, ...mqttPorts, data: config.data, adminSocket: admin?.path }, 'hub listening');

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      shuttingDown = true;
      log.info('hub shutting down');
      await admin?.close();
      const httpClosed = new Promise<void>((r) => httpServer.close(() => r()));
      tunnelServer.close();
      httpServer.closeIdleConnections();
      events.closeAll();
      oauth.close();
      await tunnels.shutdown(config.shutdownGraceMs);
      clusterNode?.close(); // after the drain: requests from other nodes to our devices were part of it
      lan.close();
      unfollowDeviceUpdates();
      await mqtt?.close(); // after the tunnels: their last offline statuses are published and stored
      httpServer.closeAllConnections();
      for (const ws of wss.clients) ws.terminate();
      await httpClosed;
      await accounts.close();
      auth.close();
      await backends.close(); // the bus, then the store
      refusals.close();
      log.info('hub stopped');
    })();
    return closing;
  };

  return { config, store, tunnels, auth, log, mqtt, httpPort, tunnelPort, httpUrl, tunnelUrl, role, nodeId, internalUrl, close };
}
