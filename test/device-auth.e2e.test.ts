import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { addDevice, addUser, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';

const OWNER = 'owner@example.com';
const HUB_PASSWORD = 'the hub password';
const DEVICE_PASSWORD = 'kept only on the device';
const json = { 'content-type': 'application/json' };

async function errorCode(r: Response): Promise<string> {
  return ((await r.json()) as { error: { code: string } }).error.code;
}

describe('device-side authentication (apiAuthPath): the password lives on the device only', () => {
  let data: { path: string; remove(): void };
  let hub: HubProc;
  let device: Proc & { port: number; url: string };
  let plainDevice: Proc & { url: string };
  let agents: Proc[];
  let locked: string;
  let plain: string;
  let auth: { authorization: string };
  let api: string;

  before(async () => {
    data = tempDir();
    await addUser(data.path, OWNER, HUB_PASSWORD);
    const a = await addDevice(data.path, 'Locked thermostat', OWNER);
    const b = await addDevice(data.path, 'Open thermostat', OWNER);
    locked = a.id;
    plain = b.id;
    hub = await startHub(data.path, ['--login-max-failures', '3']);
    device = await startDevice(OWNER, { password: DEVICE_PASSWORD });
    plainDevice = await startDevice(OWNER);
    agents = [
      await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: a.id, secret: a.secret, api: device.url }),
      await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: b.id, secret: b.secret, api: plainDevice.url }),
    ];
    auth = { authorization: `Bearer ${await login(hub.url, OWNER, HUB_PASSWORD)}` };
    api = `${hub.url}/v1/devices/${locked}/api`;
  });
  after(async () => {
    await Promise.all([...(agents ?? []).map((p) => p.stop()), device?.stop(), plainDevice?.stop()]);
    await hub?.stop();
    data?.remove();
  });

  const authenticate = (password: string, id = locked) =>
    fetch(`${hub.url}/v1/devices/${id}/auth`, { method: 'POST', headers: { ...json, ...auth }, body: JSON.stringify({ password }) });
  const status = async () => (await fetch(`${hub.url}/v1/devices/${locked}/auth`, { headers: auth })).json() as Promise<{ required: boolean; authenticated: boolean; expires: string | null }>;

  it('relays the device\'s own 401 until the user has authenticated with the device', async () => {
    assert.deepEqual(await status(), { required: true, authenticated: false, expires: null });
    const r = await fetch(`${api}/temperature`, { headers: auth });
    assert.equal(r.status, 401);
    assert.equal(r.headers.get('www-authenticate'), 'Bearer');
    assert.match(((await r.json()) as { error: string }).error, /needs its own token: POST \/auth/);
  });

  it('answers a password the device refuses with 403 CR_ERR_DEVICE_AUTH_FAILED', async () => {
    const r = await authenticate('not the device password');
    assert.equal(r.status, 403);
    assert.equal(await errorCode(r), 'CR_ERR_DEVICE_AUTH_FAILED');
    assert.equal((await status()).authenticated, false);
  });

  it('after authenticating, relayed calls carry the device\'s token and succeed; the hub keeps no password', async () => {
    const r = await authenticate(DEVICE_PASSWORD);
    assert.equal(r.status, 200);
    const body = (await r.json()) as { authenticated: boolean; expires: string };
    assert.equal(body.authenticated, true);
    assert.ok(Math.abs(Date.parse(body.expires) - (Date.now() + 3_600_000)) < 60_000, 'the device\'s expires_in (1 hour)');
    assert.equal((await status()).authenticated, true);

    const temp = await fetch(`${api}/temperature`, { headers: auth });
    assert.equal(temp.status, 200);
    assert.equal(typeof ((await temp.json()) as { celsius: number }).celsius, 'number');
    const echo = (await (await fetch(`${api}/echo`, { headers: auth })).json()) as { headers: Record<string, string> };
    assert.match(echo.headers.authorization ?? '', /^Bearer [A-Za-z0-9_-]{32}$/, 'the device\'s own token, added by the hub');
    assert.notEqual(echo.headers.authorization, auth.authorization, 'never the hub token');

    // Neither the database nor the log holds the device password.
    for (const f of readdirSync(data.path).filter((n) => n.startsWith('cloudrest.db'))) {
      assert.ok(!readFileSync(join(data.path, f)).includes(DEVICE_PASSWORD), `${f} holds no device password`);
    }
    assert.ok(!hub.lines.some((l) => l.includes(DEVICE_PASSWORD)));
  });

  it('a device that forgot its tokens (restarted) yields 401 CR_ERR_DEVICE_AUTH_EXPIRED; authenticating again restores access', async () => {
    await device.stop();
    device = await startDevice(OWNER, { password: DEVICE_PASSWORD, port: device.port });
    const refused = await fetch(`${api}/temperature`, { headers: auth });
    assert.equal(refused.status, 401);
    const err = (await refused.json()) as { error: { code: string; message: string } };
    assert.equal(err.error.code, 'CR_ERR_DEVICE_AUTH_EXPIRED');
    assert.match(err.error.message, new RegExp(`POST /v1/devices/${locked}/auth`));
    assert.equal((await status()).authenticated, false, 'the refused token was dropped');
    const passthrough = await fetch(`${api}/temperature`, { headers: auth });
    assert.equal(passthrough.status, 401, 'without a token the device answers for itself again');
    assert.match(((await passthrough.json()) as { error: string }).error, /needs its own token/);

    assert.equal((await authenticate(DEVICE_PASSWORD)).status, 200);
    assert.equal((await fetch(`${api}/temperature`, { headers: auth })).status, 200);
  });

  it('forgets the device token on DELETE', async () => {
    assert.equal((await fetch(`${hub.url}/v1/devices/${locked}/auth`, { method: 'DELETE', headers: auth })).status, 204);
    assert.equal((await status()).authenticated, false);
    assert.equal((await fetch(`${api}/temperature`, { headers: auth })).status, 401);
  });

  it('answers 409 CR_ERR_DEVICE_AUTH_UNSUPPORTED for a device without apiAuthPath, and 404 for a device that is not yours', async () => {
    const r = await authenticate(DEVICE_PASSWORD, plain);
    assert.equal(r.status, 409);
    assert.equal(await errorCode(r), 'CR_ERR_DEVICE_AUTH_UNSUPPORTED');
    const s = (await (await fetch(`${hub.url}/v1/devices/${plain}/auth`, { headers: auth })).json()) as { required: boolean };
    assert.equal(s.required, false);
    const unknown = await authenticate(DEVICE_PASSWORD, 'd_nosuchdevice');
    assert.equal(unknown.status, 404);
    assert.equal(await errorCode(unknown), 'CR_ERR_DEVICE_NOT_FOUND');
  });

  it('bounds password guesses through the hub with 429 CR_ERR_RATE_LIMITED', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await authenticate(`guess ${i}`)).status, 403);
    const limited = await authenticate(DEVICE_PASSWORD);
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers.get('retry-after')) >= 1);
    assert.equal(await errorCode(limited), 'CR_ERR_RATE_LIMITED');
  });
});
