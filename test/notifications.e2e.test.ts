import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SseClient } from './support/sse-client.js';
import { startWorld, type World } from './support/world.js';

describe('notifications: device lines reach clients as server-sent events', () => {
  let w: World;
  let notifyPort: number;
  let pipe: string;
  let sock: string;
  before(async () => {
    const { tempDir } = await import('./support/procs.js');
    const dir = tempDir('cloudrest-notify-');
    pipe = join(dir.path, 'notify.fifo');
    sock = join(dir.path, 'notify.sock');
    w = await startWorld({ agentArgs: ['--notify-port', '0', '--notify-pipe', pipe, '--notify-socket', sock] });
    notifyPort = (await w.agent.waitForLog('notify listening', (o) => typeof o.port === 'number')).port as number;
    await w.agent.waitForLog('notify listening', (o) => typeof o.socket === 'string');
    await w.agent.waitForLog('notify listening', (o) => typeof o.pipe === 'string');
  });
  after(async () => {
    await w?.stop();
  });

  const post = async (body: string) => {
    const r = await fetch(`http://127.0.0.1:${notifyPort}/notify`, { method: 'POST', body });
    assert.equal(r.status, 202);
    await r.arrayBuffer();
  };
  const messages = (c: SseClient) => c.of('notification').map((e) => (JSON.parse(e.data) as { message: string }).message);

  it('delivers lines from POST /notify, the named pipe and the unix socket, each with an event id', async () => {
    const c = await SseClient.open(`${w.hub.url}/v1/devices/${w.deviceId}/events`, w.auth);
    assert.equal(c.status, 200);
    await c.until((ev) => ev.some((e) => e.event === 'status'));
    assert.deepEqual(JSON.parse(c.of('status')[0]!.data), { deviceId: w.deviceId, online: true, snapshot: true });
    await post('from http 1\nfrom http 2\n');
    execFileSync('sh', ['-c', `echo "from the pipe" > ${pipe}`]);
    await new Promise<void>((resolve, reject) => {
      const s = connect(sock, () => s.end('from the socket\n'));
      s.on('error', reject);
      s.on('close', () => resolve());
    });
    await c.until(() => messages(c).length >= 4);
    assert.deepEqual(messages(c).sort(), ['from http 1', 'from http 2', 'from the pipe', 'from the socket']);
    const ids = c.of('notification').map((e) => Number(e.id));
    assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]!), `ids increase: ${ids.join(',')}`);
    c.close();
  });

  it('resumes after Last-Event-ID with exactly the events missed', async () => {
    const c1 = await SseClient.open(`${w.hub.url}/v1/devices/${w.deviceId}/events`, w.auth);
    await post('before the gap');
    await c1.until(() => messages(c1).includes('before the gap'));
    const lastId = c1.of('notification').at(-1)!.id!;
    c1.close();
    await post('missed one\nmissed two');
    // Give the hub a moment to take both lines.
    const probe = await SseClient.open(`${w.hub.url}/v1/devices/${w.deviceId}/events?lastEventId=${lastId}`, w.auth);
    await probe.until(() => messages(probe).length >= 2);
    probe.close();
    const c2 = await SseClient.open(`${w.hub.url}/v1/devices/${w.deviceId}/events`, { ...w.auth, 'last-event-id': lastId });
    await c2.until(() => messages(c2).length >= 2);
    assert.deepEqual(messages(c2), ['missed one', 'missed two']);
    assert.equal(c2.of('gap').length, 0, 'nothing was lost');
    c2.close();
  });

  it('resumes from an id this hub never issued (a clock that was ahead) with a gap, what it holds and every new event', async () => {
    await post('held before');
    const future = String(Date.now() * 1000 + 3_600_000_000); // an hour ahead of this hub's ids
    const c = await SseClient.open(`${w.hub.url}/v1/devices/${w.deviceId}/events`, { ...w.auth, 'last-event-id': future });
    await c.until(() => messages(c).includes('held before'));
    assert.equal(c.of('gap').length, 1, 'the client learns some events may be missing');
    await post('after the reconnect');
    await c.until(() => messages(c).includes('after the reconnect'));
    assert.ok(c.of('notification').every((e) => Number(e.id) < Number(future)), 'these events have lower ids than the one the client sent');
    c.close();
  });

  it('streams all of a user\'s devices on /v1/events with the token in the query, as EventSource needs', async () => {
    const c = await SseClient.open(`${w.hub.url}/v1/events?access_token=${encodeURIComponent(w.token)}`);
    assert.equal(c.status, 200);
    await post('to everyone');
    await c.until(() => messages(c).includes('to everyone'));
    assert.equal((JSON.parse(c.of('notification').at(-1)!.data) as { deviceId: string }).deviceId, w.deviceId);
    c.close();
  });

  it('refuses an event stream without a token, and a malformed Last-Event-ID', async () => {
    const none = await fetch(`${w.hub.url}/v1/events`);
    assert.equal(none.status, 401);
    const bad = await fetch(`${w.hub.url}/v1/events`, { headers: { ...w.auth, 'last-event-id': 'not-an-id' } });
    assert.equal(bad.status, 400);
    assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'CR_ERR_VALIDATION');
  });

  it('reports the device going offline as a status event with an id', async () => {
    const c = await SseClient.open(`${w.hub.url}/v1/devices/${w.deviceId}/events`, w.auth);
    await c.until((ev) => ev.some((e) => e.event === 'status'));
    await w.agent.stop();
    await c.until(() => c.of('status').some((e) => (JSON.parse(e.data) as { online: boolean }).online === false));
    const off = c.of('status').find((e) => !(JSON.parse(e.data) as { online: boolean }).online)!;
    assert.ok(off.id, 'a status change has an event id');
    c.close();
  });
});
