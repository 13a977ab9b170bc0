import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generate, type IConnackPacket, type IDisconnectPacket, type IPubackPacket, type IPublishPacket } from 'mqtt-packet';
import { collect, mosquitto, sleep, startBroker, type TestBroker } from './mqtt-harness.js';

describe('MQTT CONNECT: versions, sessions, keep alive, take-over, authentication', () => {
  let b: TestBroker;
  before(async () => {
    b = await startBroker(
      { allowAnonymous: true, connectTimeoutMs: 300 },
      {
        authenticate: ({ username, password }) =>
          username === 'dev1' && password?.toString() === 'secret' ? { principal: 'device:dev1' } : { reasonCode: 0x86, reasonString: 'wrong secret' },
        authorizePublish: (principal, topic) => principal !== 'anonymous' || !topic.startsWith('private/'),
      },
    );
  });
  after(() => b.stop());

  it('accepts MQTT 3.1.1 and 5.0 clients, which then exchange messages', async () => {
    const v4 = await b.client({ protocolVersion: 4, clientId: 'c-v4' });
    const v5 = await b.client({ protocolVersion: 5, clientId: 'c-v5' });
    await v5.subscribeAsync('hello/+', { qos: 1 });
    await v4.subscribeAsync('hello/+', { qos: 1 });
    const got5 = collect(v5, 1);
    const got4 = collect(v4, 1);
    await v4.publishAsync('hello/world', 'hi', { qos: 1 });
    assert.equal((await got5)[0]!.payload, 'hi');
    assert.equal((await got4)[0]!.payload, 'hi');
  });

  it('accepts an MQTT 3.1 (MQIsdp) client', async () => {
    const raw = await b.raw();
    raw.send({ cmd: 'connect', protocolId: 'MQIsdp', protocolVersion: 3, clientId: 'old-311', clean: true, keepalive: 30 }, 4);
    const ack = (await raw.next()) as IConnackPacket;
    assert.equal(ack.returnCode, 0);
  });

  it('exchanges messages with MQTT 3.1 clients: mqtt.js and mosquitto_pub -V mqttv31', async () => {
    const old = await b.client({ protocolId: 'MQIsdp', protocolVersion: 3, clientId: 'old-31' });
    await old.subscribeAsync('v31/#', { qos: 1 });
    const v5 = await b.client({ protocolVersion: 5 });
    const got = collect(old, 2);
    await v5.publishAsync('v31/a', 'from v5', { qos: 1 });
    const pub = mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', 'mqttv31', '-q', '1', '-t', 'v31/b', '-m', 'from mosquitto 3.1']);
    assert.equal(await pub.exited, 0, pub.lines.join('\n'));
    assert.deepEqual((await got).map((g) => [g.topic, g.payload]), [['v31/a', 'from v5'], ['v31/b', 'from mosquitto 3.1']]);
  });

  it('answers an unknown protocol level with CONNACK 0x01 and closes', async () => {
    const raw = await b.raw();
    // CONNECT "MQTT" level 9.
    raw.write([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x09, 0x02, 0x00, 0x3c, 0x00, 0x00]);
    const ack = (await raw.next()) as IConnackPacket;
    assert.equal(ack.returnCode, 1);
    assert.ok(await raw.closesWithin());
  });

  it('assigns a client identifier to a v5 client that sends an empty one', async () => {
    const raw = await b.raw();
    const ack = await raw.handshake(5, { clientId: '' });
    assert.equal(ack.reasonCode, 0);
    assert.match(ack.properties?.assignedClientIdentifier ?? '', /^auto-/);
  });

  it('refuses an empty client id with clean session 0 in 3.1.1 (return code 2)', async () => {
    const raw = await b.raw();
    // CONNECT level 4, flags 0 (clean session 0), keep alive 60, client id "" (mqtt-packet will not encode it).
    raw.write([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x3c, 0x00, 0x00]);
    const ack = (await raw.next()) as IConnackPacket;
    assert.equal(ack.returnCode, 2);
    assert.ok(await raw.closesWithin());
  });

  it('reports session present when a 3.1.1 client resumes with clean session 0, and not after clean session 1', async () => {
    const first = await b.client({ protocolVersion: 4, clientId: 'persist-v4', clean: false });
    await first.subscribeAsync('persist/v4', { qos: 1 });
    await first.endAsync();
    const second = await b.client({ protocolVersion: 4, clientId: 'persist-v4', clean: false });
    const got = collect(second, 1);
    // The subscription survived: no SUBSCRIBE this time.
    const pub = await b.client({ protocolVersion: 4 });
    await pub.publishAsync('persist/v4', 'kept', { qos: 1 });
    assert.equal((await got)[0]!.payload, 'kept');
    await second.endAsync();
    const raw = await b.raw();
    const ack = await raw.handshake(4, { clientId: 'persist-v4', clean: false });
    assert.equal(ack.sessionPresent, true);
    const raw2 = await b.raw();
    const ack2 = await raw2.handshake(4, { clientId: 'persist-v4', clean: true });
    assert.equal(ack2.sessionPresent, false);
  });

  it('keeps a v5 session for its Session Expiry Interval and reports it with session present', async () => {
    const first = await b.client({ protocolVersion: 5, clientId: 'persist-v5', clean: false, properties: { sessionExpiryInterval: 60 } });
    await first.subscribeAsync('persist/v5', { qos: 1 });
    await first.endAsync();
    const raw = await b.raw();
    const ack = await raw.handshake(5, { clientId: 'persist-v5', clean: false, properties: { sessionExpiryInterval: 60 } });
    assert.equal(ack.sessionPresent, true);
    const raw2 = await b.raw();
    const ack2 = await raw2.handshake(5, { clientId: 'persist-v5-zero', clean: false });
    assert.equal(ack2.sessionPresent, false);
  });

  it('ends a v5 session once its Session Expiry Interval has passed: its subscriptions and queue go with it', async () => {
    const c = await b.client({ protocolVersion: 5, clientId: 'expires', clean: false, properties: { sessionExpiryInterval: 1 } });
    await c.subscribeAsync('expires/t', { qos: 1 });
    await c.endAsync();
    const pub = await b.raw();
    await pub.handshake(5);
    const sessions = b.broker.sessions;
    pub.send({ cmd: 'publish', topic: 'expires/t', payload: Buffer.from('queued'), qos: 1, messageId: 1, dup: false, retain: false }, 5);
    assert.equal(((await pub.next()) as IPubackPacket).reasonCode, 0);
    assert.ok(b.broker.queued >= 1);
    await sleep(1_300);
    assert.equal(b.broker.sessions, sessions - 1);
    // Nobody subscribes to it any more: 0x10 No matching subscribers.
    pub.send({ cmd: 'publish', topic: 'expires/t', payload: Buffer.from('late'), qos: 1, messageId: 2, dup: false, retain: false }, 5);
    assert.equal(((await pub.next()) as IPubackPacket).reasonCode, 0x10);
    const raw = await b.raw();
    const ack = await raw.handshake(5, { clientId: 'expires', clean: false, properties: { sessionExpiryInterval: 1 } });
    assert.equal(ack.sessionPresent, false);
    await assert.rejects(raw.next((p) => p.cmd === 'publish', 300));
  });

  it('closes a connection silent for 1.5 times its keep alive, with DISCONNECT 0x8D in v5', async () => {
    const raw = await b.raw();
    await raw.handshake(5, { keepalive: 1 });
    const started = Date.now();
    const d = (await raw.next((p) => p.cmd === 'disconnect', 4_000)) as IDisconnectPacket;
    const elapsed = Date.now() - started;
    assert.equal(d.reasonCode, 0x8d);
    assert.ok(elapsed >= 1_300 && elapsed < 2_500, `closed after ${elapsed} ms`);
    assert.ok(await raw.closesWithin());
  });

  it('keeps a connection that pings within its keep alive', async () => {
    const raw = await b.raw();
    await raw.handshake(4, { keepalive: 1 });
    for (let i = 0; i < 4; i++) {
      await sleep(600);
      raw.send({ cmd: 'pingreq' });
      assert.equal((await raw.next()).cmd, 'pingresp');
    }
    assert.equal(raw.socket.destroyed, false);
  });

  it('counts the keep alive from CONNACK when authentication took longer than it', async () => {
    const slow = await startBroker({ allowAnonymous: false }, {
      authenticate: async () => {
        await sleep(1_800);
        return { principal: 'device:slow' };
      },
    });
    try {
      const raw = await slow.raw();
      // Keep alive 1 s (1.5 s allowed), CONNACK 1.8 s after CONNECT: the client pings in time after CONNACK.
      assert.equal((await raw.handshake(4, { keepalive: 1, username: 'slow', password: Buffer.from('x') })).returnCode, 0);
      await sleep(700);
      raw.send({ cmd: 'pingreq' });
      assert.equal((await raw.next()).cmd, 'pingresp');
      assert.equal(raw.socket.destroyed, false);
    } finally {
      await slow.stop();
    }
  });

  it('handles SUBSCRIBE and PUBLISH sent in the same write as CONNECT once authentication ends, while other clients carry on', async () => {
    let release: () => void = () => undefined;
    const authenticated = new Promise<void>((r) => (release = r));
    const slow = await startBroker({ allowAnonymous: true }, {
      authenticate: async ({ username }) => {
        await authenticated;
        return { principal: `device:${username ?? ''}` };
      },
    });
    try {
      const eager = await slow.raw();
      eager.setVersion(4);
      eager.write(Buffer.concat([
        generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'eager', clean: true, keepalive: 60, username: 'eager', password: Buffer.from('x') }),
        generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'eager/#', qos: 1 }] }),
        generate({ cmd: 'publish', topic: 'eager/self', payload: Buffer.from('first'), qos: 1, messageId: 2, dup: false, retain: false }),
        generate({ cmd: 'publish', topic: 'eager/self', payload: Buffer.from('second'), qos: 0, dup: false, retain: false }),
      ]));
      // Meanwhile an anonymous pair exchanges messages: its reads go through the decoder while the first
      // connection's packets wait.
      const sub = await slow.client({ clientId: 'meanwhile-sub' });
      await sub.subscribeAsync('meanwhile/t', { qos: 1 });
      const got = collect(sub, 3);
      const pub = await slow.client({ clientId: 'meanwhile-pub' });
      for (const n of ['1', '2', '3']) await pub.publishAsync('meanwhile/t', n, { qos: 1 });
      assert.deepEqual((await got).map((m) => m.payload), ['1', '2', '3']);
      assert.equal(eager.packets.length, 0, 'nothing answered before CONNACK');

      release();
      assert.equal(((await eager.next((p) => p.cmd === 'connack')) as IConnackPacket).returnCode, 0);
      assert.equal((await eager.next((p) => p.cmd === 'suback')).cmd, 'suback');
      assert.equal((await eager.next((p) => p.cmd === 'puback')).cmd, 'puback');
      const first = (await eager.next((p) => p.cmd === 'publish')) as IPublishPacket;
      const second = (await eager.next((p) => p.cmd === 'publish')) as IPublishPacket;
      assert.deepEqual([first.payload.toString(), second.payload.toString()], ['first', 'second']);
    } finally {
      release();
      await slow.stop();
    }
  });

  it('closes a connection that sends no CONNECT within the connect timeout', async () => {
    const raw = await b.raw();
    assert.ok(await raw.closesWithin(1_500));
  });

  it('closes a connection whose first packet is not CONNECT', async () => {
    const raw = await b.raw();
    raw.send({ cmd: 'pingreq' });
    assert.ok(await raw.closesWithin());
  });

  it('takes a session over: the old v5 connection gets DISCONNECT 0x8E and the new one continues', async () => {
    const old = await b.raw();
    await old.handshake(5, { clientId: 'twin', clean: true });
    const fresh = await b.raw();
    const ack = await fresh.handshake(5, { clientId: 'twin', clean: false });
    assert.equal(ack.reasonCode, 0);
    assert.equal(ack.sessionPresent, true);
    const d = (await old.next((p) => p.cmd === 'disconnect')) as IDisconnectPacket;
    assert.equal(d.reasonCode, 0x8e);
    assert.ok(await old.closesWithin());
    fresh.send({ cmd: 'pingreq' }, 5);
    assert.equal((await fresh.next()).cmd, 'pingresp');
  });

  it('takes a 3.1.1 session over by closing the old connection', async () => {
    const old = await b.raw();
    await old.handshake(4, { clientId: 'twin4' });
    const fresh = await b.raw();
    await fresh.handshake(4, { clientId: 'twin4' });
    assert.ok(await old.closesWithin());
  });

  it('authenticates credentials through the hook and passes the principal to the ACL hooks', async () => {
    const dev = await b.client({ protocolVersion: 5, username: 'dev1', password: 'secret' });
    await dev.publishAsync('private/x', 'ok', { qos: 1 });
    const anon = await b.client({ protocolVersion: 5 });
    await assert.rejects(anon.publishAsync('private/x', 'no', { qos: 1 }), (err: { code?: number }) => err.code === 0x87);
  });

  it('refuses bad credentials: 0x86 with the hook reason string in v5, return code 4 in 3.1.1', async () => {
    const raw = await b.raw();
    const ack = await raw.handshake(5, { username: 'dev1', password: Buffer.from('nope') });
    assert.equal(ack.reasonCode, 0x86);
    assert.equal(ack.properties?.reasonString, 'wrong secret');
    assert.ok(await raw.closesWithin());
    const raw4 = await b.raw();
    const ack4 = await raw4.handshake(4, { username: 'dev1', password: Buffer.from('nope') });
    assert.equal(ack4.returnCode, 4);
  });

  it('works with mosquitto_sub and mosquitto_pub in 3.1.1 and 5.0', async () => {
    for (const version of ['mqttv311', 'mqttv5']) {
      const sub = mosquitto('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', version, '-t', `mosq/${version}`, '-q', '1', '-C', '2', '-v']);
      try {
        await sleep(300); // let it subscribe
        for (const m of ['first', 'second']) {
          const pub = mosquitto('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(b.port), '-V', version, '-t', `mosq/${version}`, '-q', '1', '-m', m]);
          assert.equal(await pub.exited, 0, pub.lines.join('\n'));
        }
        assert.deepEqual(await sub.waitForLines(2), [`mosq/${version} first`, `mosq/${version} second`]);
        assert.equal(await sub.exited, 0);
      } finally {
        sub.kill();
      }
    }
  });
});

