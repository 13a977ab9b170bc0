// The broker core's side of a subscription granted in part (authorizeSubscribe 'per-message'): each
// message's topic is asked about once per subscription (authorizeReceive), kept in a bounded cache, and
// asked again after Broker.authorizationChanged(); shared groups pick only members that may receive.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { MAX_TOPICS } from '../src/mqtt/receive-check.js';
import { collect, sleep, startBroker, type TestBroker } from './mqtt-harness.js';

describe('subscriptions granted in part, checked per message', () => {
  let b: TestBroker;
  const asked: string[] = [];
  let hidden = 'secret/x';
  before(async () => {
    b = await startBroker({ allowAnonymous: true }, {
      authorizeSubscribe: (_p, filter) => (filter === 'secret/x' ? false : filter.endsWith('#') || filter.includes('+') ? 'per-message' : true),
      authorizeReceive: (_p, topic, clientId) => {
        asked.push(topic);
        return topic !== hidden && !(clientId.startsWith('blind') && topic.startsWith('shared/'));
      },
    });
  });
  after(() => b.stop());

  it('delivers what the subscriber may receive, asking once per topic', async () => {
    const sub = await b.client({ protocolVersion: 5 });
    await sub.subscribeAsync('#', { qos: 1 });
    const pub = await b.client({ protocolVersion: 5 });
    const got = collect(sub, 3);
    asked.length = 0;
    for (const t of ['secret/x', 'a/1', 'secret/x', 'a/1', 'a/2']) await pub.publishAsync(t, 'm', { qos: 1 });
    assert.deepEqual((await got).map((m) => m.topic), ['a/1', 'a/1', 'a/2']);
    assert.deepEqual(asked, ['secret/x', 'a/1', 'a/2'], 'answers are kept per subscription and topic');
    await sub.endAsync();
  });

  it('forgets and asks again after authorizationChanged()', async () => {
    const sub = await b.client({ protocolVersion: 5 });
    await sub.subscribeAsync('z/#', { qos: 1 });
    const pub = await b.client({ protocolVersion: 5 });
    await pub.publishAsync('z/1', 'before', { qos: 1 });
    await sleep(50);
    hidden = 'z/1';
    b.broker.authorizationChanged();
    await sleep(10);
    const got = collect(sub, 1);
    await pub.publishAsync('z/1', 'hidden now', { qos: 1 });
    await pub.publishAsync('z/2', 'shown', { qos: 1 });
    assert.deepEqual((await got).map((m) => m.payload), ['shown']);
    hidden = 'secret/x';
    b.broker.authorizationChanged();
    await sub.endAsync();
  });

  it('keeps at most MAX_TOPICS answers per subscription', async () => {
    const sub = await b.client({ protocolVersion: 5 });
    await sub.subscribeAsync('many/+', { qos: 0 });
    const pub = await b.client({ protocolVersion: 5 });
    const n = MAX_TOPICS + 10;
    const got = collect(sub, n, 10_000);
    for (let i = 0; i < n; i++) pub.publish(`many/${i}`, 'm', { qos: 0 });
    await got;
    asked.length = 0;
    const again = collect(sub, 2);
    pub.publish('many/0', 'm', { qos: 0 }); // dropped from the cache first: asked again
    pub.publish(`many/${n - 1}`, 'm', { qos: 0 }); // still known
    await again;
    assert.deepEqual(asked, ['many/0']);
  });

  it('a shared group gives a message only to a member that may receive it', async () => {
    const blind = await b.client({ protocolVersion: 5, clientId: 'blind-1' });
    const seer = await b.client({ protocolVersion: 5, clientId: 'seer-1' });
    await blind.subscribeAsync('$share/g/shared/+', { qos: 1 });
    await seer.subscribeAsync('$share/g/shared/+', { qos: 1 });
    const counts = { blind: 0, seer: 0 };
    blind.on('message', () => counts.blind++);
    seer.on('message', () => counts.seer++);
    const pub = await b.client({ protocolVersion: 5 });
    for (let i = 0; i < 4; i++) await pub.publishAsync('shared/y', 'm', { qos: 1 });
    await sleep(100);
    assert.deepEqual(counts, { blind: 0, seer: 4 });
  });
});
