/**
 * Retained messages in PostgreSQL, seen by every node at once (issue 14): two hub processes on one
 * PostgreSQL store and one Redis, real MQTT clients. Nothing is copied into a node's memory (gauge
 * cloudrest_mqtt_retained_in_memory stays 0, across a restart too), a filter gets exactly its topics,
 * expired messages are not delivered, and one owner's quota holds across the nodes.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MqttClient } from 'mqtt';
import { startHub, tempDir, type HubProc } from './support/procs.js';
import { MqttClients } from './support/mqtt-peers.js';
import { metric } from './support/mqtt-cluster-world.js';
import { testPostgres, testRedis, type TestDatabase, type TestRedis } from './support/services.js';

const SECRET = 'cluster-secret-for-tests';
const PER_OWNER = 10;

/** The reason code of a v5 QoS 1 retained publish's PUBACK: 0 when accepted (0x10 "no matching subscribers" too), else the failure. */
async function pubackCode(client: MqttClient, topic: string, payload: string, o: { expiryS?: number } = {}): Promise<number> {
  try {
    const packet = await client.publishAsync(topic, payload, { qos: 1, retain: true, ...(o.expiryS === undefined ? {} : { properties: { messageExpiryInterval: o.expiryS } }) });
    const code = (packet as { reasonCode?: number } | undefined)?.reasonCode ?? 0;
    return code < 0x80 ? 0 : code;
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (typeof code !== 'number') throw err;
    return code;
  }
}

