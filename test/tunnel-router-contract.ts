/**
 * The behaviour every TunnelRouter implementation must show (LocalTunnelRouter now; one that routes a
 * front's requests to the edge holding the tunnel later). The factory gives a "world": a router, and a
 * way to connect a real agent (a TunnelSession on a real socket, as `cloudrest agent` speaks) for a
 * device, wherever the implementation wants its tunnel to land. The suite drives requests, control
 * frames and tunnel closes through the router only, and checks what the agent sees.
 */
import { afterEach, beforeEach, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { ErrorCode } from '../src/relay/protocol/frames.js';
import type { ResponseHead } from '../src/relay/protocol/heads.js';
import type { RevokedEntry } from '../src/relay/protocol/lan-frames.js';
import type { TunnelChannel } from '../src/relay/protocol/channel.js';
import type { TunnelSession } from '../src/relay/protocol/session.js';
import { RouteError, isWaiting, type Opened, type RequestStream, type ResponseListener, type TunnelRouter, type WaitingStream } from '../src/relay/router.js';
import type { Implementation } from './support/contracts.js';

export interface RouterWorldLimits {
  /** Streams in flight per device before requests queue. */
  maxInflightPerDevice: number;
  /** Requests queued per device before `open` answers 'busy'. */
  maxQueuedPerDevice: number;
  /** Flow-control window of each side of the tunnel. */
  windowBytes: number;
}

export interface RouterWorld {
  router: TunnelRouter;
  /**
   * Registers the device if new and connects an agent for it; resolves with the agent's session once
   * the router reaches the device through this connection.
   */
  connect(deviceId: string): Promise<TunnelSession>;
  close(): Promise<void>;
}

const LIMITS: RouterWorldLimits = { maxInflightPerDevice: 2, maxQueuedPerDevice: 1, windowBytes: 65_536 };
const DEADLINE_MS = 10_000;

/** What a caller heard on one exchange. */
class Heard implements ResponseListener {
  head: ResponseHead | undefined;
  readonly chunks: Buffer[] = [];
  bytes = 0;
  ended = false;
  error: Error | undefined;
  events = 0;
  #wake: (() => void) | undefined;
  onChunk: ((n: number) => void) | undefined;

  onResponse(head: ResponseHead, end: boolean): void {
    this.events++;
    this.head = head;
    if (end) this.ended = true;
    this.#wake?.();
  }

  onData(chunk: Buffer, end: boolean): void {
    this.events++;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.bytes += chunk.length;
      this.onChunk?.(chunk.length);
    }
    if (end) this.ended = true;
    this.#wake?.();
  }

  onError(err: Error): void {
    this.events++;
    this.error = err;
    this.#wake?.();
  }

  /** Resolves once `done()` holds (checked after each event), or fails past the deadline. */
  async until(done: () => boolean, what: string): Promise<void> {
    const deadline = Date.now() + DEADLINE_MS;
    while (!done()) {
      if (this.error) throw this.error;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 50));
        this.#wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  get body(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

/** Agent side: every request of the session goes to `serve`, which gets the channel and the request body so far. */
function serveWith(agent: TunnelSession, serve: (ch: TunnelChannel, body: Buffer) => void): void {
  agent.onChannel = (ch) => {
    const parts: Buffer[] = [];
    if (ch.peerEnded) {
      serve(ch, Buffer.alloc(0));
      return;
    }
    ch.listener = {
      onData: (chunk, end) => {
        parts.push(chunk);
        if (end) serve(ch, Buffer.concat(parts));
      },
      onError: () => undefined,
    };
  };
}

/** The answer of `open`, whether it came synchronously or not. */
async function opened(o: Opened | Promise<Opened>): Promise<Opened> {
  return o;
}

function stream(o: Opened): RequestStream {
  assert.ok(typeof o !== 'string' && !isWaiting(o), `expected an open stream, got ${typeof o === 'string' ? o : 'a queued request'}`);
  return o;
}

/**
 * A complete request the device cannot take yet: one router answers with a queued request, one that sent
 * it ahead to another node (src/cluster/node-link.ts) with an open stream that waits there. Either way
 * the caller can cancel it, and it starts when a slot frees.
 */
type Held = { queued: WaitingStream } | { ahead: RequestStream };

function held(o: Opened): Held {
  assert.ok(typeof o !== 'string', `expected a queued request or one sent ahead, got ${String(o)}`);
  return isWaiting(o) ? { queued: o } : { ahead: o };
}

function cancelHeld(h: Held): void {
  if ('queued' in h) h.queued.cancel();
  else h.ahead.cancel();
}

/** The request was refused with `code`: at once (busy), or through its listener when it was sent ahead. */
async function refused(o: Opened, heard: Heard, code: RouteError['code']): Promise<void> {
  if (typeof o === 'string') {
    assert.equal(o, code === 'CR_ERR_TOO_MANY_REQUESTS' ? 'busy' : 'offline');
    return;
  }
  if (isWaiting(o)) {
    await assert.rejects(o.started, (err: unknown) => err instanceof RouteError && err.code === code);
    return;
  }
  await heard.until(() => heard.error !== undefined, `the ${code} refusal`);
  assert.ok(heard.error instanceof RouteError && heard.error.code === code, `expected ${code}, got ${String(heard.error)}`);
  assert.equal(heard.head, undefined, 'no answer head before the refusal');
}

async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const GET = { method: 'GET', target: '/status', headers: [['accept', 'application/json']] as Array<[string, string]> };

export function tunnelRouterContract(implementation: Implementation<RouterWorld, [RouterWorldLimits]>): void {
  const make = (limits: RouterWorldLimits) => implementation.make(limits);
  {
    let world: RouterWorld;
    let router: TunnelRouter;

    beforeEach(async () => {
      world = await make(LIMITS);
      router = world.router;
    });
    afterEach(() => world.close());

    it('answers offline for a device with no tunnel, and has nothing to send or close', async () => {
      assert.equal(await opened(router.open('d_absent', GET, true, new Heard())), 'offline');
      assert.equal(await router.send('d_absent', { kind: 'lan-keys', keys: [] }), false);
      assert.equal(await router.closeTunnel('d_absent', ErrorCode.REVOKED, 'device revoked'), false);
    });

    it('carries a request to the device and its answer back: head, headers and body', async () => {
      const agent = await world.connect('d_1');
      serveWith(agent, (ch, body) => {
        const req = ch.request!;
        ch.respond({ status: 200, headers: [['content-type', 'text/plain'], ['x-seen', `${req.method} ${req.target} ${req.headers.find(([k]) => k === 'accept')?.[1]}`]] });
        ch.write(Buffer.from(`body:${body.length}`), () => undefined, true);
      });
      const heard = new Heard();
      stream(await opened(router.open('d_1', GET, true, heard)));
      await heard.until(() => heard.ended, 'the answer');
      assert.equal(heard.head?.status, 200);
      assert.deepEqual(heard.head?.headers, [['content-type', 'text/plain'], ['x-seen', 'GET /status application/json']]);
      assert.equal(heard.body, 'body:0');
    });

    it('streams a request body many windows long to the device, waiting when told to', async () => {
      const agent = await world.connect('d_1');
      serveWith(agent, (ch, body) => {
        ch.respond({ status: 200, headers: [] });
        ch.write(Buffer.from(`${body.length} ${body.every((b, i) => b === (i & 0xff))}`), () => undefined, true);
      });
      const heard = new Heard();
      const s = stream(await opened(router.open('d_1', { method: 'PUT', target: '/blob', headers: [] }, false, heard)));
      const total = LIMITS.windowBytes * 8;
      const all = Buffer.alloc(total);
      for (let i = 0; i < total; i++) all[i] = i & 0xff;
      let waits = 0;
      for (let off = 0; off < total; off += 16_384) {
        // When the window is full the next chunk waits for the callback (the device reading on).
        await new Promise<void>((resolve) => {
          if (s.write(all.subarray(off, off + 16_384), resolve)) resolve();
          else waits++;
        });
      }
      s.end();
      await heard.until(() => heard.ended, 'the answer');
      assert.equal(heard.body, `${total} true`);
      assert.ok(waits > 0, 'a body of 8 windows made the caller wait at least once');
    });

    it('holds the device back while the caller is paused, then delivers the rest on resume', async () => {
      const agent = await world.connect('d_1');
      const total = LIMITS.windowBytes * 16;
      let sent = 0;
      serveWith(agent, (ch) => {
        ch.respond({ status: 200, headers: [] });
        const pump = (): void => {
          while (sent < total) {
            const n = Math.min(8192, total - sent);
            sent += n;
            if (!ch.write(Buffer.alloc(n, 7), pump, sent === total)) return;
          }
        };
        pump();
      });
      const heard = new Heard();
      const s = stream(await opened(router.open('d_1', GET, true, heard)));
      let pausedAt = -1;
      heard.onChunk = () => {
        if (pausedAt < 0) {
          s.pause();
          pausedAt = heard.bytes;
        }
      };
      await heard.until(() => pausedAt >= 0, 'the first chunk');
      // Whatever the device sends meanwhile is bounded by the window (and what was credited before the pause).
      await new Promise((r) => setTimeout(r, 300));
      assert.ok(heard.bytes <= pausedAt + 2 * LIMITS.windowBytes, `received ${heard.bytes} bytes while paused (window ${LIMITS.windowBytes})`);
      assert.ok(sent < total, 'the device is still waiting to send');
      heard.onChunk = undefined;
      s.resume();
      await heard.until(() => heard.ended, 'the whole body');
      assert.equal(heard.bytes, total);
    });

    it('tells the device when the caller abandons a request, and the caller hears nothing more', async () => {
      const agent = await world.connect('d_1');
      const abandoned = new Promise<Error>((resolve) => {
        agent.onChannel = (ch) => {
          ch.listener = { onData: () => undefined, onError: resolve };
          ch.respond({ status: 200, headers: [] });
          ch.write(Buffer.from('part of it'), () => undefined);
        };
      });
      const heard = new Heard();
      const s = stream(await opened(router.open('d_1', { method: 'POST', target: '/slow', headers: [] }, false, heard)));
      await heard.until(() => heard.bytes > 0, 'the first chunk');
      const events = heard.events;
      s.cancel();
      const err = await abandoned;
      assert.match(err.message, /reset|cancel/i);
      assert.equal(heard.events, events, 'no event after cancel');
    });

    it('queues requests past the device\'s in-flight limit, starts them as slots free, and answers busy past the queue', async () => {
      const agent = await world.connect('d_1');
      const heldAtDevice: TunnelChannel[] = [];
      serveWith(agent, (ch) => {
        if (ch.request!.target === '/hold') heldAtDevice.push(ch);
        else {
          ch.respond({ status: 200, headers: [] });
          ch.write(Buffer.from(ch.request!.target), () => undefined, true);
        }
      });
      const first = [new Heard(), new Heard()];
      for (const h of first) stream(await opened(router.open('d_1', { method: 'GET', target: '/hold', headers: [] }, true, h)));
      const queuedHeard = new Heard();
      const q = held(await opened(router.open('d_1', { method: 'GET', target: '/queued', headers: [] }, true, queuedHeard)));
      await eventually(async () => heldAtDevice.length === 2, 'both held requests at the device');
      const busyHeard = new Heard();
      await refused(await opened(router.open('d_1', GET, true, busyHeard)), busyHeard, 'CR_ERR_TOO_MANY_REQUESTS');
      assert.equal(queuedHeard.events, 0, 'the queued request waits');
      heldAtDevice[0]!.respond({ status: 204, headers: [] }, true);
      if ('queued' in q) await q.queued.started;
      await queuedHeard.until(() => queuedHeard.ended, 'the queued request\'s answer');
      assert.equal(queuedHeard.body, '/queued');
      await first[0]!.until(() => first[0]!.ended, 'the first answer');
      assert.equal(first[0]!.head?.status, 204);
    });

    it('drops a queued request its caller cancels: it never reaches the device', async () => {
      const agent = await world.connect('d_1');
      const targets: string[] = [];
      const heldAtDevice: TunnelChannel[] = [];
      serveWith(agent, (ch) => {
        targets.push(ch.request!.target);
        heldAtDevice.push(ch);
      });
      const holding = Array.from({ length: LIMITS.maxInflightPerDevice }, () => new Heard());
      for (const h of holding) stream(await opened(router.open('d_1', { method: 'GET', target: '/hold', headers: [] }, true, h)));
      const q = held(await opened(router.open('d_1', { method: 'GET', target: '/cancelled', headers: [] }, true, new Heard())));
      cancelHeld(q);
      if ('queued' in q) await assert.rejects(q.queued.started);
      await eventually(async () => heldAtDevice.length === LIMITS.maxInflightPerDevice, 'the held requests at the device');
      for (const ch of heldAtDevice) ch.respond({ status: 204, headers: [] }, true);
      for (const h of holding) await h.until(() => h.ended, 'the held answers');
      // A request after them reaches the device, the cancelled one never did.
      const after = new Heard();
      serveWith(agent, (ch) => {
        targets.push(ch.request!.target);
        ch.respond({ status: 200, headers: [] }, true);
      });
      stream(await opened(router.open('d_1', { method: 'GET', target: '/after', headers: [] }, true, after)));
      await after.until(() => after.ended, 'the later answer');
      assert.deepEqual(targets, ['/hold', '/hold', '/after']);
    });

    it('fails requests in flight and queued ones with CR_ERR_DEVICE_OFFLINE when the device goes away', async () => {
      const agent = await world.connect('d_1');
      serveWith(agent, () => undefined); // never answers
      const inflight = [new Heard(), new Heard()];
      for (const h of inflight) stream(await opened(router.open('d_1', GET, true, h)));
      const queuedHeard = new Heard();
      const q = await opened(router.open('d_1', GET, true, queuedHeard));
      held(q);
      agent.destroy(new Error('agent gone'));
      await refused(q, queuedHeard, 'CR_ERR_DEVICE_OFFLINE');
      for (const h of inflight) await h.until(() => h.error !== undefined, 'the in-flight error');
      await eventually(async () => (await opened(router.open('d_1', GET, true, new Heard()))) === 'offline', 'the device offline');
    });

    it('closes a device\'s tunnel with the code it is given, and the device is offline after', async () => {
      const agent = await world.connect('d_1');
      const goaway = once(agent, 'goaway');
      assert.equal(await router.closeTunnel('d_1', ErrorCode.REVOKED, 'device revoked'), true);
      const [g] = (await goaway) as [{ code: number; reason: string }];
      assert.deepEqual([g.code, g.reason], [ErrorCode.REVOKED, 'device revoked']);
      await eventually(async () => (await opened(router.open('d_1', GET, true, new Heard()))) === 'offline', 'the device offline');
    });

    it('sends control frames to the device\'s agent: the LAN keys, and revocations in as many frames as they need', async () => {
      const agent = await world.connect('d_1');
      const keys = [{ kid: '0123456789abcdef', ed25519: 'A'.repeat(43) }];
      const gotKeys = once(agent, 'lanKeys');
      assert.equal(await router.send('d_1', { kind: 'lan-keys', keys }), true);
      assert.deepEqual((await gotKeys)[0], keys);

      const entries: RevokedEntry[] = Array.from({ length: 5000 }, (_, i) => ({ tokenHash: i.toString(16).padStart(64, '0'), expiresAt: 1_800_000_000_000 + i }));
      const got: RevokedEntry[] = [];
      let frames = 0;
      agent.on('revoked', (list: RevokedEntry[]) => {
        frames++;
        got.push(...list);
      });
      assert.equal(await router.send('d_1', { kind: 'revoked', entries }), true);
      await eventually(async () => got.length >= entries.length, 'every revocation at the agent');
      assert.deepEqual(got, entries);
      assert.ok(frames > 1, `5000 entries do not fit one 64 KiB frame (got ${frames} frame)`);
    });

    it('routes a device that reconnects to its new tunnel at once, and the old one is told to go', async () => {
      const first = await world.connect('d_1');
      const told = once(first, 'goaway');
      const second = await world.connect('d_1');
      const [g] = (await told) as [{ code: number }];
      assert.equal(g.code, ErrorCode.TAKEN_OVER);
      serveWith(first, (ch) => ch.respond({ status: 500, headers: [] }, true));
      serveWith(second, (ch) => ch.respond({ status: 200, headers: [['x-tunnel', 'second']] }, true));
      const heard = new Heard();
      stream(await opened(router.open('d_1', GET, true, heard)));
      await heard.until(() => heard.ended, 'the answer');
      assert.deepEqual(heard.head, { status: 200, headers: [['x-tunnel', 'second']] });
    });

    it('keeps devices apart: closing one leaves the other reachable', async () => {
      await world.connect('d_1');
      const other = await world.connect('d_2');
      serveWith(other, (ch) => ch.respond({ status: 200, headers: [] }, true));
      assert.equal(await router.closeTunnel('d_1', ErrorCode.REVOKED, 'device revoked'), true);
      const heard = new Heard();
      stream(await opened(router.open('d_2', GET, true, heard)));
      await heard.until(() => heard.ended, 'the answer');
      assert.equal(heard.head?.status, 200);
    });
  }
}
