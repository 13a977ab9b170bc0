import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, lstatSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ErrorCode } from '../relay/protocol/frames.js';
import { LineSplitter, NotificationQueue } from './notify-queue.js';
import { DeviceApi, TestHub, makeAgent, stopAll, tempDir, waitUntil } from './test-hub.test.js';

const run = promisify(execFile);

describe('line splitting and the queue', () => {
  function split(chunks: string[], max = 10): { lines: string[]; tooLong: number } {
    const lines: string[] = [];
    let tooLong = 0;
    const s = new LineSplitter(max, (l) => lines.push(l.toString()), () => tooLong++);
    for (const c of chunks) s.push(Buffer.from(c));
    return { lines, tooLong };
  }

  test('lines split at LF, CRLF accepted, empty lines skipped, lines may span chunks', () => {
    assert.deepEqual(split(['a\nb\r\n\n', 'c', 'd\n']).lines, ['a', 'b', 'cd']);
  });

  test('a line longer than the limit is dropped whole, even across chunks, and the next one kept', () => {
    const r = split(['12345', '67890x', 'yz\nok\n', 'exactly10!\n']);
    assert.deepEqual(r.lines, ['ok', 'exactly10!']);
    assert.equal(r.tooLong, 1);
  });

  test('NOTIFY_ACK is cumulative and frees room', () => {
    const q = new NotificationQueue(3);
    assert.ok(q.push(Buffer.from('a')) && q.push(Buffer.from('b')) && q.push(Buffer.from('c')));
    assert.equal(q.push(Buffer.from('d')), false, 'full');
    let space = 0;
    q.on('space', () => space++);
    assert.equal(q.ack(2), 2);
    assert.deepEqual(q.pending().map((n) => [n.seq, n.text.toString()]), [[3, 'c']]);
    assert.equal(space, 1);
    assert.ok(q.push(Buffer.from('d')));
    assert.deepEqual(q.pending().map((n) => n.seq), [3, 4]);
  });

  test('rebase renumbers what is pending from 1 (for a new bootId)', () => {
    const q = new NotificationQueue(10);
    for (const t of ['a', 'b', 'c']) q.push(Buffer.from(t));
    q.ack(1);
    q.rebase();
    assert.deepEqual(q.pending().map((n) => [n.seq, n.text.toString()]), [[1, 'b'], [2, 'c']]);
    q.push(Buffer.from('d'));
    assert.equal(q.pending().at(-1)!.seq, 3);
  });
});

