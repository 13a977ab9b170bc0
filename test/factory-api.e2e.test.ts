import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { curl, startHub, tempDir, type HubProc } from './support/procs.js';
import { addFactoryKey, cloudrest } from './support/factory.js';

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown> & { error?: { code: string; message: string } };
}

/** POST /v1/factory/devices from a chosen local address (127.0.0.x are all loopback on Linux). */
function post(hub: HubProc, opts: { key?: string; body?: unknown; raw?: string; from?: string; contentType?: string }): Promise<Answer> {
  const payload = opts.raw ?? JSON.stringify(opts.body ?? {});
  return new Promise((resolve, reject) => {
    const req = request(`${hub.url}/v1/factory/devices`, {
      method: 'POST',
      localAddress: opts.from ?? '127.0.0.1',
      headers: { 'content-type': opts.contentType ?? 'application/json', ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}) },
    }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text) as Answer['body'] }));
    });
    req.on('error', reject);
    req.end(payload);
  });
}

describe('factory API: POST /v1/factory/devices', () => {
  let data: ReturnType<typeof tempDir>;
  let hub: HubProc;
  let key: { id: string; key: string };

  before(async () => {
    data = tempDir();
    key = await addFactoryKey(data.path);
    hub = await startHub(data.path, ['--factory-max-failures', '3', '--factory-failure-window-ms', '60000']);
  });
  after(async () => {
    await hub?.stop();
    data?.remove();
  });

  it('registers a device and answers its secret and identity; asking again answers the same, with 200', async () => {
    const first = await post(hub, { key: key.key, body: { id: 'SN-0001', name: 'Kettle', email: ' Ada@Example.com ' } });
    assert.equal(first.status, 201);
    assert.equal(first.headers['cache-control'], 'no-store');
    assert.equal(first.body.id, 'SN-0001');
    assert.equal(first.body.identity, createHash('sha256').update('SN-0001').digest('hex'));
    assert.equal(first.body.name, 'Kettle');
    assert.equal(first.body.email, 'ada@example.com');
    assert.equal(first.body.created, true);
    assert.match(first.body.secret as string, /^[0-9a-f]{64}$/);
    const again = await post(hub, { key: key.key, body: { id: 'SN-0001' } });
    assert.equal(again.status, 200);
    assert.deepEqual(again.body, { ...first.body, created: false });
  });

  it('the device can be provisioned without a name: its name is its id', async () => {
    const r = await post(hub, { key: key.key, body: { id: 'SN-0002' } });
    assert.equal(r.status, 201);
    assert.equal(r.body.name, 'SN-0002');
    assert.equal(r.body.email, null);
  });

  it('refuses a body with a bad or unknown field with 400 CR_ERR_VALIDATION, naming the field', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{}, /id: a string is required/],
      [{ id: 42 }, /id: a string is required/],
      [{ id: 'has space' }, /id: a device id is 1-128 characters/],
      [{ id: 'x'.repeat(129) }, /id: a device id is 1-128 characters/],
      [{ id: 'ok-id', name: 'n'.repeat(129) }, /name: a device name has at most 128 characters/],
      [{ id: 'ok-id', name: 'bell\u0007' }, /name: a device name must not contain control characters/],
      [{ id: 'ok-id', name: 7 }, /name: must be a string/],
      [{ id: 'ok-id', email: 'not-an-email' }, /email: not an email address/],
      [{ id: 'ok-id', email: `${'a'.repeat(250)}@example.com` }, /email: an email address has at most 254 characters/],
      [{ id: 'ok-id', secret: 'chosen by the factory' }, /unknown field "secret"/],
      [['ok-id'], /the body must be a JSON object/],
    ];
    for (const [body, message] of cases) {
      const r = await post(hub, { key: key.key, body });
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error?.code, 'CR_ERR_VALIDATION');
      assert.match(r.body.error!.message, message);
    }
    const badJson = await post(hub, { key: key.key, raw: '{"id":' });
    assert.equal(badJson.body.error?.code, 'CR_ERR_INVALID_JSON');
    const tooLarge = await post(hub, { key: key.key, body: { id: 'big', name: 'x'.repeat(5000) } });
    assert.equal(tooLarge.status, 413);
    assert.equal(tooLarge.body.error?.code, 'CR_ERR_BODY_TOO_LARGE');
    const devices = await cloudrest(['devices', 'list', '--data', data.path, '--json']);
    assert.ok(!devices.stdout.includes('ok-id'), 'nothing was registered');
  });

  it('answers 409 for an id another key provisioned, and for a revoked device', async () => {
    const other = await addFactoryKey(data.path, 'Other plant');
    const taken = await post(hub, { key: other.key, body: { id: 'SN-0001' } });
    assert.equal(taken.status, 409);
    assert.equal(taken.body.error?.code, 'CR_ERR_DEVICE_ID_TAKEN');
    assert.equal((await cloudrest(['devices', 'revoke', 'SN-0002', '--data', data.path])).code, 0);
    const revoked = await post(hub, { key: key.key, body: { id: 'SN-0002' } });
    assert.equal(revoked.status, 409);
    assert.equal(revoked.body.error?.code, 'CR_ERR_DEVICE_REVOKED');
  });

  it('checks the key before the body: without one, 401 whatever the body', async () => {
    const none = await post(hub, { from: '127.0.0.5', raw: 'not json at all', contentType: 'text/plain' });
    assert.equal(none.status, 401);
    assert.equal(none.body.error?.code, 'CR_ERR_FACTORY_KEY_INVALID');
  });

  it('after too many bad keys an address waits (429, Retry-After), even with a good key; other addresses carry on', async () => {
    const from = '127.0.0.2';
    for (let i = 0; i < 3; i++) {
      const r = await post(hub, { from, key: `crfk_guess-${i}`, body: { id: 'guess' } });
      assert.equal(r.status, 401);
    }
    const blocked = await post(hub, { from, key: 'crfk_guess-4', body: { id: 'guess' } });
    assert.equal(blocked.status, 429);
    assert.equal(blocked.body.error?.code, 'CR_ERR_RATE_LIMITED');
    const retryAfter = Number(blocked.headers['retry-after']);
    assert.ok(retryAfter > 0 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    const goodKey = await post(hub, { from, key: key.key, body: { id: 'SN-0003' } });
    assert.equal(goodKey.status, 429, 'a blocked address gets no more tries, right key or not');
    const elsewhere = await post(hub, { from: '127.0.0.3', key: key.key, body: { id: 'SN-0003' } });
    assert.equal(elsewhere.status, 201);
    const { stdout } = await curl([`${hub.url}/metrics`]);
    assert.match(stdout, /cloudrest_factory_requests_total\{result="rate_limited"\} 2/);
    assert.match(stdout, /cloudrest_factory_requests_total\{result="created"\} 3/);
    assert.ok(hub.logs('factory request refused: bad factory key').length >= 4);
  });

  it('200 concurrent bad keys from one address: at most the limit (3) are looked up and refused with 401, the rest get 429', async () => {
    const answers = await Promise.all(Array.from({ length: 200 }, (_, i) => post(hub, { from: '127.0.0.4', key: `crfk_burst-${i}`, body: { id: 'guess' } })));
    const refused = answers.filter((a) => a.status === 401).length;
    const limited = answers.filter((a) => a.status === 429);
    assert.ok(refused <= 3, `${refused} bad keys were looked up, the limit is 3`);
    assert.equal(refused + limited.length, 200);
    assert.ok(limited.every((a) => a.body.error?.code === 'CR_ERR_RATE_LIMITED' && Number(a.headers['retry-after']) >= 1));
  });
});
