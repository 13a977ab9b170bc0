import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { collect, sleep, startBroker, type TestBroker } from './mqtt-harness.js';

describe('MQTT last will', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker({ allowAnonymous: true });
  });
  after(() => b.stop());

  async function watch(filter: string): Promise<string[]> {
    const c = await b.client({ protocolVersion: 5 });
    await c.subscribeAsync(filter, { qos: 1 });
    const seen: string[] = [];
    c.on('message', (_t, p) => seen.push(p.toString()));
    return seen;
  }

  it('publishes the will when a client vanishes without DISCONNECT', async () => {
    const seen = await watch('will/vanish');
    const raw = await b.raw();
    await raw.handshake(4, { will: { topic: 'will/vanish', payload: Buffer.from('gone'), qos: 1, retain: false } });
    raw.socket.destroy();
    await sleep(200);
    assert.deepEqual(seen, ['gone']);
  });

  it('passes a v5 will on with its properties, and with the expiry left, to a v5 subscriber', async () => {
    const c = await b.client({ protocolVersion: 5 });
    await c.subscribeAsync('will/props', { qos: 1 });
    const got = collect(c, 1);
    const raw = await b.raw();
    await raw.handshake(5, {
      will: {
        topic: 'will/props',
        payload: Buffer.from('{"state":"offline"}'),
        qos: 1,
        retain: false,
        properties: {
          contentType: 'application/json',
          payloadFormatIndicator: true,
          responseTopic: 'will/reply',
          correlationData: Buffer.from([1, 2, 3]),
          userProperties: { device: 'd-42' },
          messageExpiryInterval: 600,
        },
      },
    });
    raw.socket.destroy();
    const [m] = await got;
    const props = m!.packet.properties!;
    assert.equal(m!.payload, '{"state":"offline"}');
    assert.equal(props.contentType, 'application/json');
    assert.equal(props.payloadFormatIndicator, true);
    assert.equal(props.responseTopic, 'will/reply');
    assert.deepEqual(props.correlationData, Buffer.from([1, 2, 3]));
    assert.deepEqual({ ...props.userProperties }, { device: 'd-42' });
    assert.ok(props.messageExpiryInterval! > 595 && props.messageExpiryInterval! <= 600, String(props.messageExpiryInterval));
  });

  it('discards the will on a normal DISCONNECT, and sends it on DISCONNECT 0x04 (v5)', async () => {
    const seen = await watch('will/disconnect');
    const normal = await b.raw();
    await normal.handshake(5, { will: { topic: 'will/disconnect', payload: Buffer.from('normal'), qos: 0, retain: false } });
    normal.send({ cmd: 'disconnect', reasonCode: 0 }, 5);
    const withWill = await b.raw();
    await withWill.handshake(5, { will: { topic: 'will/disconnect', payload: Buffer.from('asked for'), qos: 0, retain: false } });
    withWill.send({ cmd: 'disconnect', reasonCode: 0x04 }, 5);
    await sleep(200);
    assert.deepEqual(seen, ['asked for']);
  });

  it('publishes the will when the broker closes the connection for a protocol error', async () => {
    const seen = await watch('will/error');
    const raw = await b.raw();
    await raw.handshake(4, { will: { topic: 'will/error', payload: Buffer.from('broken'), qos: 0, retain: false } });
    raw.write([0x30, 0xff, 0xff, 0xff, 0xff, 0x7f]); // remaining length of five bytes
    assert.ok(await raw.closesWithin());
    await sleep(100);
    assert.deepEqual(seen, ['broken']);
  });

  it('stores a will with the retain flag as the retained message of its topic', async () => {
    const raw = await b.raw();
    await raw.handshake(4, { will: { topic: 'will/retained', payload: Buffer.from('last words'), qos: 1, retain: true } });
    raw.socket.destroy();
    await sleep(100);
    const late = await b.client();
    const got = collect(late, 1);
    await late.subscribeAsync('will/retained', { qos: 1 });
    const [m] = await got;
    assert.deepEqual([m!.payload, m!.packet.retain], ['last words', true]);
  });

  it('waits for the Will Delay Interval, and sends nothing if the client resumes its session in time (v5)', async () => {
    const seen = await watch('will/delayed');
    const will = { topic: 'will/delayed', payload: Buffer.from('late'), qos: 0 as const, retain: false, properties: { willDelayInterval: 1 } };
    const first = await b.raw();
    await first.handshake(5, { clientId: 'delayed', clean: false, properties: { sessionExpiryInterval: 60 }, will });
    first.socket.destroy();
    await sleep(300);
    const resumed = await b.raw();
    await resumed.handshake(5, { clientId: 'delayed', clean: false, properties: { sessionExpiryInterval: 60 } });
    await sleep(1_200);
    assert.deepEqual(seen, [], 'no will: the session resumed within the delay');

    const second = await b.raw();
    await second.handshake(5, { clientId: 'delayed-2', clean: false, properties: { sessionExpiryInterval: 60 }, will });
    second.socket.destroy();
    await sleep(400);
    assert.deepEqual(seen, [], 'not before the delay');
    await sleep(1_000);
    assert.deepEqual(seen, ['late']);
  });

  it('sends a delayed will when the session ends first (Session Expiry Interval 0)', async () => {
    const seen = await watch('will/session-end');
    const raw = await b.raw();
    await raw.handshake(5, { will: { topic: 'will/session-end', payload: Buffer.from('now'), qos: 0, retain: false, properties: { willDelayInterval: 30 } } });
    raw.socket.destroy();
    await sleep(200);
    assert.deepEqual(seen, ['now']);
  });

  it('refuses a will topic with a wildcard (CONNACK 0x90 in v5)', async () => {
    const raw = await b.raw();
    const ack = await raw.handshake(5, { will: { topic: 'will/#', payload: Buffer.from('x'), qos: 0, retain: false } });
    assert.equal(ack.reasonCode, 0x90);
  });
});
