import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { confirmationLink, outboxFiles, waitForOutbox } from './support/mail.js';
import { addDevice, addUser, curl, login, startAgent, startDevice, startHub, tempDir, type HubProc, type Proc } from './support/procs.js';
import { startSmtpSink, type SmtpSink } from './support/smtp-sink.js';

const EMAIL = 'new.owner@example.com';
const PASSWORD = 'my chosen password';

interface Rig {
  data: { path: string; remove(): void };
  hub: HubProc;
  device: Proc & { url: string };
  agent: Proc;
  deviceId: string;
  secret: string;
  stop(): Promise<void>;
}

/** A hub and a device (REST service + agent) whose info reports `email`, which no user has. */
async function startRig(email: string, hubArgs: string[] = []): Promise<Rig> {
  const data = tempDir();
  const { id, secret } = await addDevice(data.path, 'Living room');
  const hub = await startHub(data.path, hubArgs);
  const device = await startDevice(email);
  const agent = await startAgent({ hub: `tcp://127.0.0.1:${hub.tunnelPort}`, deviceId: id, secret, api: device.url });
  const rig: Rig = {
    data, hub, device, agent, deviceId: id, secret,
    async stop() {
      await Promise.all([rig.agent.stop(), rig.device.stop()]);
      await rig.hub.stop();
      data.remove();
    },
  };
  return rig;
}

async function errorCode(r: Response): Promise<string> {
  return ((await r.json()) as { error: { code: string } }).error.code;
}

/** Posts the confirmation form as a browser does (application/x-www-form-urlencoded), with curl. */
async function postForm(url: string, fields: Record<string, string>): Promise<{ status: number; body: string }> {
  const args = Object.entries(fields).flatMap(([k, v]) => ['--data-urlencode', `${k}=${v}`]);
  const { stdout } = await curl(['-i', ...args, url]);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(stdout)![1]);
  return { status, body: stdout.slice(stdout.indexOf('\r\n\r\n') + 4) };
}