describe('MQTT CONNECT: limits and policies', () => {
  it('refuses anonymous clients unless anonymous access is on (0x87 / return code 5)', async () => {
    const b = await startBroker({});
    try {
      const raw = await b.raw();
      assert.equal((await raw.handshake(5)).reasonCode, 0x87);
      const raw4 = await b.raw();
      assert.equal((await raw4.handshake(4)).returnCode, 5);
    } finally {
      await b.stop();
    }
  });

  it('tells a v5 client the Server Keep Alive, and refuses a 3.1.1 client asking for more than the maximum', async () => {
    const b = await startBroker({ allowAnonymous: true, keepaliveMaxS: 30 });
    try {
      const raw = await b.raw();
      const ack = await raw.handshake(5, { keepalive: 120 });
      assert.equal(ack.properties?.serverKeepAlive, 30);
      const raw4 = await b.raw();
      assert.equal((await raw4.handshake(4, { keepalive: 120 })).returnCode, 2);
      const ok4 = await b.raw();
      assert.equal((await ok4.handshake(4, { keepalive: 20 })).returnCode, 0);
    } finally {
      await b.stop();
    }
  });

  it('caps the Session Expiry Interval and says so in CONNACK', async () => {
    const b = await startBroker({ allowAnonymous: true, maxSessionExpiryS: 100 });
    try {
      const raw = await b.raw();
      const ack = await raw.handshake(5, { properties: { sessionExpiryInterval: 0xffffffff } });
      assert.equal(ack.properties?.sessionExpiryInterval, 100);
    } finally {
      await b.stop();
    }
  });

  it('refuses connections beyond maxConnections with 0x97', async () => {
    const b = await startBroker({ allowAnonymous: true, maxConnections: 1 });
    try {
      const first = await b.raw();
      assert.equal((await first.handshake(5)).reasonCode, 0);
      const second = await b.raw();
      assert.equal((await second.handshake(5)).reasonCode, 0x97);
    } finally {
      await b.stop();
    }
  });

  it('tells v5 clients DISCONNECT 0x8B when the broker closes', async () => {
    const b = await startBroker({ allowAnonymous: true });
    const raw = await b.raw();
    await raw.handshake(5);
    await b.broker.close();
    const d = (await raw.next((p) => p.cmd === 'disconnect')) as IDisconnectPacket;
    assert.equal(d.reasonCode, 0x8b);
    await b.stop();
  });
});

