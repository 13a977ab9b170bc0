import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setImmediate as tick } from 'node:timers/promises';
import { formatSseEvent, openSse, parseLastEventId, type SseCloseReason, type SseStream } from './sse.js';
import { MemoryEventHistory } from './event-history.js';
import { HubError } from '../errors.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
const servers: Server[] = [];

async function serve(handler: Handler): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    s.close();
  }
});

/** Opens a stream with a real client; `text()` resolves once the received text satisfies `until`. */
async function connect(url: string, headers: Record<string, string> = {}) {
  const req = get(url, { headers });
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  res.setEncoding('utf8');
  let body = '';
  let waiter: (() => void) | undefined;
  res.on('data', (chunk: string) => {
    body += chunk;
    waiter?.();
  });
  const ended = new Promise<'end' | 'aborted'>((resolve) => {
    res.on('end', () => resolve('end'));
    res.on('error', () => resolve('aborted'));
    res.on('aborted', () => resolve('aborted'));
  });
  const text = async (until: (body: string) => boolean): Promise<string> => {
    while (!until(body)) await new Promise<void>((resolve) => (waiter = resolve));
    return body;
  };
  return { req, res, text, ended, body: () => body };
}

/** The client side of §9.2.6, enough to check what an EventSource would dispatch. */
function parseStream(text: string): { type: string; data: string; lastEventId: string }[] {
  const out: { type: string; data: string; lastEventId: string }[] = [];
  let data = '';
  let type = '';
  let lastEventId = '';
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line === '') {
      if (data !== '') out.push({ type: type || 'message', data: data.slice(0, -1), lastEventId });
      data = type = '';
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') data += value + '\n';
    else if (field === 'event') type = value;
    else if (field === 'id' && !value.includes('\0')) lastEventId = value;
  }
  return out;
}

const quiet = { heartbeatMs: 60_000, maxBufferedBytes: 1024 * 1024 };

describe('formatSseEvent', () => {
  it('splits multi-line data so the client gets the same text back, line breaks as LF', () => {
    const data = 'first\nsecond\r\nthird\rfourth\n\n  indented\n';
    const wire = formatSseEvent({ id: 7, event: 'notification', data });
    assert.equal(wire, 'event: notification\nid: 7\ndata: first\ndata: second\ndata: third\ndata: fourth\ndata: \ndata:   indented\ndata: \n\n');
    assert.deepEqual(parseStream(wire), [{ type: 'notification', data: data.replace(/\r\n?/g, '\n'), lastEventId: '7' }]);
  });

  it('keeps a line that looks like a field inside the data', () => {
    const wire = formatSseEvent({ data: 'x\nid: 666\nevent: evil\n\ndata: y' });
    assert.deepEqual(parseStream(wire), [{ type: 'message', data: 'x\nid: 666\nevent: evil\n\ndata: y', lastEventId: '' }]);
  });

  it('refuses ids and event types that would inject lines', () => {
    for (const id of ['1\n2', '1\r', '\r\n', 'a\0b']) assert.throws(() => formatSseEvent({ id, data: 'x' }), TypeError);
    for (const event of ['a\nb', 'a\r']) assert.throws(() => formatSseEvent({ event, data: 'x' }), TypeError);
  });
});

