// One set of credentials, or one address, against a real hub process at its default limits: persistent
// sessions per owner and the bytes queued for them, subscriptions per client, MQTT connections per
// address (TCP, TLS and WebSocket together). Issue 12: 2,000 sessions of one device queued 200,051
// messages (279 MB) for 100 publishes; 65,535 subscriptions on one connection; 15,000 sockets from one address.
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { connectAsync, type IClientOptions } from 'mqtt';
import WebSocket from 'ws';
import { addDevice, startHub, tempDir, type HubProc } from './support/procs.js';
import { MqttClients, selfSignedCert, subackCodes } from './support/mqtt-peers.js';

/** The hub's defaults (src/config/hub-options.ts), which these tests hold it to. */
const SESSIONS_PER_OWNER = 100;
const QUEUED_BYTES_PER_OWNER = 16 * 1024 * 1024;
const SUBSCRIPTIONS_PER_CLIENT = 1000;
const CONNECTIONS_PER_ADDRESS = 1000;

/** A Prometheus sample of the hub's /metrics (0 when the hub has no such metric). */
async function metric(hub: HubProc, name: string): Promise<number> {
  const text = await (await fetch(`${hub.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1));
}

/** Bytes of the hub's SQLite database on disk, its write-ahead log included. */
function dbBytes(data: string): number {
  let n = 0;
  for (const f of ['cloudrest.db', 'cloudrest.db-wal']) {
    try {
      n += statSync(join(data, f)).size;
    } catch {
      // no WAL yet
    }
  }
  return n;
}

describe('MQTT limits per owner, per client and per address, at the hub defaults', () => {
  let data: { path: string; remove(): void };
  let hub: HubProc;
  let device: { id: string; secret: string };
  let url: string;
  let cert: string;
  const clients = new MqttClients();

  before(async () => {
    data = tempDir('cloudrest-mqtt-quotas-');
    const tls = selfSignedCert(data.path);
    cert = tls.cert;
    device = await addDevice(data.path, 'Many sessions');
    hub = await startHub(data.path, ['--tls-cert', tls.cert, '--tls-key', tls.key]);
    url = `mqtt://127.0.0.1:${hub.mqttPort}`;
  });
  after(async () => {
    await clients.closeAll();
    await hub?.stop();
    data?.remove();
  });

  const creds = (): IClientOptions => ({ username: device.id, password: device.secret, reconnectPeriod: 0, connectTimeout: 10_000 });

  /** Opens a session that outlives its connection, subscribes it at QoS 1 and disconnects; the CONNACK code. */
  async function persistentSession(clientId: string, version: 4 | 5, topic: string): Promise<number> {
    const v5 = version === 5;
    try {
      const c = await connectAsync(url, { ...creds(), clientId, clean: false, protocolVersion: version, ...(v5 ? { properties: { sessionExpiryInterval: 3600 } } : {}) });
      await c.subscribeAsync(topic, { qos: 1 });
      await c.endAsync();
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  }

  it("one device's credentials get 100 persistent sessions out of 200 client ids; the rest get CONNACK 0x97 (5.0) / 3 (3.1.1)", async (t) => {
    const topic = `devices/${device.id}/cmd/load`;
    const codes: Array<{ id: number; version: 4 | 5; code: number }> = [];
    // In batches, so that the first 100 client ids are the first 100 sessions.
    for (let start = 0; start < 200; start += 10) {
      const batch = Array.from({ length: 10 }, (_, k) => start + k);
      codes.push(...(await Promise.all(batch.map(async (id) => {
        const version = id % 2 === 0 ? 5 : 4;
        return { id, version: version as 4 | 5, code: await persistentSession(`sess-${id}`, version, topic) };
      }))));
    }
    const accepted = codes.filter((c) => c.code === 0);
    t.diagnostic(`sessions accepted: ${accepted.length} of 200`);
    assert.equal(accepted.length, SESSIONS_PER_OWNER, `sessions accepted: ${accepted.length}`);
    assert.deepEqual(accepted.map((c) => c.id), Array.from({ length: SESSIONS_PER_OWNER }, (_, i) => i));
    for (const c of codes.filter((x) => x.code !== 0)) assert.equal(c.code, c.version === 5 ? 0x97 : 3, `client id sess-${c.id}`);
    assert.equal(await metric(hub, 'cloudrest_mqtt_sessions_refused_total'), 100);

    // Resuming one of them is still allowed, over 5.0 and 3.1.1.
    for (const [clientId, version] of [['sess-0', 5], ['sess-1', 4]] as const) {
      const c = await clients.connectCollecting(url, { ...creds(), clientId, clean: false, protocolVersion: version, ...(version === 5 ? { properties: { sessionExpiryInterval: 3600 } } : {}) });
      assert.equal(c.sessionPresent, true, clientId);
      await c.client.endAsync();
    }
  });

  it('QoS 1 messages for those offline sessions stop queuing at 16 MiB for the device, and the database stays near that', async (t) => {
    const topic = `devices/${device.id}/cmd/load`;
    const before = dbBytes(data.path);
    const pub = await clients.connect(url, { ...creds(), clientId: 'publisher', protocolVersion: 5 });
    const payload = Buffer.alloc(1000, 'x');
    // 300 publishes to 100 offline sessions: 30 MB wanted.
    for (let i = 0; i < 300; i++) await pub.publishAsync(topic, payload, { qos: 1 });
    const queued = await metric(hub, 'cloudrest_mqtt_queued_messages');
    const dropped = await metric(hub, 'cloudrest_mqtt_messages_dropped_owner_quota_total');
    const grown = dbBytes(data.path) - before;
    const perMessage = payload.length + topic.length;
    t.diagnostic(`300 publishes: ${queued} messages queued, ${dropped} dropped for the owner's bytes, database +${(grown / 1e6).toFixed(1)} MB`);
    assert.ok(queued * perMessage <= QUEUED_BYTES_PER_OWNER, `${queued} messages queued`);
    assert.ok(queued * perMessage > QUEUED_BYTES_PER_OWNER - 100 * perMessage, `the queues are full: ${queued} messages queued`);
    assert.equal(dropped, 300 * SESSIONS_PER_OWNER - queued, 'every copy not queued is counted');
    assert.ok(grown < 2 * QUEUED_BYTES_PER_OWNER, `the database grew by ${grown} bytes`);
    // The sessions still deliver: one of them gets its newest messages.
    const back = await clients.connectCollecting(url, { ...creds(), clientId: 'sess-2', clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 } });
    for (const deadline = Date.now() + 10_000; back.messages.length === 0 && Date.now() < deadline;) await sleep(50);
    assert.ok(back.messages.length > 0);
    await back.client.endAsync();
  });

  it('one client gets 1,000 subscriptions; the next filter gets SUBACK 0x97 (5.0) / 0x80 (3.1.1), replacing one still works', async () => {
    const filters = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `devices/${device.id}/${prefix}/${i}`);
    const v5 = await clients.connect(url, { ...creds(), clientId: 'many-subs-5', protocolVersion: 5 });
    const codes = await subackCodes(v5, filters('a', SUBSCRIPTIONS_PER_CLIENT + 1));
    assert.equal(codes.filter((c) => c === 1).length, SUBSCRIPTIONS_PER_CLIENT);
    assert.equal(codes.at(-1), 0x97);
    assert.deepEqual(await subackCodes(v5, [`devices/${device.id}/a/7`, `devices/${device.id}/b/0`], 0), [0, 0x97]);
    const v4 = await clients.connect(url, { ...creds(), clientId: 'many-subs-4', protocolVersion: 4 });
    const codes4 = await subackCodes(v4, filters('c', SUBSCRIPTIONS_PER_CLIENT + 1));
    assert.equal(codes4.filter((c) => c === 1).length, SUBSCRIPTIONS_PER_CLIENT);
    assert.equal(codes4.at(-1), 0x80);
    await Promise.all([v5.endAsync(), v4.endAsync()]);
  });

  it('1,200 sockets from one address: 200 are closed at accept, TLS and WebSocket are refused too, and the log has a line, not 200', async (t) => {
    const opened: Socket[] = [];
    let closed = 0;
    try {
      for (let start = 0; start < 1200; start += 100) {
        await Promise.all(Array.from({ length: 100 }, () => new Promise<void>((resolve) => {
          const s = netConnect(hub.mqttPort!, '127.0.0.1');
          opened.push(s);
          s.on('error', () => undefined);
          s.once('close', () => closed++);
          s.once('connect', () => resolve());
          s.once('close', () => resolve());
        })));
      }
      // The hub closes a socket without a CONNECT after 10 s anyway: the ones past the cap go at once.
      for (const deadline = Date.now() + 5_000; closed < 200 && Date.now() < deadline;) await sleep(50);
      t.diagnostic(`${closed} of 1,200 sockets closed within 5 s`);
      assert.ok(closed >= 200 && closed <= 200 + 20, `${closed} of 1,200 closed at accept`);
      assert.ok(opened.length - closed <= CONNECTIONS_PER_ADDRESS);

      const tlsClosedBeforeHandshake = await new Promise<boolean>((resolve) => {
        const s = tlsConnect({ host: '127.0.0.1', port: hub.mqttsPort!, ca: readFileSync(cert) });
        s.on('error', () => undefined);
        s.once('secureConnect', () => {
          s.destroy();
          resolve(false);
        });
        s.once('close', () => resolve(true));
      });
      assert.equal(tlsClosedBeforeHandshake, true, 'MQTT over TLS counts against the same cap');
      const wsStatus = await new Promise<number>((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${hub.httpPort}/mqtt`, 'mqtt');
        ws.on('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          ws.terminate();
        });
        ws.on('open', () => {
          ws.terminate();
          resolve(101);
        });
        ws.on('error', () => resolve(-1));
      });
      assert.equal(wsStatus, 429, 'MQTT over WebSocket counts against the same cap');
      assert.ok(await metric(hub, 'cloudrest_mqtt_connections_refused_per_address_total') >= 202);
    } finally {
      for (const s of opened) s.destroy();
    }
    const lines = hub.lines.filter((l) => l.includes('too many from this address'));
    assert.ok(lines.length >= 1 && lines.length <= 2, `${lines.length} log lines`);
    // Once they are gone, the address connects again.
    let c;
    for (const deadline = Date.now() + 10_000; c === undefined && Date.now() < deadline;) {
      c = await connectAsync(url, { ...creds(), clientId: 'after', protocolVersion: 5 }).catch(() => undefined);
      if (c === undefined) await sleep(100);
    }
    assert.ok(c?.connected);
    await c.endAsync();
    assert.equal((await fetch(`${hub.url}/healthz`)).status, 200);
  });
});

describe('MQTT limits set by their flags, and kept across a restart', () => {
  let data: { path: string; remove(): void };
  let hub: HubProc;
  let device: { id: string; secret: string };
  const flags = ['--mqtt-max-sessions-per-owner', '5', '--mqtt-max-queued-bytes-per-owner', '65536', '--mqtt-max-subscriptions-per-client', '10', '--mqtt-max-connections-per-address', '20'];

  before(async () => {
    data = tempDir('cloudrest-mqtt-quota-flags-');
    device = await addDevice(data.path, 'Flags');
    hub = await startHub(data.path, flags);
  });
  after(async () => {
    await hub?.stop();
    data?.remove();
  });

  const session = async (clientId: string): Promise<number> => {
    try {
      const c = await connectAsync(`mqtt://127.0.0.1:${hub.mqttPort}`, { username: device.id, password: device.secret, clientId, clean: false, protocolVersion: 5, properties: { sessionExpiryInterval: 3600 }, reconnectPeriod: 0 });
      await c.subscribeAsync(`devices/${device.id}/q`, { qos: 1 });
      await c.endAsync();
      return 0;
    } catch (err) {
      return (err as { code?: number }).code ?? -1;
    }
  };

  it('--mqtt-max-sessions-per-owner 5: the 6th session is refused, also after a restart, while the 5 resume', async () => {
    const codes = [];
    for (let i = 0; i < 6; i++) codes.push(await session(`f-${i}`));
    assert.deepEqual(codes, [0, 0, 0, 0, 0, 0x97]);
    await hub.stop();
    hub = await startHub(data.path, flags);
    assert.equal(await session('f-new'), 0x97, 'sessions stored before the restart count');
    for (let i = 0; i < 5; i++) assert.equal(await session(`f-${i}`), 0, `f-${i} resumes`);
  });

  it('--mqtt-max-queued-bytes-per-owner 65536: 100 publishes to 5 offline sessions queue at most 64 KiB', async () => {
    const pub = await connectAsync(`mqtt://127.0.0.1:${hub.mqttPort}`, { username: device.id, password: device.secret, protocolVersion: 5, reconnectPeriod: 0 });
    const topic = `devices/${device.id}/q`;
    for (let i = 0; i < 100; i++) await pub.publishAsync(topic, Buffer.alloc(1000), { qos: 1 });
    await pub.endAsync();
    const queued = await metric(hub, 'cloudrest_mqtt_queued_messages');
    assert.ok(queued > 0 && queued * (1000 + topic.length) <= 65_536, `${queued} queued`);
    assert.equal(await metric(hub, 'cloudrest_mqtt_messages_dropped_owner_quota_total'), 500 - queued);
  });

  it('--mqtt-max-subscriptions-per-client 10 and --mqtt-max-connections-per-address 20', async () => {
    const c = await connectAsync(`mqtt://127.0.0.1:${hub.mqttPort}`, { username: device.id, password: device.secret, protocolVersion: 5, reconnectPeriod: 0 });
    const codes = await subackCodes(c, Array.from({ length: 11 }, (_, i) => `devices/${device.id}/s/${i}`));
    assert.deepEqual(codes, [...Array<number>(10).fill(1), 0x97]);
    // 19 more sockets fill the address's 20; the next one is closed at once.
    const sockets: Socket[] = [];
    try {
      for (let i = 0; i < 19; i++) {
        const s = netConnect(hub.mqttPort!, '127.0.0.1');
        s.on('error', () => undefined);
        sockets.push(s);
        await new Promise((resolve) => s.once('connect', resolve));
      }
      const extra = netConnect(hub.mqttPort!, '127.0.0.1');
      extra.on('error', () => undefined);
      sockets.push(extra);
      const closedAt = await new Promise<number>((resolve) => {
        const start = Date.now();
        extra.once('close', () => resolve(Date.now() - start));
      });
      assert.ok(closedAt < 5_000, `closed after ${closedAt} ms, before any CONNECT timeout`);
    } finally {
      for (const s of sockets) s.destroy();
      await c.endAsync();
    }
  });
});
