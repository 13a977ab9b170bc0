import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { WebSocket, WebSocketServer } from 'ws';
import { WS_MAX_MESSAGE_BYTES, wsDuplex } from './ws-duplex.js';

interface Pair {
  client: Duplex;
  server: Duplex;
  clientWs: WebSocket;
  serverWs: WebSocket;
}

describe('wsDuplex', () => {
  let wss: WebSocketServer;
  let url: string;

  before(async () => {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await once(wss, 'listening');
    url = `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`;
  });
  after(async () => {
    for (const c of wss.clients) c.terminate();
    await new Promise((r) => wss.close(r));
  });

  async function pair(): Promise<Pair> {
    const clientWs = new WebSocket(url);
    const [[serverWs]] = await Promise.all([once(wss, 'connection') as Promise<[WebSocket]>, once(clientWs, 'open')]);
    const client = wsDuplex(clientWs);
    const server = wsDuplex(serverWs);
    // Tearing one side down makes the other see an abnormal close; tests that care listen themselves.
    client.on('error', () => {});
    server.on('error', () => {});
    return { client, server, clientWs, serverWs };
  }

  function readBytes(d: Duplex, n: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let got = 0;
      const onData = (b: Buffer): void => {
        parts.push(b);
        got += b.length;
        if (got >= n) {
          d.off('data', onData);
          d.off('error', reject);
          resolve(Buffer.concat(parts));
        }
      };
      d.on('data', onData);
      d.once('error', reject);
    });
  }

  test('bytes written on one side arrive in order on the other, both ways', async () => {
    const p = await pair();
    const toServer = readBytes(p.server, 6);
    p.client.write(Buffer.from('abc'));
    p.client.write(Buffer.from('def'));
    assert.equal((await toServer).toString(), 'abcdef');
    const toClient = readBytes(p.client, 5);
    p.server.write(Buffer.from('hello'));
    assert.equal((await toClient).toString(), 'hello');
    p.client.destroy();
  });

  test('writes corked in one tick travel as one binary websocket message', async () => {
    const p = await pair();
    const messages: Array<{ data: Buffer; isBinary: boolean }> = [];
    p.serverWs.on('message', (data: Buffer, isBinary: boolean) => messages.push({ data, isBinary }));
    const got = readBytes(p.server, 9);
    p.client.cork();
    p.client.write(Buffer.from('one'));
    p.client.write(Buffer.from('two'));
    p.client.write(Buffer.from('six'));
    process.nextTick(() => p.client.uncork());
    assert.equal((await got).toString(), 'onetwosix');
    assert.equal(messages.length, 1);
    assert.equal(messages[0]!.isBinary, true);
    assert.equal(messages[0]!.data.toString(), 'onetwosix');
    p.client.destroy();
  });

  test('a large corked batch is split into messages of at most WS_MAX_MESSAGE_BYTES, in order', async () => {
    const p = await pair();
    const sizes: number[] = [];
    p.serverWs.on('message', (data: Buffer) => sizes.push(data.length));
    const chunk = Buffer.alloc(20 * 1024);
    const total = 20;
    const all = readBytes(p.server, total * chunk.length);
    p.client.cork();
    for (let i = 0; i < total; i++) p.client.write(Buffer.alloc(chunk.length, i));
    process.nextTick(() => p.client.uncork());
    const buf = await all;
    for (let i = 0; i < total; i++) assert.equal(buf[i * chunk.length], i, `chunk ${i} in place`);
    assert.ok(sizes.length > 1 && sizes.length < total, `batched into a few messages: ${sizes.join(',')}`);
    assert.ok(sizes.every((n) => n <= WS_MAX_MESSAGE_BYTES));
    p.client.destroy();
  });

  test('the write callback waits until the websocket has taken the message', async () => {
    const p = await pair();
    let called = false;
    const done = new Promise<void>((resolve, reject) => p.client.write(Buffer.alloc(1024, 1), (err) => (err ? reject(err) : resolve())));
    void done.then(() => (called = true));
    assert.equal(called, false, 'not called synchronously');
    await done;
    p.client.destroy();
  });

  test('a reader that stops reading pauses the websocket, and resuming delivers everything', async () => {
    const p = await pair();
    p.client.pause();
    const chunk = Buffer.alloc(64 * 1024, 7);
    const total = 40;
    for (let i = 0; i < total; i++) p.serverWs.send(chunk);
    await waitUntil(() => p.clientWs.isPaused);
    assert.ok(p.client.readableLength < total * chunk.length, 'did not buffer everything while paused');
    const all = readBytes(p.client, total * chunk.length);
    p.client.resume();
    const buf = await all;
    assert.equal(buf.length, total * chunk.length);
    assert.equal(p.clientWs.isPaused, false);
    p.client.destroy();
  });

  test('a text message is a protocol error that destroys the duplex', async () => {
    const p = await pair();
    const err = once(p.client, 'error');
    const closed = onClose(p.client);
    const peerClosed = once(p.serverWs, 'close');
    p.serverWs.send('not bytes');
    const [e] = (await err) as [Error];
    assert.match(e.message, /text message/);
    await closed;
    await peerClosed;
  });

  test('end() closes the websocket with code 1000 and the peer sees the end of the stream', async () => {
    const p = await pair();
    const closed = once(p.serverWs, 'close') as Promise<[number, Buffer]>;
    const ended = once(p.server, 'end');
    const clientClosed = onClose(p.client);
    p.server.resume();
    p.client.end();
    const [code] = await closed;
    assert.equal(code, 1000);
    await ended;
    await clientClosed;
  });

  test('destroy() terminates the connection and the peer duplex closes', async () => {
    const p = await pair();
    const serverClosed = onClose(p.server);
    p.client.destroy();
    await serverClosed;
    assert.equal(p.serverWs.readyState, WebSocket.CLOSED);
  });

  test('writing after the websocket closed fails instead of hanging', async () => {
    const p = await pair();
    const closed = onClose(p.client);
    p.serverWs.terminate();
    await closed;
    assert.equal(p.client.destroyed, true);
    assert.equal(p.client.write(Buffer.from('x')), false);
  });
});

/** Resolves on 'close' whether or not an error came first (events.once would reject on 'error'). */
function onClose(d: Duplex): Promise<void> {
  return new Promise((resolve) => d.once('close', () => resolve()));
}

async function waitUntil(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
