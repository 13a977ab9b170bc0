/**
 * A broker on PostgreSQL reads a subscription's retained messages from the database after SUBACK
 * (issue 14). A message that reaches the subscription live meanwhile is newer than what the read
 * returns for its topic: the older retained one must not follow it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PostgresMqttPersistence } from '../src/store/postgres/mqtt-persistence.js';
import { startBroker, type TestBroker } from './mqtt-harness.js';
import { testPostgres, type TestDatabase } from './support/services.js';

describe('MQTT retained messages read from PostgreSQL', () => {
  let db: TestDatabase;
  let persistence: PostgresMqttPersistence;
  let tb: TestBroker;

  before(async () => {
    db = await testPostgres();
    persistence = await PostgresMqttPersistence.open(db.url);
    tb = await startBroker({ allowAnonymous: true, persistence });
  });

  after(async () => {
    await tb?.stop();
    await persistence?.close();
    await db?.drop();
  });

  it('keeps none in memory and does not send an older retained message after a newer live one on its topic', async () => {
    const pub = await tb.client({ protocolVersion: 5, clientId: 'pub' });
    await pub.publishAsync('x/a', 'old', { qos: 1, retain: true });
    await pub.publishAsync('x/z', 'last', { qos: 1, retain: true });
    assert.equal(tb.broker.retainedInMemory, 0);
    // Holding the table makes the broker's read wait, so the live message surely comes first.
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table mqtt_retained in access exclusive mode');
      const sub = await tb.client({ protocolVersion: 5, clientId: 'sub' });
      const got: string[] = [];
      const lastSeen = new Promise<void>((resolve) => sub.on('message', (topic, payload, packet) => {
        got.push(`${topic}=${payload.toString()}${packet.retain ? ' (retained)' : ''}`);
        if (topic === 'x/z') resolve();
      }));
      await sub.subscribeAsync('x/#', { qos: 1 });
      await pub.publishAsync('x/a', 'new', { qos: 1 });
      while (got.length === 0) await new Promise((r) => setTimeout(r, 10));
      await holder.query('commit');
      await lastSeen;
      assert.deepEqual(got, ['x/a=new', 'x/z=last (retained)']);
    } finally {
      await holder.end();
    }
  });
});