describe('notifications from device applications', () => {
  let hub: TestHub;
  let api: DeviceApi;
  let dir: ReturnType<typeof tempDir>;

  before(async () => {
    hub = await TestHub.start();
    api = await DeviceApi.start();
  });
  beforeEach(() => {
    dir = tempDir();
    hub.notifications.length = 0;
    hub.ackNotifications = true;
  });
  afterEach(async () => {
    await stopAll();
    dir.remove();
  });
  after(async () => {
    await hub.close();
    await api.close();
  });

  async function connectedAgent(extra: string[]): Promise<ReturnType<typeof makeAgent>> {
    const agent = makeAgent(['--hub', hub.url, '--device-id', 'dev1', '--secret', 's', '--api', api.url, ...extra]);
    const connected = once(agent, 'connected');
    await agent.start();
    await connected;
    return agent;
  }

  function texts(): string[] {
    return hub.notifications.map((n) => n.text);
  }

  test('lines written to the named pipe arrive at the hub as NOTIFY frames, writer after writer', async () => {
    const fifo = join(dir.path, 'notify.fifo');
    await connectedAgent(['--notify-pipe', fifo]);
    assert.ok(lstatSync(fifo).isFIFO(), 'the agent created the FIFO');
    await run('sh', ['-c', `printf 'temp=21\\nhumidity=40\\n' > '${fifo}'`]);
    await run('sh', ['-c', `echo 'door=open' > '${fifo}'`]);
    await hub.waitForNotifications(3);
    assert.deepEqual(texts(), ['temp=21', 'humidity=40', 'door=open']);
    assert.deepEqual(hub.notifications.map((n) => n.seq), [1, 2, 3]);
  });

  test('an existing named pipe is used and left in place on stop; one the agent made is removed', async () => {
    const mine = join(dir.path, 'existing.fifo');
    execFileSync('mkfifo', [mine]);
    const made = join(dir.path, 'made.fifo');
    const a = await connectedAgent(['--notify-pipe', mine]);
    await run('sh', ['-c', `echo hello > '${mine}'`]);
    await hub.waitForNotifications(1);
    await a.stop();
    assert.ok(existsSync(mine), 'pre-existing FIFO kept');
    const b = await connectedAgent(['--notify-pipe', made]);
    assert.ok(existsSync(made));
    await b.stop();
    assert.equal(existsSync(made), false, 'FIFO the agent created is removed');
  });

  test('lines from several unix-socket writers arrive, including a last line without newline', async () => {
    const path = join(dir.path, 'notify.sock');
    await connectedAgent(['--notify-socket', path]);
    const w1 = connect(path);
    const w2 = connect(path);
    await Promise.all([once(w1, 'connect'), once(w2, 'connect')]);
    w1.write('from one\n');
    await hub.waitForNotifications(1);
    w2.write('from two\nand its last line');
    w2.end();
    w1.end('one again\n');
    await hub.waitForNotifications(4);
    assert.deepEqual([...texts()].sort(), ['and its last line', 'from one', 'from two', 'one again']);
  });

  test('the unix socket file is removed on stop, and a stale one from a crashed agent is replaced', async () => {
    const path = join(dir.path, 'notify.sock');
    // A process that listened there and was killed: the file stays, nobody listens.
    const crashed = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    await once(crashed.stdout!, 'data');
    crashed.kill('SIGKILL');
    await once(crashed, 'exit');
    assert.ok(existsSync(path));
    const agent = await connectedAgent(['--notify-socket', path]);
    const w = connect(path);
    w.end('after restart\n');
    await hub.waitForNotifications(1);
    await agent.stop();
    assert.equal(existsSync(path), false);
  });

  test('a unix socket another process serves is refused at start', async () => {
    const path = join(dir.path, 'busy.sock');
    const busy = createServer().listen(path);
    await once(busy, 'listening');
    const agent = makeAgent(['--hub', hub.url, '--device-id', 'dev1', '--secret', 's', '--api', api.url, '--notify-socket', path]);
    await assert.rejects(agent.start(), /in use/);
    busy.close();
  });

  test('POST /notify queues each line of the body and answers 202 with the count', async () => {
    const agent = await connectedAgent(['--notify-port', '0']);
    const listening = agent.logs.find((l) => l.msg === 'notify listening');
    assert.equal(listening?.port, agent.notifyPort);
    const r = await fetch(`http://127.0.0.1:${agent.notifyPort}/notify`, { method: 'POST', body: 'alarm=1\r\nalarm=2\n' });
    assert.equal(r.status, 202);
    assert.deepEqual(await r.json(), { queued: 2 });
    await hub.waitForNotifications(2);
    assert.deepEqual(texts(), ['alarm=1', 'alarm=2']);
  });

  test('POST /notify answers 404, 405, 400 and 413 for what it does not take', async () => {
    const agent = await connectedAgent(['--notify-port', '0', '--max-notification-bytes', '16']);
    const base = `http://127.0.0.1:${agent.notifyPort}`;
    assert.equal((await fetch(`${base}/other`, { method: 'POST', body: 'x' })).status, 404);
    const get = await fetch(`${base}/notify`);
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    assert.equal((await fetch(`${base}/notify`, { method: 'POST', body: '\n\n' })).status, 400);
    const long = await fetch(`${base}/notify`, { method: 'POST', body: 'ok\nthis line is far too long\n' });
    assert.equal(long.status, 413);
    const huge = await fetch(`${base}/notify`, { method: 'POST', body: Buffer.alloc(2 * 1024 * 1024, 0x61) }).catch(() => undefined);
    if (huge) assert.equal(huge.status, 413);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(hub.notifications.length, 0, 'nothing was queued by refused requests');
  });

  test('POST /notify answers 503 when the queue is full', async () => {
    hub.ackNotifications = false;
    const agent = await connectedAgent(['--notify-port', '0', '--notify-queue', '2']);
    const base = `http://127.0.0.1:${agent.notifyPort}/notify`;
    assert.equal((await fetch(base, { method: 'POST', body: 'a\nb\n' })).status, 202);
    const full = await fetch(base, { method: 'POST', body: 'c\n' });
    assert.equal(full.status, 503);
    assert.match(((await full.json()) as { error: string }).error, /queue full/);
    hub.session!.sendNotifyAck(2);
    await waitUntil(() => agent.queuedNotifications === 0, 5000, 'queue emptied by the ack');
    assert.equal((await fetch(base, { method: 'POST', body: 'c\n' })).status, 202);
    await hub.waitForNotifications(3);
    hub.session!.sendNotifyAck(3);
  });

  test('unacknowledged notifications are sent again after a reconnect, with the same seq and bootId', async () => {
    hub.ackNotifications = false;
    const agent = await connectedAgent(['--notify-port', '0']);
    await fetch(`http://127.0.0.1:${agent.notifyPort}/notify`, { method: 'POST', body: 'one\ntwo\n' });
    await hub.waitForNotifications(2);
    hub.session!.sendNotifyAck(1);
    await waitUntil(() => agent.queuedNotifications === 1, 5000, 'first acknowledged');
    const reconnected = once(agent, 'connected');
    hub.dropAll();
    await reconnected;
    await hub.waitForNotifications(3);
    const resent = hub.notifications[2]!;
    assert.equal(resent.text, 'two');
    assert.equal(resent.seq, 2);
    assert.equal(resent.bootId, hub.notifications[1]!.bootId);
    const acked = once(agent, 'notification-acked');
    hub.session!.sendNotifyAck(2);
    assert.deepEqual(await acked, [2]);
    assert.equal(agent.queuedNotifications, 0);
  });

  test('notifications written while the hub is unreachable are delivered once it is back', async () => {
    const agent = await connectedAgent(['--notify-port', '0']);
    hub.check = () => ErrorCode.AUTH_FAILED; // the agent stays offline for a while
    hub.dropAll();
    await once(agent, 'disconnected');
    const r = await fetch(`http://127.0.0.1:${agent.notifyPort}/notify`, { method: 'POST', body: 'while offline\n' });
    assert.equal(r.status, 202);
    assert.equal(hub.notifications.length, 0);
    hub.check = undefined;
    await hub.waitForNotifications(1, 10_000);
    assert.equal(texts()[0], 'while offline');
  });

  test('a full queue stops reading the socket instead of dropping lines, and resumes on ack', async () => {
    hub.ackNotifications = false;
    const path = join(dir.path, 'bp.sock');
    const agent = await connectedAgent(['--notify-socket', path, '--notify-queue', '3']);
    const w = connect(path);
    await once(w, 'connect');
    const lines = Array.from({ length: 10 }, (_, i) => `line ${i}`);
    w.write(lines.map((l) => `${l}\n`).join(''));
    await hub.waitForNotifications(3);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(hub.notifications.length, 3, 'no more than the queue holds while unacknowledged');
    assert.equal(agent.queuedNotifications, 3);
    for (let seq = 3; hub.notifications.length < 10; seq = hub.notifications.length) {
      hub.session!.sendNotifyAck(seq);
      await waitUntil(() => hub.notifications.length > seq || hub.notifications.length === 10, 5000, `more after ack ${seq}`);
    }
    assert.deepEqual(texts(), lines, 'every line, in order, none dropped');
    hub.session!.sendNotifyAck(10);
    w.destroy();
  });

  test('a full queue stops reading the named pipe, so the writer blocks until acks come', async () => {
    hub.ackNotifications = false;
    const fifo = join(dir.path, 'bp.fifo');
    const agent = await connectedAgent(['--notify-pipe', fifo, '--notify-queue', '2']);
    // 2000 lines of ~100 bytes: more than a pipe buffer (64 KiB), so the writer must wait for us.
    const writer = run('sh', ['-c', `i=0; while [ $i -lt 2000 ]; do printf '%0100d\\n' $i; i=$((i+1)); done > '${fifo}'`]);
    await hub.waitForNotifications(2);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(hub.notifications.length, 2);
    hub.ackNotifications = true;
    hub.session!.sendNotifyAck(2);
    await writer;
    await hub.waitForNotifications(2000, 20_000);
    assert.equal(hub.notifications.at(-1)!.text, String(1999).padStart(100, '0'));
    assert.equal(new Set(texts()).size, 2000, 'no line lost or duplicated');
    assert.equal(agent.queuedNotifications, 0);
  });

  test('a notification larger than the hub accepts is dropped once, not resent forever', async () => {
    const small = await TestHub.start({ welcome: { maxFrameBytes: 1024 } });
    try {
      const agent = makeAgent(['--hub', small.url, '--device-id', 'dev1', '--secret', 's', '--api', api.url, '--notify-port', '0']);
      const connected = once(agent, 'connected');
      await agent.start();
      await connected;
      const base = `http://127.0.0.1:${agent.notifyPort}/notify`;
      assert.equal((await fetch(base, { method: 'POST', body: `${'x'.repeat(2000)}\nsmall\n` })).status, 202);
      await small.waitForNotifications(1);
      assert.deepEqual(small.notifications.map((n) => n.text), ['small']);
      assert.ok(agent.logs.some((l) => l.level === 'error' && l.msg === 'notification dropped: larger than the hub accepts'));
      await waitUntil(() => agent.queuedNotifications === 0, 5000, 'queue empty');
      assert.equal(small.established.length, 1, 'the tunnel stayed up');
    } finally {
      await stopAll();
      await small.close();
    }
  });

  test('a line longer than --max-notification-bytes is dropped with a warning, the next one kept', async () => {
    const path = join(dir.path, 'long.sock');
    const agent = await connectedAgent(['--notify-socket', path, '--max-notification-bytes', '16']);
    const w = connect(path);
    w.end(`${'x'.repeat(100)}\nshort\n`);
    await hub.waitForNotifications(1);
    assert.deepEqual(texts(), ['short']);
    assert.ok(agent.logs.some((l) => l.level === 'warn' && l.msg === 'notification dropped: line too long'));
  });
});
