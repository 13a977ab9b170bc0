import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, sign } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { FrameType, PROTOCOL_VERSION, encodeFrame, type Frame } from '../src/relay/protocol/frames.js';
import { FrameParser } from '../src/relay/protocol/parser.js';
import { encodeClaims, parseSignedToken } from '../src/relay/protocol/signed-token.js';
import { addDevice, addUser, curl, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';

const run = promisify(execFile);
const OWNER = 'owner@example.com';
const OTHER = 'other@example.com';
const PASSWORD = 'correct horse battery';

/** curl against the agent's LAN port: status and parsed JSON body. */
async function lan(url: string, token: string | undefined, extra: string[] = []): Promise<{ status: number; body: Record<string, unknown>; head: string }> {
  const auth = token === undefined ? [] : ['-H', `Authorization: Bearer ${token}`];
  const { stdout } = await curl(['-i', ...auth, ...extra, url]);
  const sep = stdout.indexOf('\r\n\r\n');
  const head = stdout.slice(0, sep);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
  return { status, head, body: JSON.parse(stdout.slice(sep + 4)) as Record<string, unknown> };
}

function errorCode(r: { body: Record<string, unknown> }): string {
  return (r.body.error as { code: string } | undefined)?.code ?? '';
}

async function until(what: string, ok: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('LAN access: the device serves its REST API on the LAN with the hub\'s tokens, hub or no hub', () => {
  const data = tempDir();
  const state = tempDir('cloudrest-agent-state-');
  let hub: HubProc;
  let device: Proc & { url: string };
  let agent: Proc;
  let deviceId: string;
  let secret: string;
  let token: string;
  let base: string;
  /** Revoked in one test, checked after the agent restarts in the next. */
  let revokedToken = '';

  const startLanAgent = async (extra: string[] = [], waitConnected = true): Promise<Proc> => {
    const p = await startAgent({
      hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId, secret, api: device.url, waitConnected,
      extra: ['--lan-port', '0', '--lan-host', '127.0.0.1', '--state-dir', state.path, ...extra],
    });
    const started = await p.waitForLog('agent starting');
    base = `${extra.includes('--lan-tls-cert') ? 'https' : 'http'}://127.0.0.1:${started.lanPort as number}`;
    return p;
  };

  before(async () => {
    await addUser(data.path, OWNER, PASSWORD);
    await addUser(data.path, OTHER, PASSWORD);
    ({ id: deviceId, secret } = await addDevice(data.path, 'Thermostat', OWNER));
    // Short-lived tokens by default (the expiry test); `remember` ones last 30 days.
    hub = await startHub(data.path, ['--token-ttl-ms', '2500']);
    device = await startDevice(OWNER);
    agent = await startLanAgent();
    await agent.waitForLog('LAN access: hub token keys stored');
    token = await login(hub.url, OWNER, PASSWORD, true);
  });

  after(async () => {
    await Promise.all([agent?.stop(), device?.stop()]);
    await hub?.stop();
    data.remove();
    state.remove();
  });

  it('issues signed cr1 tokens and keeps the signing key private (mode 0600) in the data dir', async () => {
    const parsed = parseSignedToken(token);
    assert.ok(parsed, `not a signed token: ${token.slice(0, 20)}…`);
    assert.equal(parsed.claims.email, OWNER);
    assert.ok(parsed.claims.expiresAt > Date.now() + 7 * 24 * 3600_000);
    assert.equal(statSync(join(data.path, 'token-signing-key.pem')).mode & 0o777, 0o600);
    // The agent writes its state a moment after the keys arrive.
    await until('the agent to save its LAN state', async () => existsSync(join(state.path, 'lan-trust.json')));
    assert.equal(statSync(join(state.path, 'lan-trust.json')).mode & 0o777, 0o600);
  });

  it('answers a LAN client (curl) holding the hub\'s token, on the device\'s own paths and the hub\'s form', async () => {
    const r = await lan(`${base}/temperature`, token);
    assert.equal(r.status, 200);
    assert.equal(typeof r.body.celsius, 'number');
    const hubForm = await lan(`${base}/v1/devices/${deviceId}/api/echo?x=1`, token, ['-H', 'X-Custom: yes']);
    assert.equal(hubForm.status, 200);
    const echo = hubForm.body as { url: string; headers: Record<string, string> };
    assert.equal(echo.url, '/echo?x=1');
    assert.equal(echo.headers['x-custom'], 'yes');
    assert.equal(echo.headers.authorization, undefined, 'the access token is not passed to the device');
    assert.equal(echo.headers['x-forwarded-for'], '127.0.0.1');
  });

  it('refuses a missing, opaque, tampered, foreign-key, expired or not-owner token with the hub\'s codes', async () => {
    const none = await lan(`${base}/temperature`, undefined);
    assert.equal(none.status, 401);
    assert.equal(errorCode(none), 'CR_ERR_UNAUTHORIZED');
    assert.match(none.head, /www-authenticate: Bearer/i);

    const opaque = await lan(`${base}/temperature`, 'x'.repeat(43));
    assert.equal(opaque.status, 401);
    assert.equal(errorCode(opaque), 'CR_ERR_UNAUTHORIZED');

    // The owner's token with the claims rewritten (a longer life) and the original signature: forged.
    const parsed = parseSignedToken(token)!;
    const [, , sig] = token.split('.');
    const tampered = `cr1.${encodeClaims({ ...parsed.claims, expiresAt: parsed.claims.expiresAt + 3600_000 })}.${sig}`;
    const forged = await lan(`${base}/temperature`, tampered);
    assert.equal(forged.status, 401);
    assert.match(String((forged.body.error as { message: string }).message), /signature/);

    // Well-formed claims signed by a key that is not the hub's, under the hub's key id.
    const { privateKey } = generateKeyPairSync('ed25519');
    const signed = `cr1.${encodeClaims({ ...parsed.claims, tokenId: 'foreign' })}`;
    const foreign = `${signed}.${sign(null, Buffer.from(signed), privateKey).toString('base64url')}`;
    const foreignKey = await lan(`${base}/temperature`, foreign);
    assert.equal(foreignKey.status, 401);
    assert.equal(errorCode(foreignKey), 'CR_ERR_UNAUTHORIZED');

    const shortLived = await login(hub.url, OWNER, PASSWORD, false);
    assert.equal((await lan(`${base}/temperature`, shortLived)).status, 200, 'valid before it expires');
    await new Promise((r) => setTimeout(r, parseSignedToken(shortLived)!.claims.expiresAt - Date.now() + 50));
    const expired = await lan(`${base}/temperature`, shortLived);
    assert.equal(expired.status, 401);
    assert.match(String((expired.body.error as { message: string }).message), /expired/);

    const otherToken = await login(hub.url, OTHER, PASSWORD, true);
    const notOwner = await lan(`${base}/temperature`, otherToken);
    assert.equal(notOwner.status, 403);
    assert.equal(errorCode(notOwner), 'CR_ERR_FORBIDDEN');
  });

  it('drops the hub\'s cached answer when a LAN write changes it: HIT, LAN PUT, then a MISS with the new body', async () => {
    const viaHub = async (): Promise<{ cache: string | null; body: unknown }> => {
      const r = await fetch(`${hub.url}/v1/devices/${deviceId}/api/settings`, { headers: { authorization: `Bearer ${token}` } });
      return { cache: r.headers.get('x-cache'), body: await r.json() };
    };
    assert.equal((await viaHub()).cache, 'MISS');
    const cached = await viaHub();
    assert.equal(cached.cache, 'HIT');
    assert.deepEqual(cached.body, { mode: 'auto' });

    const put = await lan(`${base}/settings`, token, ['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', '{"mode":"eco"}']);
    assert.equal(put.status, 200);
    // INVALIDATE leaves the agent before the LAN answer does; a moment for the hub to read it.
    await new Promise((r) => setTimeout(r, 200));
    const after = await viaHub();
    assert.equal(after.cache, 'MISS');
    assert.deepEqual(after.body, { mode: 'eco' });
  });

  it('speaks the old protocol with an agent that does not list the "lan" feature: WELCOME, then no LAN frame', async () => {
    const legacy = await addDevice(data.path, 'Legacy', OWNER);
    const frames: Frame[] = [];
    const parser = new FrameParser(1 << 20);
    const socket = connect(hub.tunnelPort, '127.0.0.1');
    socket.on('data', (c: Buffer) => parser.push(c, (f) => frames.push(f)));
    const hello = { version: PROTOCOL_VERSION, deviceId: legacy.id, secret: legacy.secret, bootId: 'old', info: { email: OWNER }, maxFrameBytes: 65536, windowBytes: 65536, maxStreams: 4 };
    for (const b of encodeFrame(FrameType.HELLO, 0, 0, Buffer.from(JSON.stringify(hello)))) socket.write(b);
    await until('WELCOME', async () => frames.length > 0);
    const welcome = JSON.parse(frames[0]!.payload.toString()) as { features?: string[] };
    assert.equal(frames[0]!.type, FrameType.WELCOME);
    assert.deepEqual(welcome.features, ['lan'], 'a new hub says what it speaks; an old agent ignores unknown keys');
    for (const b of encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8))) socket.write(b);
    await until('PONG', async () => frames.some((f) => f.type === FrameType.PONG));
    assert.deepEqual(frames.map((f) => f.type), [FrameType.WELCOME, FrameType.PONG]);
    socket.destroy();
  });

  it('refuses on the LAN a token revoked at the hub (logout), once the hub has told the agent', async () => {
    const t = await login(hub.url, OWNER, PASSWORD, true);
    assert.equal((await lan(`${base}/temperature`, t)).status, 200);
    const out = await fetch(`${hub.url}/v1/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${t}` } });
    assert.equal(out.status, 204);
    let r = await lan(`${base}/temperature`, t);
    await until('the revocation to reach the agent', async () => (r = await lan(`${base}/temperature`, t)).status === 401);
    assert.equal(errorCode(r), 'CR_ERR_UNAUTHORIZED');
    assert.match(String((r.body.error as { message: string }).message), /revoked/);
    // Kept for the next test: a revocation must survive a restart without the hub.
    revokedToken = t;
  });

  it('learns at connect the tokens revoked while it was away (the hub\'s list for the owner)', async () => {
    const t = await login(hub.url, OWNER, PASSWORD, true);
    await agent.stop();
    const out = await fetch(`${hub.url}/v1/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${t}` } });
    assert.equal(out.status, 204);
    agent = await startLanAgent();
    // The agent's own disk knows nothing of this revocation; only the hub's list at connect does.
    await until('the list at connect to arrive', async () => (await lan(`${base}/temperature`, t)).status === 401);
    assert.equal((await lan(`${base}/temperature`, token)).status, 200, 'the other tokens still work');
  });

  it('keeps serving the LAN with the hub stopped, and after the agent restarts (over HTTPS) with no hub at all', async () => {
    await hub.stop();
    const r = await lan(`${base}/temperature`, token);
    assert.equal(r.status, 200, 'the hub is gone; the token is checked on the device');

    // A device reboot with no internet: the keys, revocations and owner come from --state-dir.
    await agent.stop();
    const certDir = tempDir('cloudrest-lan-tls-');
    const cert = join(certDir.path, 'cert.pem');
    const key = join(certDir.path, 'key.pem');
    await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert]);
    try {
      agent = await startLanAgent(['--lan-tls-cert', cert, '--lan-tls-key', key], false);
      assert.equal(agent.logs('connected').length, 0, 'no hub to connect to');
      const tls = await lan(`${base}/temperature`, token, ['--cacert', cert]);
      assert.equal(tls.status, 200);
      assert.equal(typeof tls.body.celsius, 'number');
      const revoked = await lan(`${base}/temperature`, revokedToken, ['--cacert', cert]);
      assert.equal(revoked.status, 401, 'the revocation was kept on disk');
      const noToken = await lan(`${base}/temperature`, undefined, ['--cacert', cert]);
      assert.equal(noToken.status, 401);
    } finally {
      certDir.remove();
    }
  });
});