describe('MQTT: ending the connections that used a credential', () => {
  it('disconnects every connection authenticated with a credential (5.0: DISCONNECT 0x98, 3.1.1: close), and no other of the same principal', async () => {
    // One principal, two credentials: like one user with two access tokens.
    const b = await startBroker({}, { authenticate: (req) => ({ principal: 'user:ada', credential: req.password?.toString() }) });
    try {
      const v5 = await b.client({ protocolVersion: 5, username: 'ada', password: 'token-a' });
      const v4 = await b.client({ protocolVersion: 4, username: 'ada', password: 'token-a' });
      const other = await b.client({ protocolVersion: 5, username: 'ada', password: 'token-b' });
      const disconnect = new Promise<IDisconnectPacket>((r) => v5.once('disconnect', r));
      const closed = [v5, v4].map((c) => new Promise<void>((r) => c.once('close', () => r())));
      assert.equal(b.broker.disconnectCredential('token-a', 0x98, 'access token revoked'), 2);
      const packet = await disconnect;
      assert.equal(packet.reasonCode, 0x98);
      assert.equal(packet.properties?.reasonString, 'access token revoked');
      await Promise.all(closed);
      assert.equal(b.broker.disconnectCredential('token-a', 0x98, 'again'), 0, 'closed connections are no longer indexed');
      // The other credential's connection carries on.
      await other.subscribeAsync('t/ada', { qos: 1 });
      const got = new Promise<string>((r) => other.once('message', (_topic, payload) => r(payload.toString())));
      await other.publishAsync('t/ada', 'still here', { qos: 1 });
      assert.equal(await got, 'still here');
      assert.equal(other.connected, true);
    } finally {
      await b.stop();
    }
  });
});
