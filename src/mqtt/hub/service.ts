/**
 * The MQTT broker inside the hub: the hub's credentials and ACLs as its hooks, the store backend's
 * MqttPersistence (src/backends.ts picks it), listeners on TCP, TLS and WebSocket (`/mqtt` on the HTTP port), the REST bridge
 * (device events on MQTT topics, POST /v1/topics, GET /v1/topics/events) and Prometheus metrics.
 * hub.ts creates it before the HTTP API is ready, calls listen() with its other listeners, and close()
 * after the tunnels have drained (their last "offline" statuses are published and stored).
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { ConfigError } from '../../config/load.js';
import type { HubConfig } from '../../config/hub-options.js';
import type { SharedRedis } from '../../backends.js';
import type { Bus } from '../../core/bus.js';
import type { LogLimiter } from '../../core/log-limiter.js';
import type { StreamSlots } from '../../http/stream-slots.js';
import type { Authenticator } from '../../core/auth/authenticator.js';
import type { HubMetrics } from '../../core/metrics.js';
import type { Store } from '../../store/store.js';
import { Broker } from '../broker.js';
import type { SubscribeDecision } from '../hooks.js';
import { RC } from '../reason-codes.js';
import { startSysTopics } from '../sys-topics.js';
import { VERSION } from '../../version.js';
import type { MqttPersistence } from '../persistence.js';
import { Acl, parseAcl } from './acl.js';
import { MqttAddressGate } from './address-gate.js';
import { MqttIdentities } from './authenticate.js';
import { ClusterRoutes } from '../cluster/routes-redis.js';
import { registerClusterMetrics } from '../cluster/routes-metrics.js';
import { bridgeDeviceEvents, correctStaleStatus } from './bridge.js';
import { listenMqtt, mqttTcpServer, mqttTlsServer } from './listeners.js';
import { registerMqttMetrics } from './metrics.js';
import { DeviceOwnership } from './ownership.js';
import { ClusterSessions } from '../cluster/sessions.js';
import { MqttFence } from '../cluster/fence.js';
import { RedisLiveness } from '../../cluster/redis-liveness.js';
import type { Backends } from '../../backends.js';
import type { NodeDirectory } from '../../core/presence.js';
import { TopicsApi } from './topics-api.js';
import { MQTT_WS_PATH, MqttWebSockets } from './ws-upgrade.js';

export const DEFAULT_MQTT_PORT = 1883;
export const DEFAULT_MQTTS_PORT = 8883;

export interface MqttDeps {
  config: HubConfig;
  store: Store;
  /** Opens where sessions, queues and retained messages go (the store backend's, src/backends.ts); called once. */
  openPersistence(): Promise<MqttPersistence>;
  /** Set with `--redis`: the broker joins the cluster's routes (src/mqtt/cluster/). */
  redis?: SharedRedis | undefined;
  bus: Bus;
  /** Redis and the node directory when scaled out (src/backends.ts); with a PostgreSQL store, sessions span the nodes. */
  cluster?: { redis: Backends['redis']; nodes: NodeDirectory | undefined } | undefined;
  auth: Authenticator;
  metrics: HubMetrics;
  log: Logger;
  /** The HTTP API, to add /v1/topics to; must not be ready yet. */
  app: FastifyInstance;
  tls: { cert: Buffer; key: Buffer } | undefined;
  /** Rate limit for the log lines of refused CONNECTs (shared with the tunnels). */
  refusals: LogLimiter;
  /** SSE stream slots, shared with /v1/events (GET /v1/topics/events takes one). */
  sseSlots: StreamSlots;
}

export interface MqttService {
  readonly broker: Broker;
  /** Bound ports after listen(); undefined when that listener is off (not configured, or default port taken). */
  readonly mqttPort: number | undefined;
  readonly mqttsPort: number | undefined;
  /** What the banner shows: URLs that listen, and why a listener is off. */
  describe(shownHost: string, httpUrl: string): string[];
  listen(): Promise<void>;
  /** Takes an HTTP upgrade to `/mqtt`; false for any other path. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean;
  /** Disconnects the device's MQTT clients (DISCONNECT 0x98 Administrative action); returns how many. */
  disconnectDevice(deviceId: string, reason: string): number;
  /** The device has a new owner (an accepted claim): the ACL reads it again. Never throws. */
  deviceOwnerChanged(deviceId: string): void;
  close(): Promise<void>;
}