describe('registration from the device, mail written to the outbox (no mail server)', () => {
  let r: Rig;
  let link: string;
  before(async () => {
    r = await startRig(EMAIL);
    await addUser(r.data.path, 'other@example.com', 'another password');
  });
  after(async () => {
    await r?.stop();
  });

  it('writes a confirmation mail for the new email to the outbox, readable by the hub user only, and logs the link', async () => {
    const logged = await r.hub.waitForLog('confirmation mail queued', (l) => l.deviceId === r.deviceId);
    assert.equal(logged.email, EMAIL);
    const [first] = await waitForOutbox(join(r.data.path, 'outbox'), 1);
    const to = first!.mail.to;
    assert.equal(to && !Array.isArray(to) ? to.text : '', EMAIL);
    assert.match(first!.mail.subject ?? '', /Confirm your email/);
    assert.match(first!.mail.text ?? '', /"Demo thermostat" \(d_[a-z2-7]{16}\) names new\.owner@example\.com as its owner/);
    link = confirmationLink(first!.mail);
    assert.equal(logged.link, link);
    assert.ok(link.startsWith(`${r.hub.url}/v1/confirmation?confirmationId=`), 'links point at the hub\'s own URL without --public-url');
    assert.equal(statSync(first!.file).mode & 0o777, 0o600);
    assert.ok(first!.mail.html && first!.mail.html.includes('href="'), 'an HTML part with the link too');
  });

  it('leaves the device reachable by nobody until the email is confirmed', async () => {
    const noUser = await fetch(`${r.hub.url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: EMAIL, password: PASSWORD }) });
    assert.equal(noUser.status, 401);
    const other = await login(r.hub.url, 'other@example.com', 'another password');
    const list = await fetch(`${r.hub.url}/v1/devices`, { headers: { authorization: `Bearer ${other}` } });
    assert.deepEqual(await list.json(), { devices: [] });
    const relayed = await fetch(`${r.hub.url}/v1/devices/${r.deviceId}/api/temperature`, { headers: { authorization: `Bearer ${other}` } });
    assert.equal(relayed.status, 404);
    assert.equal(await errorCode(relayed), 'CR_ERR_DEVICE_NOT_FOUND');
  });

  it('does not mail again when the device reconnects', async () => {
    await r.agent.stop();
    r.agent = await startAgent({ hub: `tcp://127.0.0.1:${r.hub.tunnelPort}`, deviceId: r.deviceId, secret: r.secret, api: r.device.url });
    const held = await r.hub.waitForLog('confirmation mail held back', (l) => l.deviceId === r.deviceId);
    assert.equal(held.reason, 'sent recently');
    assert.equal(r.hub.logs('device connected').length, 2);
    assert.equal(outboxFiles(join(r.data.path, 'outbox')).length, 1);
  });

  it('answers a wrong confirmation id with a clear page or JSON error', async () => {
    const wrong = `${r.hub.url}/v1/confirmation?confirmationId=${'A'.repeat(43)}`;
    const page = await fetch(wrong);
    assert.equal(page.status, 404);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    assert.match(await page.text(), /This link is not valid/);
    const asJson = await fetch(wrong, { headers: { accept: 'application/json' } });
    assert.equal(asJson.status, 404);
    assert.equal(await errorCode(asJson), 'CR_ERR_CONFIRMATION_INVALID');
    const missing = await fetch(`${r.hub.url}/v1/confirmation`, { headers: { accept: 'application/json' } });
    assert.equal(await errorCode(missing), 'CR_ERR_CONFIRMATION_INVALID');
    const post = await fetch(`${r.hub.url}/v1/confirmation`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ confirmationId: 'x'.repeat(43), password: PASSWORD }) });
    assert.equal(post.status, 404);
    assert.equal(await errorCode(post), 'CR_ERR_CONFIRMATION_INVALID');
  });

  it('shows a password form behind the link; posting it as a browser would creates the user', async () => {
    const page = await fetch(link);
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('referrer-policy'), 'no-referrer', 'the page URL carries the id');
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'.*form-action 'self'/);
    assert.equal(page.headers.get('cache-control'), 'no-store');
    const html = await page.text();
    const id = new URL(link).searchParams.get('confirmationId')!;
    assert.match(html, new RegExp(`<form method="post" action="confirmation">`));
    assert.match(html, new RegExp(`name="confirmationId" value="${id}"`));
    assert.match(html, /new\.owner@example\.com/);

    const action = new URL('confirmation', link).toString(); // where the browser posts the form
    const mismatch = await postForm(action, { confirmationId: id, password: PASSWORD, passwordRepeat: 'something else' });
    assert.equal(mismatch.status, 400);
    assert.match(mismatch.body, /The two passwords differ/);
    const short = await postForm(action, { confirmationId: id, password: 'short', passwordRepeat: 'short' });
    assert.equal(short.status, 400);
    assert.match(short.body, /at least 8 characters/);
    const notYet = await fetch(`${r.hub.url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: EMAIL, password: 'short' }) });
    assert.equal(notYet.status, 401, 'a refused form created nothing');

    const done = await postForm(action, { confirmationId: id, password: PASSWORD, passwordRepeat: PASSWORD });
    assert.equal(done.status, 200);
    assert.match(done.body, /Email confirmed/);
    await r.hub.waitForLog('email confirmed; user created');

    const token = await login(r.hub.url, EMAIL, PASSWORD);
    const list = await fetch(`${r.hub.url}/v1/devices`, { headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual(((await list.json()) as { devices: Array<{ id: string; online: boolean }> }).devices.map((d) => [d.id, d.online]), [[r.deviceId, true]]);
    const relayed = await fetch(`${r.hub.url}/v1/devices/${r.deviceId}/api/device`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(((await relayed.json()) as { email: string }).email, EMAIL);
  });

  it('answers a used link as used and changes nothing', async () => {
    const page = await fetch(link);
    assert.equal(page.status, 410);
    assert.match(await page.text(), /already confirmed/);
    const again = await fetch(`${r.hub.url}/v1/confirmation`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ confirmationId: new URL(link).searchParams.get('confirmationId'), password: 'a different password' }),
    });
    assert.equal(again.status, 410);
    assert.equal(await errorCode(again), 'CR_ERR_CONFIRMATION_USED');
    await login(r.hub.url, EMAIL, PASSWORD); // the first password still works
  });
});

describe('registration through a real SMTP server', () => {
  let sink: SmtpSink;
  let r: Rig;
  before(async () => {
    sink = await startSmtpSink();
    sink.rejectNext(1, 451); // the first attempt meets a temporary failure
    r = await startRig('smtp.owner@example.com', ['--smtp-url', sink.url, '--mail-from', 'Hub <hub@example.com>', '--mail-retry-ms', '200']);
  });
  after(async () => {
    await r?.stop();
    await sink?.close();
  });

  it('delivers the confirmation mail after a retry; following its link with JSON confirms the email', async () => {
    const [received] = await sink.waitFor(1);
    assert.equal(sink.attempts, 2, 'one refused attempt, then the retry');
    const retried = await r.hub.waitForLog('mail delivery failed; will retry');
    assert.match(String(retried.err), /451/);
    assert.deepEqual(received!.envelopeTo, ['smtp.owner@example.com']);
    assert.equal(received!.parsed.from?.text, '"Hub" <hub@example.com>');
    const link = confirmationLink(received!.parsed);
    const queued = r.hub.logs('confirmation mail queued')[0]!;
    assert.equal(queued.link, undefined, 'with a mail server, the link is not written to the log');
    assert.equal(outboxFiles(join(r.data.path, 'outbox')).length, 0);

    const state = await fetch(link, { headers: { accept: 'application/json' } });
    assert.equal(state.status, 200);
    const info = (await state.json()) as { email: string; expires: string };
    assert.equal(info.email, 'smtp.owner@example.com');
    assert.ok(Date.parse(info.expires) > Date.now() + 47 * 3_600_000, 'the link works for 48 hours by default');

    const confirmed = await fetch(new URL('confirmation', link), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ confirmationId: new URL(link).searchParams.get('confirmationId'), password: PASSWORD }),
    });
    assert.equal(confirmed.status, 201);
    assert.deepEqual(await confirmed.json(), { email: 'smtp.owner@example.com', confirmed: true });
    const token = await login(r.hub.url, 'smtp.owner@example.com', PASSWORD);
    const relayed = await fetch(`${r.hub.url}/v1/devices/${r.deviceId}/api/temperature`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(relayed.status, 200);
  });
});

describe('an expired confirmation link', () => {
  let r: Rig;
  before(async () => {
    r = await startRig('late.owner@example.com', ['--confirmation-ttl-ms', '3000', '--confirmation-resend-ms', '0']);
  });
  after(async () => {
    await r?.stop();
  });

  it('says it expired, offers a new link, and the new one works', async () => {
    const outbox = join(r.data.path, 'outbox');
    const [first] = await waitForOutbox(outbox, 1);
    const link = confirmationLink(first!.mail);
    await new Promise((res) => setTimeout(res, 3100));
    const page = await fetch(link);
    assert.equal(page.status, 410);
    const html = await page.text();
    assert.match(html, /This link has expired/);
    assert.match(html, /<form method="post" action="confirmation\/resend">/);
    const asJson = await fetch(link, { headers: { accept: 'application/json' } });
    assert.equal(await errorCode(asJson), 'CR_ERR_CONFIRMATION_EXPIRED');
    const id = new URL(link).searchParams.get('confirmationId')!;
    const expiredPost = await fetch(`${r.hub.url}/v1/confirmation`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ confirmationId: id, password: PASSWORD }) });
    assert.equal(await errorCode(expiredPost), 'CR_ERR_CONFIRMATION_EXPIRED');

    const resent = await postForm(new URL('confirmation/resend', link).toString(), { confirmationId: id });
    assert.equal(resent.status, 202);
    assert.match(resent.body, /A new confirmation link was sent to <strong>late\.owner@example\.com<\/strong>/);
    const mails = await waitForOutbox(outbox, 2);
    const fresh = confirmationLink(mails[1]!.mail);
    assert.notEqual(fresh, link);
    assert.equal((await fetch(fresh)).status, 200);
  });
});
