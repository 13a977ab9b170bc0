// A load generator for the many-agents benchmark: opens N WebSocket connections from one process.
//
//   mode "tunnel": each connection is a real agent handshake, TunnelSession (role 'agent') over
//                  wsDuplex: HELLO with the device's credentials, wait for WELCOME, then PING every
//                  welcome.pingIntervalMs, as the agent does (src/agent/connection.ts).
//   mode "bare":   a plain websocket that sends an 18-byte binary message every pingIntervalMs (the
//                  size of a PING frame) and otherwise does nothing: the floor.
//
// Usage: node --import tsx bench/agents/swarm.ts '{"url":...,"mode":...,"from":0,"to":5000,"pingIntervalMs":20000}'
// Prints {"up":n,"failed":m,"dropped":d,"pongs":p} once a second, and {"ready":true,...} once every
// connection is up (or has failed); then idles until killed. Each connection's first PING comes after a
// random part of the interval, so PINGs are spread evenly as with agents that connected at random times.
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { PROTOCOL_VERSION } from '../../src/relay/protocol/frames.js';
import { TunnelSession, type Welcome } from '../../src/relay/protocol/session.js';
import { wsDuplex } from '../../src/relay/protocol/ws-duplex.js';
import { benchDevice } from './devices.js';

interface SwarmSpec {
  url: string;
  mode: 'tunnel' | 'bare';
  from: number;
  to: number;
  /** bare mode only; tunnel mode takes the hub's WELCOME value. */
  pingIntervalMs: number;
  /** Handshakes in flight at once, so the listen backlog never overflows. */
  parallel?: number;
  timeoutMs?: number;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as SwarmSpec;
const total = spec.to - spec.from;
const parallel = spec.parallel ?? 200;
const deadline = Date.now() + (spec.timeoutMs ?? 180_000);
const bootId = randomUUID();
const MAX_FRAME_BYTES = 65_536;
const WINDOW_BYTES = 262_144;
// What a device's GET /device returns (src/demo/device-server.ts), sent in every HELLO.
const INFO = { name: 'Bench thermostat', manufacturer: 'cloudrest', version: '1.0.0', revision: '1', api: '/', apiAuthPath: null, apiFactoryConnect: null, email: null };
const PING_FRAME = Buffer.from([0x08, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

let up = 0;
let failed = 0;
let dropped = 0;
let pongs = 0;

/** Calls `ping` every `ms`, starting at a random phase. */
function everyFromRandomPhase(ms: number, ping: () => void, onClose: (stop: () => void) => void): void {
  let interval: NodeJS.Timeout | undefined;
  const first = setTimeout(() => {
    ping();
    interval = setInterval(ping, ms);
  }, Math.floor(Math.random() * ms));
  onClose(() => {
    clearTimeout(first);
    clearInterval(interval);
  });
}

/** Opens connection `i`; resolves once it is established (or has failed). */
function open(i: number): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(spec.url, { perMessageDeflate: false, handshakeTimeout: 30_000 });
    let established = false;
    const fail = (): void => {
      if (established) dropped++;
      else failed++;
      resolve();
    };
    if (spec.mode === 'bare') {
      ws.once('open', () => {
        established = true;
        up++;
        ws.on('message', () => pongs++);
        everyFromRandomPhase(spec.pingIntervalMs, () => ws.send(PING_FRAME), (stop) => ws.once('close', stop));
        resolve();
      });
      ws.once('error', () => undefined);
      ws.once('close', fail);
      return;
    }
    const { id, secret } = benchDevice(i);
    const session = new TunnelSession(wsDuplex(ws), 'agent', { maxFrameBytes: MAX_FRAME_BYTES, windowBytes: WINDOW_BYTES });
    session.once('welcome', (w: Welcome) => {
      established = true;
      up++;
      session.on('pong', () => pongs++);
      const ping = (): void => {
        const p = Buffer.allocUnsafe(8);
        p.writeBigUInt64BE(BigInt(Date.now()));
        session.sendPing(p);
      };
      everyFromRandomPhase(w.pingIntervalMs, ping, (stop) => session.once('close', stop));
      resolve();
    });
    session.once('close', fail);
    session.sendHello({ version: PROTOCOL_VERSION, deviceId: id, secret, bootId, info: INFO, maxFrameBytes: MAX_FRAME_BYTES, windowBytes: WINDOW_BYTES, maxStreams: 64 });
  });
}

const state = (): string => JSON.stringify({ up: up - dropped, failed, dropped, pongs });
// Reports until killed; the sockets and PING timers keep the process running.
setInterval(() => process.stdout.write(`${state()}\n`), 1000);
let next = spec.from;
async function worker(): Promise<void> {
  while (next < spec.to && Date.now() < deadline) await open(next++);
}
await Promise.all(Array.from({ length: Math.min(parallel, total) }, worker));
process.stdout.write(`{"ready":true,${state().slice(1)}\n`);
process.on('SIGTERM', () => process.exit(0));
