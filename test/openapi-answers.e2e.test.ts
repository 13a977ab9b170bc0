// Real exchanges with a hub, each held to its operation in docs/openapi.json: an account made from a
// confirmation link, a device registered at the factory, sign-in, devices, tokens, the relay, event
// streams, MQTT over HTTP and a whole OAuth 2.0 authorization; then every operation tried with OAuth
// tokens of each scope, against the scopes the document gives it.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sha256Hex } from '../src/core/secrets.js';
import { addFactoryKey } from './support/factory.js';
import { startInProcessHub, type InProcessHub } from './support/in-process-hub.js';
import { registerClient, type Client } from './support/oauth.js';
import { SseClient } from './support/sse-client.js';
import { DocumentSchemas, exampleBody, exampleUrl, findOperation, operations, readDocument, resolve, send, type Answer, type Obj } from './support/openapi.js';

const doc = readDocument();
const schemas = new DocumentSchemas(doc);
const SCOPES = ['devices:read', 'devices:control', 'events:read'] as const;
const REDIRECT = 'https://automations.example/cb';

describe('real answers fit the OpenAPI document', () => {
  let h: InProcessHub;
  let token: string;
  let deviceId: string;
  let client: Client;

  /** Sends a request to the operation `method template` at `path` and asserts the answer is as documented. */
  const call = async (method: string, template: string, o: { path?: string; token?: string; json?: unknown; form?: Record<string, string>; headers?: Record<string, string>; raw?: string; stopAfterHead?: boolean } = {}): Promise<Answer & { json: () => Obj }> => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.token) headers.authorization = `Bearer ${o.token}`;
    let body: string | undefined = o.raw;
    if (o.json !== undefined) [headers['content-type'], body] = ['application/json', JSON.stringify(o.json)];
    if (o.form) [headers['content-type'], body] = ['application/x-www-form-urlencoded', new URLSearchParams(o.form).toString()];
    const answer = await send(`${h.url}${o.path ?? template}`, { method, headers, body, stopAfterHead: o.stopAfterHead });
    assert.deepEqual(schemas.checkAnswer(findOperation(doc, method, template), answer), [], `${method} ${o.path ?? template}: ${answer.text.slice(0, 300)}`);
    return Object.assign(answer, { json: () => JSON.parse(answer.text) as Obj });
  };

  /** An OAuth access token of `scope` for the user, through the first-party consent flow and the token endpoint. */
  const oauthToken = async (scope: string): Promise<string> => {
    const request = { response_type: 'code', client_id: client.client_id, redirect_uri: REDIRECT, scope, state: 's1' };
    const checked = await call('POST', '/v1/oauth/authorize/validate', { json: request });
    assert.equal(checked.status, 200);
    const decided = await call('POST', '/v1/oauth/authorize', { token, json: { ...request, decision: 'allow' } });
    assert.equal(decided.status, 200);
    const code = new URL(String(decided.json().redirect_to)).searchParams.get('code')!;
    const basic = { authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret!}`).toString('base64')}` };
    const tokens = await call('POST', '/v1/oauth/token', { headers: basic, form: { grant_type: 'authorization_code', code, redirect_uri: REDIRECT } });
    assert.equal(tokens.status, 200);
    return String(tokens.json().access_token);
  };

  before(async () => {
    h = await startInProcessHub();
    client = await registerClient(h.data, 'Home automations', [REDIRECT], true);
  });
  after(async () => {
    await h?.stop();
  });

  it('accounts, factory provisioning, devices, tokens and the relay answer as documented', async () => {
    // The link a device's first connection mails to its owner.
    const confirmationId = randomBytes(32).toString('base64url');
    const email = 'owner@example.com';
    await h.hub.store.createConfirmation({ idHash: sha256Hex(confirmationId), email, deviceId: null, createdAt: Date.now(), expiresAt: Date.now() + 3_600_000 });
    const link = `/v1/confirmation?confirmationId=${confirmationId}`;
    assert.equal((await call('GET', '/v1/confirmation', { path: link, headers: { accept: 'application/json' } })).status, 200);
    assert.equal((await call('GET', '/v1/confirmation', { path: link, headers: { accept: 'text/html' } })).status, 200);
    assert.equal((await call('POST', '/v1/confirmation', { json: { confirmationId, password: 'correct horse battery', passwordRepeat: 'correct horse battery' } })).status, 201);
    assert.equal((await call('POST', '/v1/confirmation', { json: { confirmationId, password: 'correct horse battery' } })).status, 410);

    const key = (await addFactoryKey(h.data)).key;
    const provisioned = await call('POST', '/v1/factory/devices', { token: key, json: { id: 'SN-0001', name: 'Thermostat', email } });
    assert.equal(provisioned.status, 201);
    deviceId = String(provisioned.json().id);
    assert.equal((await call('POST', '/v1/factory/devices', { token: key, json: { id: 'SN-0001' } })).status, 200);
    assert.equal((await call('POST', '/v1/factory/devices', { token: 'crfk_wrong', json: { id: 'SN-0002' } })).status, 401);

    const login = await call('POST', '/v1/auth', { json: { email, password: 'correct horse battery', remember: true } });
    assert.equal(login.status, 200);
    token = String(login.json().access_token);
    assert.deepEqual((login.json().devices as Obj[]).map((d) => d.id), [deviceId]);
    assert.equal((await call('POST', '/v1/auth', { json: { email, password: 'wrong password' } })).status, 401);
    assert.equal((await call('POST', '/v1/auth', { raw: '{"email":', headers: { 'content-type': 'application/json' } })).status, 400);

    assert.equal((await call('GET', '/v1/devices', { token })).status, 200);
    assert.equal((await call('GET', '/v1/devices/list', { token })).status, 200);
    assert.equal((await call('GET', '/v1/devices/{id}', { path: `/v1/devices/${deviceId}`, token })).status, 200);
    assert.equal((await call('GET', '/v1/devices/{id}', { path: '/v1/devices/not-mine', token })).status, 404);
    assert.equal((await call('GET', '/v1/devices/{id}/auth', { path: `/v1/devices/${deviceId}/auth`, token })).status, 200);
    assert.equal((await call('POST', '/v1/devices/{id}/auth', { path: `/v1/devices/${deviceId}/auth`, token, json: { password: 'device password' } })).status, 409);
    assert.equal((await call('DELETE', '/v1/devices/{id}/auth', { path: `/v1/devices/${deviceId}/auth`, token })).status, 204);
    assert.equal((await call('GET', '/v1/auth/tokens', { token })).status, 200);
    assert.equal((await call('DELETE', '/v1/auth/tokens/{id}', { path: '/v1/auth/tokens/0000000000000000', token })).status, 404);
    assert.equal((await call('POST', '/v1/auth/password', { token, json: { current: 'not it', new: 'a new long password' } })).status, 401);
    // The device has no tunnel: the relay's own 503, not a device's answer.
    const relayed = await call('GET', '/v1/devices/{id}/api/{path}', { path: `/v1/devices/${deviceId}/api/temperature`, token });
    assert.equal(relayed.status, 503);
    assert.equal((relayed.json().error as Obj).code, 'CR_ERR_DEVICE_OFFLINE');
    assert.equal((await call('GET', '/healthz')).status, 200);
    assert.equal((await call('GET', '/readyz')).status, 200);
    assert.equal((await call('GET', '/.well-known/oauth-authorization-server')).status, 200);
  });

  it('event streams and MQTT over HTTP answer as documented, event by event', async () => {
    const sseSchema = (template: string, event: string) => {
      const o = findOperation(doc, 'GET', template);
      const media = resolve(doc, `${o.pointer}/responses/200/content/text~1event-stream`);
      return `${media.pointer}/x-sse-events/${event}`;
    };
    assert.equal((await call('GET', '/v1/events', { token, stopAfterHead: true })).status, 200);
    const events = await SseClient.open(`${h.url}/v1/devices/${deviceId}/events`, { authorization: `Bearer ${token}` });
    const [status] = await events.until((e) => e.length > 0);
    events.close();
    assert.equal(status!.event, 'status');
    assert.deepEqual(schemas.problems(sseSchema('/v1/devices/{id}/events', 'status'), JSON.parse(status!.data)), []);
    assert.equal((await call('GET', '/v1/events', { path: '/v1/events?lastEventId=x', token })).status, 400);

    const topic = `devices/${deviceId}/state`;
    assert.equal((await call('POST', '/v1/topics/{topic}', { path: `/v1/topics/${topic}?qos=1&retain=true`, token, raw: 'on', headers: { 'content-type': 'text/plain' } })).status, 200);
    assert.equal((await call('POST', '/v1/topics/{topic}', { path: `/v1/topics/${topic}?qos=2`, token, raw: 'on' })).status, 400);
    assert.equal((await call('POST', '/v1/topics/{topic}', { path: '/v1/topics/devices/someone-else/state', token, raw: 'on' })).status, 403);
    const filter = `/v1/topics/events?filter=${encodeURIComponent(`devices/${deviceId}/#`)}`;
    assert.equal((await call('GET', '/v1/topics/events', { path: filter, token, stopAfterHead: true })).status, 200);
    const messages = await SseClient.open(`${h.url}${filter}`, { authorization: `Bearer ${token}` });
    const [message] = await messages.until((e) => e.length > 0);
    messages.close();
    assert.equal(message!.event, 'message');
    assert.deepEqual(schemas.problems(sseSchema('/v1/topics/events', 'message'), JSON.parse(message!.data)), []);
  });

  it('a whole OAuth 2.0 authorization answers as documented', async () => {
    const access = await oauthToken('devices:read');
    const basic = { authorization: `Basic ${Buffer.from(`${client.client_id}:${client.client_secret!}`).toString('base64')}` };
    const introspected = await call('POST', '/v1/oauth/token/validate', { headers: basic, form: { token: access } });
    assert.equal(introspected.json().active, true);
    assert.equal((await call('GET', '/v1/devices', { token: access })).status, 200);
    const grants = await call('GET', '/v1/oauth/grants', { token });
    assert.deepEqual((grants.json().grants as Obj[]).map((g) => g.client_id), [client.client_id]);
    assert.equal((await call('POST', '/v1/oauth/token', { headers: basic, form: { grant_type: 'password' } })).status, 400);
    assert.equal((await call('POST', '/v1/oauth/revoke', { headers: basic, form: { token: access } })).status, 200);
    assert.equal((await call('GET', '/v1/devices', { token: access })).status, 401);
    assert.equal((await call('DELETE', '/v1/oauth/grants/{clientId}', { path: `/v1/oauth/grants/${client.client_id}`, token })).status, 204);
    assert.equal((await call('DELETE', '/v1/oauth/grants/{clientId}', { path: `/v1/oauth/grants/${client.client_id}`, token })).status, 404);
  });

  it('every operation takes OAuth tokens of exactly the scopes the document gives it', async () => {
    const tokens = Object.fromEntries(await Promise.all(SCOPES.map(async (s) => [s, await oauthToken(s)] as const)));
    const problems: string[] = [];
    let tried = 0;
    for (const o of operations(doc)) {
      const security = (o.op.security as Array<Record<string, string[]>> | undefined) ?? [];
      if (!security.some((r) => 'bearerAuth' in r)) continue; // public, factory-key or client-authenticated
      const allowed = new Set(security.flatMap((r) => r.oauth2 ?? []));
      const body = exampleBody(o);
      for (const scope of SCOPES) {
        const headers: Record<string, string> = { authorization: `Bearer ${tokens[scope]!}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) };
        const answer = await send(`${h.url}${exampleUrl(doc, o)}`, { method: o.method, headers, body: body === undefined ? undefined : JSON.stringify(body), stopAfterHead: true });
        tried++;
        const code = answer.text.startsWith('{') ? (JSON.parse(answer.text) as { error?: { code?: string } }).error?.code : undefined;
        const refused = answer.status === 403 && (o.method === 'head' || code === 'CR_ERR_INSUFFICIENT_SCOPE');
        if (answer.status === 401 || refused === allowed.has(scope)) {
          problems.push(`${o.method.toUpperCase()} ${o.path} with ${scope}: ${answer.status} ${code ?? ''} (document allows ${[...allowed].join(', ') || 'first-party tokens only'})`);
        }
        problems.push(...schemas.checkAnswer(o, answer));
      }
    }
    assert.ok(tried >= 60, `${tried} requests`);
    assert.deepEqual(problems, []);
  });
});
