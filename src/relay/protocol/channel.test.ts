import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import type { ChannelListener, TunnelChannel } from './channel.js';
import { ErrorCode } from './frames.js';
import type { ResponseHead } from './heads.js';
import { StreamResetError } from './stream.js';
import { openTunnel } from './tunnel-pair.test.js';

// TunnelChannel, the lean form of an exchange both ends of the relay use, on two real sessions.

/** A hub-side listener that keeps what it hears. */
function collector(): ChannelListener & { head?: ResponseHead; parts: Buffer[]; ended: Promise<Buffer>; failed: Promise<Error> } {
  let end!: (b: Buffer) => void;
  let fail!: (e: Error) => void;
  const c = {
    head: undefined as ResponseHead | undefined,
    parts: [] as Buffer[],
    ended: new Promise<Buffer>((r) => (end = r)),
    failed: new Promise<Error>((r) => (fail = r)),
    onResponse(head: ResponseHead, done: boolean) {
      c.head = head;
      if (done) end(Buffer.alloc(0));
    },
    onData(chunk: Buffer, done: boolean) {
      c.parts.push(chunk);
      if (done) end(Buffer.concat(c.parts));
    },
    onError(err: Error) {
      fail(err);
    },
  };
  return c;
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

test('a request body larger than the window reaches the agent whole, and END_STREAM follows the last chunk that waited for window', async (t) => {
  // The agent grants only 16 KiB per stream; 200 KiB must flow on returned credit.
  const { hub, agent } = await openTunnel(t, { agentWindowBytes: 16_384, agentMaxFrameBytes: 16_384 });
  const body = Buffer.alloc(200_000, 7);
  for (let i = 0; i < body.length; i += 997) body[i] = i & 0xff;
  const received: Buffer[] = [];
  agent.onChannel = (ch) => {
    ch.listener = {
      onData: (chunk, end) => {
        received.push(chunk);
        if (end) {
          const all = Buffer.concat(received);
          const answer = Buffer.from(sha(all));
          ch.respond({ status: 200, headers: [['content-length', String(answer.length)]] });
          ch.write(answer, () => undefined, true);
        }
      },
      onError: () => undefined,
    };
  };
  const c = collector();
  const ch = hub.openRequest({ method: 'POST', target: '/upload', headers: [] }, false, c);
  let waited = 0;
  await new Promise<void>((resolve) => {
    let off = 0;
    const next = (): void => {
      while (off < body.length) {
        const piece = body.subarray(off, off + 50_000);
        off += piece.length;
        if (!ch.write(piece, next)) {
          waited++;
          return;
        }
      }
      ch.end();
      resolve();
    };
    next();
  });
  assert.ok(waited > 0, 'the hub had to wait for credit at least once');
  assert.equal((await c.ended).toString(), sha(body));
  assert.equal(c.head?.status, 200);
  assert.ok(ch.closed, 'both halves ended: the exchange is over');
});

test('a listener that pauses stops the credit: the sender waits until it resumes, and nothing is lost', async (t) => {
  const { hub, agent } = await openTunnel(t, { hubWindowBytes: 16_384, hubMaxFrameBytes: 16_384 });
  const chunk = Buffer.alloc(8_192, 1);
  let agentSide!: TunnelChannel;
  let blockedWrites = 0;
  const sent = new Promise<void>((resolve) => {
    agent.onChannel = (ch) => {
      agentSide = ch;
      ch.listener = { onData: () => undefined, onError: () => undefined };
      ch.respond({ status: 200, headers: [] });
      let n = 0;
      const more = (): void => {
        while (n < 10) {
          n++;
          if (!ch.write(chunk, more, n === 10)) {
            blockedWrites++;
            return;
          }
        }
        resolve();
      };
      more();
    };
  });
  const parts: Buffer[] = [];
  let channel!: TunnelChannel;
  const ended = new Promise<number>((resolve) => {
    channel = hub.openRequest({ method: 'GET', target: '/stream', headers: [] }, true, {
      onData: (c, end) => {
        parts.push(c);
        // Take the first window's worth, then stop consuming.
        if (parts.length === 2) channel.pause();
        if (end) resolve(Buffer.concat(parts).length);
      },
      onError: () => undefined,
    });
  });
  await sleep(200);
  assert.equal(Buffer.concat(parts).length, 16_384, 'no more than the window arrived while paused');
  assert.ok(blockedWrites >= 1, "the agent's write waited for credit");
  assert.equal(agentSide.closed, false);
  channel.resume();
  await sent;
  assert.equal(await ended, 10 * 8_192);
});

test('a body of known length ends with its last DATA frame: END_STREAM rides on it', async (t) => {
  const { hub, agent } = await openTunnel(t);
  agent.onChannel = (ch) => {
    ch.listener = { onData: () => undefined, onError: () => undefined };
    ch.respond({ status: 200, headers: [['content-length', '5']] });
    ch.write(Buffer.from('hello'), () => undefined, true);
  };
  const calls: Array<[string, boolean]> = [];
  await new Promise<void>((resolve) => {
    hub.openRequest({ method: 'GET', target: '/', headers: [] }, true, {
      onResponse: (_h, end) => calls.push(['head', end]),
      onData: (c, end) => {
        calls.push([c.toString(), end]);
        if (end) resolve();
      },
      onError: () => undefined,
    });
  });
  assert.deepEqual(calls, [['head', false], ['hello', true]], 'one DATA frame carried the body and the end');
});

test('a RESET from the hub reaches the agent as an error; a RESET after a complete answer leaves the hub its answer', async (t) => {
  const { hub, agent } = await openTunnel(t);
  const agentError = new Promise<Error>((resolve) => {
    agent.onChannel = (ch) => {
      if (ch.request?.target === '/slow') {
        ch.listener = { onData: () => undefined, onError: resolve };
        return;
      }
      // Answers in full before the request body arrives, then asks the hub to stop sending it.
      ch.listener = { onData: () => undefined, onError: () => undefined };
      ch.respond({ status: 413, headers: [['content-length', '0']] }, true);
      ch.cancel(ErrorCode.CANCEL);
    };
  });
  const slow = collector();
  const ch = hub.openRequest({ method: 'GET', target: '/slow', headers: [] }, true, slow);
  await sleep(50);
  ch.cancel();
  const err = await agentError;
  assert.ok(err instanceof StreamResetError);
  assert.equal(err.code, ErrorCode.CANCEL);

  const early = collector();
  const upload = hub.openRequest({ method: 'POST', target: '/big', headers: [] }, false, early);
  await early.ended;
  assert.equal(early.head?.status, 413);
  await sleep(50);
  assert.ok(upload.closed, 'the RESET ended the upload');
  const lateError = await Promise.race([early.failed, sleep(50).then(() => undefined)]);
  assert.equal(lateError, undefined, 'the hub kept the answer; no error for it');
  assert.equal(upload.write(Buffer.from('more'), () => undefined), true, 'writes after the end are dropped, not queued');
});

test('the tunnel closing fails every open channel with the reason, on both ends', async (t) => {
  const { hub, agent, agentSocket } = await openTunnel(t);
  const agentError = new Promise<Error>((resolve) => {
    agent.onChannel = (ch) => {
      ch.listener = { onData: () => undefined, onError: resolve };
    };
  });
  const c = collector();
  hub.openRequest({ method: 'GET', target: '/hang', headers: [] }, true, c);
  await sleep(50);
  agentSocket.destroy();
  const [hubErr, agentErr] = await Promise.all([c.failed, agentError]);
  assert.ok(hubErr instanceof Error);
  assert.ok(agentErr instanceof Error);
});