describe('openSse', () => {
  it('sends event-stream headers and delivers each event as soon as it is sent', async () => {
    let stream!: SseStream;
    const url = await serve((req, res) => (stream = openSse(req, res, quiet)));
    const client = await connect(url);
    assert.equal(client.res.statusCode, 200);
    assert.equal(client.res.headers['content-type'], 'text/event-stream');
    assert.equal(client.res.headers['cache-control'], 'no-cache');
    assert.equal(client.res.headers['x-accel-buffering'], 'no');
    assert.equal(stream.send({ id: 1, data: 'hello' }), true);
    await client.text((b) => b.includes('\n\n'));
    assert.equal(stream.send({ id: 2, event: 'status', data: 'online' }), true);
    const body = await client.text((b) => b.includes('online\n\n'));
    assert.deepEqual(parseStream(body), [
      { type: 'message', data: 'hello', lastEventId: '1' },
      { type: 'status', data: 'online', lastEventId: '2' },
    ]);
    stream.close();
  });

  it('sends a heartbeat comment while idle', async () => {
    const url = await serve((req, res) => openSse(req, res, { ...quiet, heartbeatMs: 20 }));
    const client = await connect(url);
    const body = await client.text((b) => b.split(': ping\n\n').length > 2);
    assert.match(body, /^(: ping\n\n)+$/);
    assert.deepEqual(parseStream(body), []);
  });

  it('suggests a reconnection delay when asked', async () => {
    const url = await serve((req, res) => openSse(req, res, { ...quiet, retryMs: 1500 }));
    const client = await connect(url);
    assert.equal(await client.text((b) => b.includes('\n\n')), 'retry: 1500\n\n');
  });

  it('ends the response on close() and tells every onClose listener once', async () => {
    let stream!: SseStream;
    const reasons: SseCloseReason[] = [];
    const url = await serve((req, res) => {
      stream = openSse(req, res, quiet);
      stream.onClose((r) => reasons.push(r));
      stream.onClose(() => {
        throw new Error('a failing listener');
      });
      stream.onClose((r) => reasons.push(r));
    });
    const client = await connect(url);
    stream.send({ data: 'last' });
    stream.close();
    stream.close();
    assert.equal(await client.ended, 'end');
    assert.deepEqual(reasons, ['server', 'server']);
    assert.equal(stream.closed, true);
    assert.equal(stream.send({ data: 'too late' }), false);
    stream.onClose((r) => reasons.push(r));
    assert.deepEqual(reasons, ['server', 'server', 'server'], 'a late listener is called at once');
  });

  it('notices a client that goes away and stops writing to it', async () => {
    let stream!: SseStream;
    let closedWith: Promise<SseCloseReason>;
    const url = await serve((req, res) => {
      stream = openSse(req, res, { ...quiet, heartbeatMs: 10 });
      closedWith = new Promise((resolve) => stream.onClose(resolve));
    });
    const client = await connect(url);
    client.req.destroy();
    assert.equal(await closedWith!, 'client');
    assert.equal(stream.closed, true);
    assert.equal(stream.send({ data: 'x' }), false);
  });

  it('cuts off a client that reads too slowly instead of buffering without bound', async () => {
    const maxBufferedBytes = 256 * 1024;
    let stream!: SseStream;
    let response!: ServerResponse;
    const url = await serve((req, res) => {
      stream = openSse(req, res, { ...quiet, maxBufferedBytes });
      response = res;
    });
    // A client that takes the headers and then never reads.
    const req = get(url);
    const [res] = (await once(req, 'response')) as [IncomingMessage];
    const gone = new Promise((resolve) => res.on('close', resolve));
    res.pause();
    let reason: SseCloseReason | undefined;
    stream.onClose((r) => (reason = r));
    const chunk = 'x'.repeat(64 * 1024);
    let sent = 0;
    let peak = 0;
    while (stream.send({ data: chunk })) {
      peak = Math.max(peak, response.writableLength);
      sent += chunk.length;
      assert.ok(sent < 512 * 1024 * 1024, 'the stream should have been cut long before this');
      await tick();
    }
    assert.equal(reason, 'overflow');
    assert.ok(peak <= maxBufferedBytes, `buffered ${peak} bytes`);
    assert.ok(response.destroyed);
    // Once it reads again, the client finds the response cut short (and an EventSource would reconnect).
    res.on('error', () => {});
    res.resume();
    await gone;
    assert.equal(res.complete, false);
  });
});

describe('parseLastEventId', () => {
  async function ask(path: string, headers: Record<string, string> = {}): Promise<unknown> {
    const url = await serve((req, res) => {
      let body: unknown;
      try {
        body = { id: parseLastEventId(req) ?? null };
      } catch (err) {
        body = err instanceof HubError ? { code: err.code, status: err.status } : { other: String(err) };
      }
      res.end(JSON.stringify(body));
    });
    const res = await fetch(url + path, { headers });
    return res.json();
  }

  it('reads the Last-Event-ID header a reconnecting EventSource sends', async () => {
    assert.deepEqual(await ask('/', { 'last-event-id': '1700000000000000' }), { id: 1_700_000_000_000_000 });
  });

  it('reads the lastEventId query parameter when there is no header', async () => {
    assert.deepEqual(await ask('/events?x=1&lastEventId=42'), { id: 42 });
  });

  it('prefers the header, since EventSource reconnects to the same URL with a newer id', async () => {
    assert.deepEqual(await ask('/events?lastEventId=42', { 'last-event-id': '43' }), { id: 43 });
  });

  it('gives undefined when neither is present or both are empty', async () => {
    assert.deepEqual(await ask('/events'), { id: null });
    assert.deepEqual(await ask('/events?lastEventId=', { 'last-event-id': '' }), { id: null });
  });

  it('rejects ids that are not ours with a 400 validation error', async () => {
    for (const bad of ['abc', '-1', '1.5', '1e3', '0x10', '99999999999999999', '1, 2']) {
      assert.deepEqual(await ask('/', { 'last-event-id': bad }), { code: 'CR_ERR_VALIDATION', status: 400 }, bad);
    }
    assert.deepEqual(await ask('/?lastEventId=12abc'), { code: 'CR_ERR_VALIDATION', status: 400 });
  });
});

describe('resuming a stream with Last-Event-ID', () => {
  it('replays what the client missed while it was away', async () => {
    const history = new MemoryEventHistory();
    const live = new Set<SseStream>();
    const url = await serve((req, res) => {
      const lastId = parseLastEventId(req);
      const stream = openSse(req, res, quiet);
      if (lastId !== undefined) {
        for (const e of history.since(['dev'], lastId).events) stream.send({ id: e.id, event: e.type, data: e.data });
      }
      live.add(stream);
      stream.onClose(() => live.delete(stream));
    });
    const publish = (data: string): void => {
      const e = history.append('dev', 'notification', data);
      for (const s of live) s.send({ id: e.id, event: e.type, data: e.data });
    };

    const first = await connect(url);
    while (live.size === 0) await tick();
    publish('one');
    const seen = parseStream(await first.text((b) => b.includes('one\n\n')));
    first.req.destroy();
    while (live.size > 0) await tick();
    publish('two');
    publish('three');

    const again = await connect(url, { 'last-event-id': seen.at(-1)!.lastEventId });
    const body = await again.text((b) => b.includes('three\n\n'));
    assert.deepEqual(parseStream(body).map((e) => e.data), ['two', 'three']);
  });
});
