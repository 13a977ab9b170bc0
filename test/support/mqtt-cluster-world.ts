/**
 * Hub nodes of one MQTT cluster for an e2e suite: one test PostgreSQL (--store) and one test Redis
 * (--redis, the run's own key prefix), each node with its own --data, anonymous clients allowed by an
 * ACL file, a short --node-ttl-ms so a killed node is counted dead quickly. `mqttClusterWorld()` in a
 * describe() registers the before/after hooks that find the services and remove everything.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { connect as mqttConnect, type IClientOptions, type MqttClient } from 'mqtt';
import { startHub, tempDir, type HubProc } from './procs.js';
import { testPostgres, testRedis, type TestDatabase, type TestRedis } from './services.js';

/** A gauge or counter of a node's /metrics, its labelled series summed; NaN when it is not there. */
export async function metric(hub: HubProc, name: string): Promise<number> {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  const values = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?)$`, 'gm'))].map((m) => Number(m[1]));
  return values.length === 0 ? NaN : values.reduce((a, b) => a + b, 0);
}

export interface ClusterNodeOptions {
  nodeTtlMs: number;
  takeoverTimeoutMs: number;
  /** Redis as this node reaches it (a partition's forwarder); the test Redis by default. */
  redisUrl?: string;
  /** More `cloudrest hub` flags. */
  extra?: string[];
}

export interface MqttClusterWorld {
  readonly db: TestDatabase;
  readonly redis: TestRedis;
  readonly hubs: HubProc[];
  /** Clients ended (forcibly) after the suite. */
  readonly clients: MqttClient[];
  /** Also run after the suite, once the hubs stopped, before the services are dropped. */
  readonly cleanups: Array<() => unknown>;
  node(id: string, opts: ClusterNodeOptions): Promise<HubProc>;
  /** An mqtt.js client of `hub`, without reconnects; `onMessage` listens before CONNACK (a resumed session's messages may come in the same read). */
  client(hub: HubProc, opts: IClientOptions, onMessage?: (topic: string, payload: Buffer) => void): Promise<{ c: MqttClient; sessionPresent: boolean }>;
}

export function mqttClusterWorld(): MqttClusterWorld {
  let db: TestDatabase | undefined;
  let redis: TestRedis | undefined;
  const dirs: Array<ReturnType<typeof tempDir>> = [];
  const world: MqttClusterWorld = {
    get db() {
      if (db === undefined) throw new Error('the test PostgreSQL is found in before()');
      return db;
    },
    get redis() {
      if (redis === undefined) throw new Error('the test Redis is found in before()');
      return redis;
    },
    hubs: [],
    clients: [],
    cleanups: [],
    async node(id, opts) {
      const data = tempDir(`cloudrest-mqtt-${id}-`);
      dirs.push(data);
      const acl = join(data.path, 'acl.txt');
      writeFileSync(acl, 'allow all everyone #\n');
      const hub = await startHub(data.path, [
        '--store', world.db.url, '--redis', opts.redisUrl ?? world.redis.url, '--redis-key-prefix', world.redis.keyPrefix, '--node-id', id,
        '--cluster-secret', 'a-cluster-secret-of-the-test', '--internal-port', '0', '--no-admin-socket',
        '--mqtt-allow-anonymous', '--acl', acl, '--node-ttl-ms', String(opts.nodeTtlMs), '--mqtt-takeover-timeout-ms', String(opts.takeoverTimeoutMs),
        ...(opts.extra ?? []),
      ]);
      world.hubs.push(hub);
      return hub;
    },
    client: (hub, opts, onMessage) =>
      new Promise((resolve, reject) => {
        const c = mqttConnect(`mqtt://127.0.0.1:${hub.mqttPort}`, { reconnectPeriod: 0, connectTimeout: 10_000, ...opts });
        world.clients.push(c);
        if (onMessage !== undefined) c.on('message', onMessage);
        c.once('connect', (ack) => resolve({ c, sessionPresent: ack.sessionPresent }));
        c.once('error', reject);
      }),
  };
  before(async () => {
    db = await testPostgres();
    redis = await testRedis();
  });
  after(async () => {
    for (const c of world.clients) c.end(true);
    await Promise.all(world.hubs.map((h) => h.stop()));
    for (const fn of world.cleanups) await fn();
    for (const d of dirs) d.remove();
    await redis?.drop();
    await db?.drop();
  });
  return world;
}
