// Issue 12: a device that names an existing account's email does not join it until that user accepts.
// A real hub, real agents (the shipped bundle) and real device REST servers reporting the email.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ParsedMail } from 'mailparser';
import { waitForOutbox, outboxFiles } from './support/mail.js';
import { MqttClients, subackCodes } from './support/mqtt-peers.js';
import { addDevice, addUser, cli, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';

const HER = 'alice@example.com';
const HER_PASSWORD = 'alice hub password';
const BOB = 'bob@example.com';
const BOB_PASSWORD = 'bob hub password';
const json = { 'content-type': 'application/json' };
const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

async function errorCode(r: Response): Promise<string> {
  return ((await r.json()) as { error: { code: string } }).error.code;
}

function claimLink(mail: ParsedMail): string {
  const m = /https?:\/\/\S+\/v1\/ownership\?claimId=[A-Za-z0-9_-]+/.exec(mail.text ?? '');
  if (!m) throw new Error(`no claim link in:\n${mail.text ?? ''}`);
  return m[0];
}

async function listed(url: string, token: string, path = '/v1/devices'): Promise<string[]> {
  const r = await fetch(`${url}${path}`, { headers: bearer(token) });
  assert.equal(r.status, 200);
  return ((await r.json()) as { devices: Array<{ id: string }> }).devices.map((d) => d.id);
}

/** The owner email the hub's database holds for a device (`cloudrest devices list`). */
async function ownerOf(data: string, id: string): Promise<string | null | undefined> {
  const all = JSON.parse(await cli(['devices', 'list', '--data', data, '--json'])) as Array<{ id: string; email: string | null }>;
  return all.find((d) => d.id === id)?.email;
}

describe('a device naming an existing account joins it only once that user accepts', () => {
  let data: { path: string; remove(): void };
  let hub: HubProc;
  let herDevice: Proc & { url: string };
  let bobDevice: Proc & { url: string };
  const agents: Proc[] = [];
  let planted: { id: string; secret: string };
  let her: string;
  let bob: string;
  const mqtt = new MqttClients();

  before(async () => {
    data = tempDir();
    await addUser(data.path, HER, HER_PASSWORD);
    await addUser(data.path, BOB, BOB_PASSWORD);
    planted = await addDevice(data.path, 'Planted camera'); // no owner: only what it reports names one
    hub = await startHub(data.path);
    // A device REST server whose GET /device says email=alice, with apiAuthPath (it asks for passwords).
    herDevice = await startDevice(HER, { password: 'device password' });
    bobDevice = await startDevice(BOB);
    agents.push(await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: planted.id, secret: planted.secret, api: herDevice.url }));
    her = await login(hub.url, HER, HER_PASSWORD);
    bob = await login(hub.url, BOB, BOB_PASSWORD);
  });
  after(async () => {
    await mqtt.closeAll();
    await Promise.all([...agents.map((a) => a.stop()), herDevice?.stop(), bobDevice?.stop()]);
    await hub?.stop();
    data?.remove();
  });

  it('keeps a planted device out of her devices, her relayed requests, device auth and MQTT', async () => {
    await hub.waitForLog('device connected', (l) => l.deviceId === planted.id);
    assert.deepEqual(await listed(hub.url, her), []);
    const relayed = await fetch(`${hub.url}/v1/devices/${planted.id}/api/temperature`, { headers: bearer(her) });
    assert.equal(relayed.status, 404);
    assert.equal(await errorCode(relayed), 'CR_ERR_DEVICE_NOT_FOUND');
    const detail = await fetch(`${hub.url}/v1/devices/${planted.id}`, { headers: bearer(her) });
    assert.equal(detail.status, 404);
    // Her device password must never reach the planted device's apiAuthPath.
    const deviceAuth = await fetch(`${hub.url}/v1/devices/${planted.id}/auth`, { method: 'POST', headers: { ...json, ...bearer(her) }, body: JSON.stringify({ password: 'device password' }) });
    assert.equal(deviceAuth.status, 404);
    assert.equal(await errorCode(deviceAuth), 'CR_ERR_DEVICE_NOT_FOUND');
    const client = await mqtt.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, { protocolVersion: 5, username: HER, password: her });
    assert.deepEqual(await subackCodes(client, [`devices/${planted.id}/#`]), [0x87]);
    assert.equal(await ownerOf(data.path, planted.id), null);
  });

  it('mails her a link and lists the device as pending for her alone', async () => {
    const [mail] = await waitForOutbox(join(data.path, 'outbox'), 1);
    const to = mail!.mail.to;
    assert.equal(to && !Array.isArray(to) ? to.text : '', HER);
    assert.equal(mail!.mail.subject, 'A device asks to join your account');
    assert.ok(claimLink(mail!.mail).startsWith(`${hub.url}/v1/ownership?claimId=`));
    const pending = await fetch(`${hub.url}/v1/devices/pending`, { headers: bearer(her) });
    const body = (await pending.json()) as { devices: Array<{ id: string; name: string; online: boolean; requested: string }> };
    assert.deepEqual(body.devices.map((d) => [d.id, d.name, d.online]), [[planted.id, 'Planted camera', true]]);
    assert.ok(Date.parse(body.devices[0]!.requested) <= Date.now());
    assert.deepEqual(await listed(hub.url, bob, '/v1/devices/pending'), []);
    const notBobs = await fetch(`${hub.url}/v1/devices/pending/${planted.id}/accept`, { method: 'POST', headers: bearer(bob) });
    assert.equal(notBobs.status, 404);
    assert.equal(await errorCode(notBobs), 'CR_ERR_DEVICE_NOT_FOUND');
  });

  it('does not mail again when the planted device reconnects', async () => {
    await agents[0]!.stop();
    agents[0] = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: planted.id, secret: planted.secret, api: herDevice.url });
    const held = await hub.waitForLog('device claim mail held back', (l) => l.deviceId === planted.id);
    assert.equal(held.reason, 'link still valid');
    assert.equal(hub.logs('device connected').filter((l) => l.deviceId === planted.id).length, 2);
    assert.equal(outboxFiles(join(data.path, 'outbox')).length, 1);
  });

  it('accepts through the link only with her password; then the device is hers and relays', async () => {
    const [mail] = await waitForOutbox(join(data.path, 'outbox'), 1);
    const link = claimLink(mail!.mail);
    const claimId = new URL(link).searchParams.get('claimId')!;
    const page = await fetch(link);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer');
    const html = await page.text();
    assert.match(html, /<form method="post" action="ownership">/);
    assert.match(html, /Planted camera/);
    const state = await fetch(link, { headers: { accept: 'application/json' } });
    assert.deepEqual(((await state.json()) as { device: { id: string } }).device.id, planted.id);

    const post = (body: Record<string, string>) => fetch(`${hub.url}/v1/ownership`, { method: 'POST', headers: json, body: JSON.stringify(body) });
    const noPassword = await post({ claimId, decision: 'accept' });
    assert.equal(noPassword.status, 400);
    const wrong = await post({ claimId, decision: 'accept', password: 'not her password' });
    assert.equal(wrong.status, 401);
    assert.equal(await errorCode(wrong), 'CR_ERR_INVALID_CREDENTIALS');
    assert.deepEqual(await listed(hub.url, her), [], 'a refused accept changes nothing');

    const ok = await post({ claimId, decision: 'accept', password: HER_PASSWORD });
    assert.equal(ok.status, 200);
    assert.deepEqual(await ok.json(), { device: { id: planted.id, name: 'Planted camera' }, accepted: true });
    assert.deepEqual(await listed(hub.url, her), [planted.id]);
    assert.deepEqual(await listed(hub.url, her, '/v1/devices/pending'), []);
    // Hers now by her choice: the hub passes her device password on, and relays with the device's token.
    const deviceAuth = await fetch(`${hub.url}/v1/devices/${planted.id}/auth`, { method: 'POST', headers: { ...json, ...bearer(her) }, body: JSON.stringify({ password: 'device password' }) });
    assert.equal(deviceAuth.status, 200);
    const relayed = await fetch(`${hub.url}/v1/devices/${planted.id}/api/temperature`, { headers: bearer(her) });
    assert.equal(relayed.status, 200);
    const client = await mqtt.connect(`mqtt://127.0.0.1:${hub.mqttPort}`, { protocolVersion: 5, username: HER, password: her });
    assert.deepEqual(await subackCodes(client, [`devices/${planted.id}/#`]), [1]);
    assert.equal(await ownerOf(data.path, planted.id), HER);

    const again = await post({ claimId, decision: 'decline' });
    assert.equal(again.status, 410);
    assert.equal(await errorCode(again), 'CR_ERR_CLAIM_USED');
  });

  it('keeps her device hers when it starts naming another account, until that account accepts', async () => {
    // Her device now reports bob: she keeps it; bob has it pending; bob's yes moves it.
    await agents[0]!.stop();
    agents[0] = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: planted.id, secret: planted.secret, api: bobDevice.url });
    await waitForOutbox(join(data.path, 'outbox'), 2);
    assert.deepEqual(await listed(hub.url, her), [planted.id]);
    assert.deepEqual(await listed(hub.url, bob), []);
    assert.deepEqual(await listed(hub.url, bob, '/v1/devices/pending'), [planted.id]);
    const bobBefore = await fetch(`${hub.url}/v1/devices/${planted.id}/api/temperature`, { headers: bearer(bob) });
    assert.equal(bobBefore.status, 404);
    assert.equal((await fetch(`${hub.url}/v1/devices/${planted.id}/api/temperature`, { headers: bearer(her) })).status, 200);

    const accepted = await fetch(`${hub.url}/v1/devices/pending/${planted.id}/accept`, { method: 'POST', headers: bearer(bob) });
    assert.equal(accepted.status, 200);
    assert.deepEqual(await listed(hub.url, bob), [planted.id]);
    assert.deepEqual(await listed(hub.url, her), []);
    const herAfter = await fetch(`${hub.url}/v1/devices/${planted.id}/api/temperature`, { headers: bearer(her) });
    assert.equal(herAfter.status, 404);
    assert.equal((await fetch(`${hub.url}/v1/devices/${planted.id}/api/temperature`, { headers: bearer(bob) })).status, 200);
  });

  it('declining leaves a new device unowned, and it does not ask again while it names her', async () => {
    const second = await addDevice(data.path, 'Second planted');
    const agent = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: second.id, secret: second.secret, api: herDevice.url });
    agents.push(agent);
    // Her address was mailed within --confirmation-resend-ms: the shared limits hold this one back.
    const held = await hub.waitForLog('device claim mail held back', (l) => l.deviceId === second.id);
    assert.equal(held.reason, 'sent recently');
    assert.deepEqual(await listed(hub.url, her, '/v1/devices/pending'), [second.id]);
    const declined = await fetch(`${hub.url}/v1/devices/pending/${second.id}/decline`, { method: 'POST', headers: bearer(her) });
    assert.equal(declined.status, 204);
    assert.deepEqual(await listed(hub.url, her, '/v1/devices/pending'), []);
    assert.deepEqual(await listed(hub.url, her), [], 'the planted device is not hers');
    const relayed = await fetch(`${hub.url}/v1/devices/${second.id}/api/temperature`, { headers: bearer(her) });
    assert.equal(relayed.status, 404);
    assert.equal(await ownerOf(data.path, second.id), null, 'nobody owns it');
    const again = await fetch(`${hub.url}/v1/devices/pending/${second.id}/accept`, { method: 'POST', headers: bearer(her) });
    assert.equal(again.status, 404, 'a declined device cannot be accepted later by mistake');

    const mails = outboxFiles(join(data.path, 'outbox')).length;
    await agent.stop();
    agents[agents.length - 1] = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: second.id, secret: second.secret, api: herDevice.url });
    await hub.waitFor(() => hub.logs('device claim mail held back').filter((l) => l.deviceId === second.id).length >= 2, 15_000, 'the reconnect looked at');
    assert.equal(hub.logs('device claim mail held back').filter((l) => l.deviceId === second.id).at(-1)!.reason, 'declined');
    assert.equal(outboxFiles(join(data.path, 'outbox')).length, mails);
    assert.deepEqual(await listed(hub.url, her, '/v1/devices/pending'), []);
  });
});