describe('MQTT retained messages across two hub nodes (PostgreSQL store)', () => {
  let db: TestDatabase;
  let redis: TestRedis;
  const dirs: Array<{ path: string; remove(): void }> = [];
  let acl: string;
  let a: HubProc;
  let b: HubProc;
  let bData: string;
  const clients = new MqttClients();
  const urlOf = (h: HubProc) => `mqtt://127.0.0.1:${h.mqttPort}`;
  let n = 0;

  const node = (id: string, data: string): Promise<HubProc> =>
    startHub(data, ['--store', db.url, '--redis', redis.url, '--redis-key-prefix', redis.keyPrefix, '--node-id', id, '--cluster-secret', SECRET, '--internal-port', '0',
      '--mqtt-allow-anonymous', '--acl', acl, '--node-ttl-ms', '3000', '--mqtt-max-retained-per-owner', String(PER_OWNER), '--no-admin-socket']);

  const dataDir = (id: string): string => {
    const d = tempDir(`cloudrest-retained-${id}-`);
    dirs.push(d);
    return d.path;
  };

  /** The retained messages a new subscription to `filter` on `hub` gets, up to and including `last` (a topic retained after the others in byte order). */
  const retainedOn = async (hub: HubProc, filter: string, last: string): Promise<Array<{ topic: string; payload: string }>> => {
    const c = await clients.connect(urlOf(hub), { protocolVersion: 5, clientId: `sub-${++n}` });
    const got: Array<{ topic: string; payload: string }> = [];
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no retained ${last} for ${filter}; got ${JSON.stringify(got)}`)), 10_000);
      c.on('message', (topic, payload, packet) => {
        assert.equal(packet.retain, true, `${topic} comes as a retained message`);
        got.push({ topic, payload: payload.toString() });
        if (topic === last) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await c.subscribeAsync(filter, { qos: 1 });
    await done;
    await c.endAsync();
    return got;
  };

  before(async () => {
    db = await testPostgres();
    redis = await testRedis();
    acl = join(dataDir('conf'), 'acl.txt');
    writeFileSync(acl, 'allow all anonymous #\n');
    a = await node('node-a', dataDir('a'));
    bData = dataDir('b');
    b = await node('node-b', bData);
  });

  after(async () => {
    await clients.closeAll();
    await Promise.all([a?.stop(), b?.stop()]);
    for (const d of dirs) d.remove();
    await redis?.drop();
    await db?.drop();
  });

  it('a message retained on A goes at once to a new subscriber on B; cleared on B, A no longer has it', async () => {
    const pubA = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'pub-a' });
    const pubB = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'pub-b' });
    assert.equal(await pubackCode(pubA, 'room/temp', '21.5'), 0);
    assert.equal(await pubackCode(pubA, 'room/zz-end', 'end'), 0);
    // No retry, no wait: B reads the database A wrote before its PUBACK.
    assert.deepEqual(await retainedOn(b, 'room/#', 'room/zz-end'), [{ topic: 'room/temp', payload: '21.5' }, { topic: 'room/zz-end', payload: 'end' }]);
    assert.equal(await pubackCode(pubB, 'room/temp', ''), 0);
    assert.deepEqual(await retainedOn(a, 'room/#', 'room/zz-end'), [{ topic: 'room/zz-end', payload: 'end' }]);
    assert.equal(await pubackCode(pubB, 'room/zz-end', ''), 0);
    assert.equal(await metric(a, 'cloudrest_mqtt_retained_in_memory'), 0);
    assert.equal(await metric(b, 'cloudrest_mqtt_retained_in_memory'), 0);
  });

  it('a wildcard subscription on B gets exactly the retained messages its filter matches, %, _ and all', async () => {
    const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'pub-w' });
    const topics = ['w', 'w/%', 'w/_', 'w/a', 'w/a/b', 'w/b/c', 'wx/a', 'w/~end'];
    for (const t of topics) assert.equal(await pubackCode(pub, t, `v-${t}`), 0);
    const names = async (filter: string, last: string) => (await retainedOn(b, filter, last)).map((m) => m.topic).sort();
    assert.deepEqual(await names('w/#', 'w/~end'), ['w', 'w/%', 'w/_', 'w/a', 'w/a/b', 'w/b/c', 'w/~end']);
    assert.deepEqual(await names('w/+', 'w/~end'), ['w/%', 'w/_', 'w/a', 'w/~end']);
    assert.deepEqual(await names('+/a', 'wx/a'), ['w/a', 'wx/a']);
    assert.deepEqual(await names('w/%', 'w/%'), ['w/%']);
    for (const t of topics) await pubackCode(pub, t, '');
  });

  it('does not deliver a retained message whose expiry interval has passed', async () => {
    const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'pub-e' });
    assert.equal(await pubackCode(pub, 'exp/gone', 'short', { expiryS: 1 }), 0);
    assert.equal(await pubackCode(pub, 'exp/kept', 'long', { expiryS: 3600 }), 0);
    await new Promise((r) => setTimeout(r, 1500));
    // 'exp/gone' sorts first: had it been delivered, it would have come before 'exp/kept'.
    assert.deepEqual(await retainedOn(b, 'exp/#', 'exp/kept'), [{ topic: 'exp/kept', payload: 'long' }]);
    await pubackCode(pub, 'exp/kept', '');
  });

  it('a node restarted loads no retained message into memory, yet serves them', async () => {
    const pub = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'pub-r' });
    assert.equal(await pubackCode(pub, 'boot/state', 'before restart'), 0);
    await b.stop();
    b = await node('node-b', bData);
    assert.equal(await metric(b, 'cloudrest_mqtt_retained_in_memory'), 0);
    assert.ok((await metric(b, 'cloudrest_mqtt_retained_messages')) >= 1, 'the count is read from the database');
    assert.deepEqual(await retainedOn(b, 'boot/#', 'boot/state'), [{ topic: 'boot/state', payload: 'before restart' }]);
    assert.equal(await metric(b, 'cloudrest_mqtt_retained_in_memory'), 0);
    await pubackCode(pub, 'boot/state', '');
  });

  it("one owner's retained quota holds across the nodes: 0x97 on both once full, room again once one is cleared", async () => {
    const pubA = await clients.connect(urlOf(a), { protocolVersion: 5, clientId: 'pub-qa' });
    const pubB = await clients.connect(urlOf(b), { protocolVersion: 5, clientId: 'pub-qb' });
    const codes: number[] = [];
    // Half through each node: neither node alone holds the owner's count.
    for (let i = 0; i < PER_OWNER; i++) codes.push(await pubackCode(i % 2 === 0 ? pubA : pubB, `quota/${i}`, 'x'));
    assert.deepEqual(codes, Array<number>(PER_OWNER).fill(0));
    assert.equal(await pubackCode(pubB, 'quota/over', 'x'), 0x97);
    assert.equal(await pubackCode(pubA, 'quota/over', 'x'), 0x97);
    assert.ok((await metric(a, 'cloudrest_mqtt_retained_refused_total')) >= 1);
    // Replacing one of its own is no new message; clearing one on A makes room on B.
    assert.equal(await pubackCode(pubB, 'quota/0', 'y'), 0);
    assert.equal(await pubackCode(pubA, 'quota/1', ''), 0);
    assert.equal(await pubackCode(pubB, 'quota/over', 'x'), 0);
    const got = await retainedOn(b, 'quota/#', 'quota/over');
    assert.equal(got.length, PER_OWNER);
    assert.ok(!got.some((m) => m.topic === 'quota/1'));
  });
});
