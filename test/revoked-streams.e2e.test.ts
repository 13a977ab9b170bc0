/**
 * A revoked token ends the long-lived connections opened with it: the event streams (GET /v1/events,
 * /v1/devices/{id}/events, /v1/topics/events) and MQTT connections, while the same user's other
 * tokens keep theirs. Real peers: curl and the repo's SSE client for the streams, mqtt.js (5.0 and
 * 3.1.1) and mosquitto_sub for MQTT, against a real hub, agent and device.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type { IDisconnectPacket } from 'mqtt-packet';
import type { MqttClient } from 'mqtt';
import { MqttClients } from './support/mqtt-peers.js';
import { login, Proc } from './support/procs.js';
import { SseClient } from './support/sse-client.js';
import { startWorld, type World } from './support/world.js';

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** curl holding an event stream open (-N: no buffering); its output lines can be awaited, its exit too. */
function curlStream(url: string, token: string): Proc {
  return new Proc(spawn('curl', ['-sS', '-N', '-H', `Authorization: Bearer ${token}`, url], { stdio: ['ignore', 'pipe', 'pipe'] }), 'curl');
}

/** Resolves with the exit code, or rejects if the process is still running after `ms`. */
async function exitsWithin(p: Proc, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${p.name} still running after ${ms} ms; output:\n${p.lines.join('\n')}`)), ms);
  });
  try {
    return await Promise.race([p.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves when the SSE client's stream has ended (rejects if it is still open after `ms`). */
async function sseEnds(s: SseClient, ms: number): Promise<void> {
  await assert.rejects(s.until(() => false, ms), /stream ended/);
}

async function tokenId(url: string, token: string): Promise<string> {
  const r = await fetch(`${url}/v1/auth/tokens`, { headers: bearer(token) });
  const { tokens } = (await r.json()) as { tokens: Array<{ id: string; current: boolean }> };
  return tokens.find((t) => t.current)!.id;
}

describe('revoked tokens end the streams and MQTT connections opened with them', () => {
  let w: World;
  const mqtt = new MqttClients();
  const procs: Proc[] = [];
  let mqttUrl: string;
  const topic = () => `devices/${w.deviceId}/cmd`;
  const topicsUrl = () => `${w.hub.url}/v1/topics/events?filter=${encodeURIComponent(`devices/${w.deviceId}/#`)}`;

  before(async () => {
    w = await startWorld();
    mqttUrl = `mqtt://127.0.0.1:${w.hub.mqttPort!}`;
  });
  after(async () => {
    await mqtt.closeAll();
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await w?.stop();
  });

  const started = (p: Proc): Proc => {
    procs.push(p);
    return p;
  };

  it('logout ends every SSE stream and MQTT connection of that token; another token of the same user keeps its own', async () => {
    const doomed = await login(w.hub.url, w.email, w.password);
    const kept = await login(w.hub.url, w.email, w.password);

    // The token to be logged out: three streams and three MQTT clients.
    const allEvents = started(curlStream(`${w.hub.url}/v1/events`, doomed));
    const topicEvents = started(curlStream(topicsUrl(), doomed));
    const deviceEvents = await SseClient.open(`${w.hub.url}/v1/devices/${w.deviceId}/events`, bearer(doomed));
    assert.equal(deviceEvents.status, 200);
    const v5 = await mqtt.connect(mqttUrl, { protocolVersion: 5, username: w.email, password: doomed });
    const v4 = await mqtt.connect(mqttUrl, { protocolVersion: 4, username: w.email, password: doomed });
    // Also on the device's retained status topic: its message, printed at once, shows the subscription is in place.
    const sub = started(new Proc(spawn('mosquitto_sub', ['-h', '127.0.0.1', '-p', String(w.hub.mqttPort!), '-V', 'mqttv311', '-u', w.email, '-P', doomed, '-t', topic(), '-t', `devices/${w.deviceId}/status`, '-i', 'doomed-sub'], { stdio: ['ignore', 'pipe', 'pipe'] }), 'mosquitto_sub'));

    // The other token: a stream and an MQTT client that must stay up.
    const keptEvents = started(curlStream(topicsUrl(), kept));
    const keptClient = await mqtt.connect(mqttUrl, { protocolVersion: 5, username: w.email, password: kept });
    await keptClient.subscribeAsync(topic(), { qos: 1 });

    await allEvents.waitFor((l) => l.startsWith('event: status'));
    await deviceEvents.until((e) => e.some((x) => x.event === 'status'));
    // The topic streams and mosquitto_sub are subscribed once the retained status message reached them
    // (a process started on a loaded machine may connect after a message published too early).
    await topicEvents.waitFor((l) => l.includes('/status"'));
    await keptEvents.waitFor((l) => l.includes('/status"'));
    await sub.waitFor((l) => l.includes('"online":true'));
    // Every connection is up before the logout: a message published now reaches each of them.
    await v5.subscribeAsync(topic(), { qos: 1 });
    const publish = (payload: string) => fetch(`${w.hub.url}/v1/topics/${topic()}?qos=1`, { method: 'POST', headers: bearer(kept), body: payload });
    const before = new Promise<string>((r) => v5.once('message', (_t, p) => r(p.toString())));
    assert.equal((await publish('before')).status, 200);
    assert.equal(await before, 'before');
    await topicEvents.waitFor((l) => l.includes('"payload":"before"'));
    await keptEvents.waitFor((l) => l.includes('"payload":"before"'));
    await sub.waitFor((l) => l === 'before');

    const disconnect = new Promise<IDisconnectPacket>((r) => v5.once('disconnect', r));
    const closed = (c: MqttClient) => new Promise<void>((r) => (c.connected ? c.once('close', () => r()) : r()));
    const v4Closed = closed(v4);
    const logout = await fetch(`${w.hub.url}/v1/auth/logout`, { method: 'POST', headers: bearer(doomed) });
    assert.equal(logout.status, 204);

    // The streams end cleanly (curl exits 0: the response was finished, not cut).
    assert.equal(await exitsWithin(allEvents, 5_000), 0);
    assert.equal(await exitsWithin(topicEvents, 5_000), 0);
    await sseEnds(deviceEvents, 5_000);
    // MQTT 5.0: DISCONNECT 0x98 Administrative action; 3.1.1: the connection is closed.
    const packet = await disconnect;
    assert.equal(packet.reasonCode, 0x98);
    assert.equal(packet.properties?.reasonString, 'access token revoked');
    await v4Closed;
    // mosquitto_sub tries again with the same token, is refused (CONNACK 4) and gives up.
    assert.notEqual(await exitsWithin(sub, 10_000), 0);
    assert.ok(sub.lines.some((l) => /bad user name or password|not authori[sz]ed/i.test(l)), sub.lines.join('\n'));

    // The other token's stream and connection carry on: a message published after the logout reaches both.
    const afterwards = new Promise<string>((r) => keptClient.once('message', (_t, p) => r(p.toString())));
    assert.equal((await publish('after')).status, 200);
    assert.equal(await afterwards, 'after');
    await keptEvents.waitFor((l) => l.includes('"payload":"after"'));
    assert.equal(keptEvents.child.exitCode, null);
    assert.equal(keptClient.connected, true);
    const log = await w.hub.waitForLog('mqtt connections closed: their access token was revoked');
    assert.equal(log.connections, 3, 'mqtt.js 5.0 and 3.1.1, mosquitto_sub');
  });

  it('deleting a token by id ends its streams, and a password change ends those of every other token', async () => {
    const lost = await login(w.hub.url, w.email, w.password);
    const other = await login(w.hub.url, w.email, w.password);
    const current = await login(w.hub.url, w.email, w.password);
    const lostStream = started(curlStream(`${w.hub.url}/v1/events`, lost));
    const otherStream = await SseClient.open(`${w.hub.url}/v1/events?access_token=${other}`);
    const currentStream = started(curlStream(`${w.hub.url}/v1/events`, current));
    const otherMqtt = await mqtt.connect(mqttUrl, { protocolVersion: 5, username: w.email, password: other });
    const otherDisconnect = new Promise<IDisconnectPacket>((r) => otherMqtt.once('disconnect', r));
    for (const s of [lostStream, currentStream]) await s.waitFor((l) => l.startsWith('event: status'));
    await otherStream.until((e) => e.some((x) => x.event === 'status'));

    const del = await fetch(`${w.hub.url}/v1/auth/tokens/${await tokenId(w.hub.url, lost)}`, { method: 'DELETE', headers: bearer(current) });
    assert.equal(del.status, 204);
    assert.equal(await exitsWithin(lostStream, 5_000), 0);
    assert.equal(otherMqtt.connected, true, 'the deletion named one token only');

    const change = await fetch(`${w.hub.url}/v1/auth/password`, {
      method: 'POST',
      headers: { ...bearer(current), 'content-type': 'application/json' },
      body: JSON.stringify({ current: w.password, new: 'another battery staple' }),
    });
    assert.equal(change.status, 204);
    await sseEnds(otherStream, 5_000);
    assert.equal((await otherDisconnect).reasonCode, 0x98);
    // The token that changed the password stays, and so does its stream.
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(currentStream.child.exitCode, null);
    const reopened = await fetch(`${w.hub.url}/v1/events`, { headers: bearer(other) });
    assert.equal(reopened.status, 401, 'a reconnecting EventSource is refused');
    await reopened.body?.cancel();
  });
});