/** The broker, configured from the hub's config; undefined with --no-mqtt. */
export async function createMqtt(d: MqttDeps): Promise<MqttService | undefined> {
  const { config, log } = d;
  if (!config.mqtt) return undefined;
  if (!d.tls && (config.mqttsPort !== undefined || config.tlsCa !== undefined)) throw new ConfigError('--mqtts-port and --tls-ca need --tls-cert and --tls-key');
  const rules = config.acl === undefined ? [] : parseAcl(readAcl(config.acl), config.acl);
  const ownership = new DeviceOwnership(d.store);
  await ownership.load();
  const acl = new Acl(rules, (user, deviceId) => ownership.owns(user.email, deviceId));
  const identities = new MqttIdentities({ store: d.store, auth: d.auth, ownership, log, refusals: d.refusals });
  const allowed = (principal: string, action: 'publish' | 'subscribe', name: string, clientId: string): boolean => {
    const id = identities.identity(principal);
    return id !== undefined && acl.allows(id, action, name, clientId);
  };
  // A filter only some of whose topics the client may read is granted, and each message checked (docs/mqtt.md).
  const subscription = (principal: string, filter: string, clientId: string): SubscribeDecision => {
    const id = identities.identity(principal);
    const how = id === undefined ? 'none' : acl.subscription(id, filter, clientId);
    return how === 'all' ? true : how === 'some' ? 'per-message' : false;
  };
  const persistence = await d.openPersistence();
  const broker = new Broker(
    {
      allowAnonymous: config.mqttAllowAnonymous,
      maxPacketBytes: config.mqttMaxPacketSize,
      keepaliveMaxS: config.mqttMaxKeepalive,
      receiveMaximum: config.mqttReceiveMaximum,
      maxInflightPerClient: config.mqttMaxInflight,
      maxQueuedPerClient: config.mqttMaxQueued,
      dropPolicy: config.mqttDropPolicy as 'drop-oldest' | 'drop-new',
      maxConnections: config.mqttMaxConnections,
      maxSessionExpiryS: config.mqttMaxSessionExpiryS,
      maxSessionsPerOwner: config.mqttMaxSessionsPerOwner,
      maxQueuedBytesPerOwner: config.mqttMaxQueuedBytesPerOwner,
      maxSubscriptionsPerClient: config.mqttMaxSubscriptionsPerClient,
      maxTopicLevels: config.mqttMaxTopicLevels,
      maxTopicBytes: config.mqttMaxTopicBytes,
      maxRetainedPerOwner: config.mqttMaxRetainedPerOwner,
      maxRetainedBytesPerOwner: config.mqttMaxRetainedBytesPerOwner,
      maxRetained: config.mqttMaxRetained,
      maxRetainedBytes: config.mqttMaxRetainedBytes,
      retainedInMemoryMaxBytes: config.mqttRetainedInMemoryMaxBytes,
      persistence,
    },
    {
      authenticate: (req) => identities.authenticate(req),
      authorizePublish: (principal, topic, clientId) => allowed(principal, 'publish', topic, clientId),
      authorizeSubscribe: subscription,
      authorizeReceive: (principal, topic, clientId) => allowed(principal, 'subscribe', topic, clientId),
      onError: (err, context) => log.error({ err }, `mqtt: ${context}`),
      onWarning: (message, details) => log.warn(details, `mqtt: ${message}`),
    },
  );
  await broker.ready;
  const joined = await joinSessionCluster(d, broker);
  const sessions = joined?.sessions;
  let cluster: ClusterRoutes | undefined;
  if (d.cluster?.redis !== undefined) {
    const r = d.cluster.redis;
    cluster = new ClusterRoutes({
      redis: r.connection, keyPrefix: r.keyPrefix, nodeId: r.nodeId, nodeTtlMs: r.nodeTtlMs, broker,
      confirmTimeoutMs: config.mqttForwardTimeoutMs,
      // With the session cluster a dead node's routes wait for the survivor that takes its sessions.
      holdDeadRoutes: sessions !== undefined,
      fenced: () => joined?.fence.fenced === true,
      onWarning: (message, details) => log.warn(details, `mqtt cluster: ${message}`),
    });
    broker.attachCluster(cluster);
    if (sessions !== undefined) sessions.onNodeTakenOver = (nodeId) => cluster?.nodeTakenOver(nodeId);
    await cluster.start();
  }
  // Who owns a device decides what its owner's subscriptions receive: they are asked about again.
  ownership.onChange(() => broker.authorizationChanged());
  // In a cluster another node may hold the device's tunnel: its status is that node's to say.
  if (cluster === undefined) await correctStaleStatus(broker, log);
  const sys = config.mqttSysIntervalS > 0 ? startSysTopics(broker, { intervalMs: config.mqttSysIntervalS * 1000, version: VERSION, cluster: cluster === undefined ? undefined : () => cluster.totals }) : undefined;
  const unbridge = bridgeDeviceEvents(d.bus, broker, ownership, log);
  // A revoked token ends the connections that logged in with it (OAuth tokens cannot connect: no match to run).
  const unwatchRevocations = d.auth.onRevoked((ended) => {
    if (!('tokenHashes' in ended)) return;
    let n = 0;
    for (const h of ended.tokenHashes) n += broker.disconnectCredential(h, RC.ADMINISTRATIVE_ACTION, 'access token revoked');
    if (n > 0) log.info({ connections: n }, 'mqtt connections closed: their access token was revoked');
  });
  const topics = new TopicsApi({
    broker, acl, auth: d.auth, ownership, log, metrics: d.metrics,
    maxBodyBytes: config.mqttMaxPacketSize,
    heartbeatMs: config.sseHeartbeatMs,
    slots: d.sseSlots,
    maxBufferedBytes: 1024 * 1024,
  });
  topics.register(d.app);
  const gate = new MqttAddressGate(config.mqttMaxConnectionsPerAddress, d.refusals);
  registerMqttMetrics(d.metrics.registry, broker, gate.counts);
  if (cluster !== undefined) registerClusterMetrics(d.metrics.registry, cluster);
  const websockets = new MqttWebSockets(broker, config.httpTls, config.mqttMaxPacketSize, gate);
  log.info({ aclRules: acl.size, allowAnonymous: config.mqttAllowAnonymous }, 'mqtt broker ready');

  const tcp = mqttTcpServer(broker, gate);
  const tlsServer: NetServer | undefined = d.tls ? mqttTlsServer(broker, { ...d.tls, ca: config.tlsCa === undefined ? undefined : readFileSync(config.tlsCa) }, gate, log) : undefined;
  let mqttPort: number | undefined;
  let mqttsPort: number | undefined;
  const off: string[] = [];
  let closing: Promise<void> | undefined;

  return {
    broker,
    get mqttPort() {
      return mqttPort;
    },
    get mqttsPort() {
      return mqttsPort;
    },
    async listen() {
      const host = config.host;
      mqttPort = await listenMqtt(tcp, { what: 'MQTT', flag: '--mqtt-port', port: config.mqttPort ?? DEFAULT_MQTT_PORT, explicit: config.mqttPort !== undefined, host }, log);
      if (mqttPort === undefined) off.push(`MQTT over TCP off: port ${DEFAULT_MQTT_PORT} is in use by another process (set --mqtt-port)`);
      if (tlsServer) {
        mqttsPort = await listenMqtt(tlsServer, { what: 'MQTTS', flag: '--mqtts-port', port: config.mqttsPort ?? DEFAULT_MQTTS_PORT, explicit: config.mqttsPort !== undefined, host }, log);
        if (mqttsPort === undefined) off.push(`MQTT over TLS off: port ${DEFAULT_MQTTS_PORT} is in use by another process (set --mqtts-port)`);
      }
    },
    describe(shownHost, httpUrl) {
      const urls = [`${httpUrl.replace(/^http/, 'ws')}${MQTT_WS_PATH}`];
      if (mqttPort !== undefined) urls.unshift(`mqtt://${shownHost}:${mqttPort}`);
      if (mqttsPort !== undefined) urls.splice(1, 0, `mqtts://${shownHost}:${mqttsPort}`);
      return [urls.join('  '), ...off];
    },
    handleUpgrade: (req, socket, head) => websockets.handleUpgrade(req, socket, head),
    disconnectDevice: (deviceId, reason) => broker.disconnectPrincipal(`device:${deviceId}`, RC.ADMINISTRATIVE_ACTION, reason),
    deviceOwnerChanged: (deviceId) => {
      ownership.refreshDevice(deviceId).catch((err: unknown) => log.error({ err, deviceId }, 'mqtt: reading device owner failed'));
    },
    close() {
      closing ??= (async () => {
        tcp.close();
        tlsServer?.close();
        unbridge();
        unwatchRevocations();
        sys?.stop();
        topics.closeAll();
        joined?.fence.stop();
        await sessions?.close();
        await cluster?.close();
        await broker.close();
        websockets.terminateAll();
        await persistence.close();
      })();
      return closing;
    },
  };
}

/**
 * With --redis and --store postgres://, a client id's session is held by one node of the cluster at a
 * time, and a dead node's sessions and wills are taken over (src/mqtt/cluster/sessions.ts).
 */
async function joinSessionCluster(d: MqttDeps, broker: Broker): Promise<{ sessions: ClusterSessions; fence: MqttFence } | undefined> {
  const redis = d.cluster?.redis;
  const nodes = d.cluster?.nodes;
  if (redis === undefined || nodes === undefined || !d.config.store.startsWith('postgres')) return undefined;
  const sessions = new ClusterSessions({
    redis: redis.connection,
    keyPrefix: redis.keyPrefix,
    nodeId: redis.nodeId,
    nodeTtlMs: redis.nodeTtlMs,
    nodes,
    bus: d.bus,
    takeoverTimeoutMs: d.config.mqttTakeoverTimeoutMs,
    onError: (err, context) => d.log.error({ err }, context),
    onInfo: (message, details) => d.log.info(details, message),
  });
  const host = broker.useSessionCluster(sessions);
  await sessions.start(host);
  // A node cut off from Redis ends its clients before the others count it dead (src/mqtt/cluster/fence.ts).
  const liveness = new RedisLiveness(redis.connection, Math.max(100, Math.min(1000, Math.floor(redis.nodeTtlMs / 10))));
  const fence = new MqttFence({
    liveness, nodeTtlMs: redis.nodeTtlMs, host, sessions,
    onWarning: (message, details) => d.log.warn(details, message),
    onInfo: (message, details) => d.log.info(details, message),
    onError: (err, context) => d.log.error({ err }, context),
  });
  fence.start();
  return { sessions, fence };
}

function readAcl(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--acl ${file}: ${(err as Error).message}`);
  }
}
