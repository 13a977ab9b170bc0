// One load generator process: subscribers and the publishers that feed them (a closed loop needs both
// in one process), or idle clients. Raw TCP sockets, MQTT 3.1.1, clean sessions. Run by main.ts, never
// inside a broker's process.
//
// Usage: node --import tsx bench/mqtt/load.ts '<GenSpec JSON>'
// Prints {"up":N} each second while connecting, then {"ready":{...}} once every connection is up and
// every subscriber subscribed. Then reads commands on stdin, one a line:
//   start    publishers begin: closed loop at full speed, or paced at ratePerS
//   mark     counters and the latency histogram start from zero (the measured part begins)
//   report   prints {"report":{...}}: counts and latency since the mark
//   stop     closes every connection and exits
// stdin closing (main.ts gone) also ends the process.
//
// Closed loop: a publisher may send while fewer than `inflight` copies are on their way (published, not
// yet read by a subscriber of this process), like autocannon's connections for HTTP: the broker always
// has work, and no broker is pushed into dropping messages, so what is counted is what it sustains.
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { BUCKET_US, type GenReport, type GenSpec } from './gen-spec.js';
import { connectPacket, Framer, nowUs, PINGREQ, publishTemplate, subscribePacket, type WireHandler } from './wire.js';

const BUCKETS = 200_000; // 10 µs up to 2 s; slower messages land in the last bucket
const CONNECT_TIMEOUT_MS = 30_000;
/** Closed loop: copies still missing after this long without any arriving are written off. */
const STALL_MS = 1000;

interface Conn {
  sock: Socket;
  /** `{i}` of its topic or filter. */
  index: number;
  blocked: boolean;
  /** QoS 1 PUBLISHes awaiting PUBACK. */
  unacked: number;
  nextId: number;
  acks: number[];
  tpl: ReturnType<typeof publishTemplate> | undefined;
  one: ReturnType<typeof publishTemplate> | undefined;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as GenSpec;
const subs: Conn[] = [];
const pubs: Conn[] = [];
const idle: Conn[] = [];
const hist = new Uint32Array(BUCKETS);
let sent = 0;
let received = 0;
let acked = 0;
let behind = 0;
let lost = 0;
let dropped = 0;
/** Totals since start, for the closed loop (the counters above restart at the mark). */
let copiesOut = 0;
let copiesIn = 0;
let copiesLost = 0;
let running = false;
let stopping = false;
/** Receive time of the chunk being read, µs. */
let now = 0;

const fill = (pattern: string, i: number): string => pattern.replaceAll('{i}', String(i));
const out = (o: unknown): void => void process.stdout.write(`${JSON.stringify(o)}\n`);

/**
 * Every socket reads into this one buffer (net's `onread`): the framer consumes each read before the
 * next, so no Buffer and no stream event per read, which keeps the generator cheaper than any broker.
 */
const READ_BUFFER = Buffer.allocUnsafe(64 * 1024);

function open(index: number, role: 'pub' | 'sub' | 'idle'): Promise<Conn | undefined> {
  return new Promise((resolve) => {
    // The socket is set below: its read callback needs the connection, and the connection its socket.
    const c: Conn = { sock: undefined as unknown as Socket, index, blocked: false, unacked: 0, nextId: 1, acks: [], tpl: undefined, one: undefined };
    let up = false;
    const finish = (ok: boolean): void => {
      if (up) return;
      up = true;
      clearTimeout(timer);
      if (!ok) c.sock.destroy();
      resolve(ok ? c : undefined);
    };
    const h: WireHandler = {
      connack(code) {
        if (code !== 0) return finish(false);
        if (role === 'sub') c.sock.write(subscribePacket(1, fill(spec.subs.topic, index), spec.qos));
        else finish(true);
      },
      suback(granted) {
        finish(granted === spec.qos);
      },
      publish(stampUs, packetId) {
        received++;
        copiesIn++;
        const us = now - stampUs;
        hist[us < 0 ? 0 : Math.min(BUCKETS - 1, Math.floor(us / BUCKET_US))]!++;
        if (packetId !== 0) c.acks.push(packetId);
      },
      puback() {
        acked++;
        c.unacked--;
      },
      pingresp() {},
    };
    const framer = new Framer(h);
    const sock = (c.sock = connect({
      port: role === 'sub' ? (spec.subPort ?? spec.port) : spec.port,
      host: '127.0.0.1',
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback(n: number, buf: Uint8Array): boolean {
          now = nowUs();
          framer.push((buf as Buffer).subarray(0, n));
          if (c.acks.length > 0) writeAcks(c);
          if (running && spec.ratePerS === 0) schedule();
          return true;
        },
      },
    }));
    const timer = setTimeout(() => finish(false), CONNECT_TIMEOUT_MS);
    sock.on('drain', () => {
      c.blocked = false;
      if (running && spec.ratePerS === 0) schedule();
    });
    sock.on('error', () => finish(false));
    sock.on('close', () => {
      if (up && !stopping) dropped++;
      finish(false);
    });
    sock.write(connectPacket(`${spec.name}-${role}-${index}`, spec.keepaliveS));
  });
}

/** One write for every PUBACK a read called for. */
function writeAcks(c: Conn): void {
  const buf = Buffer.allocUnsafe(4 * c.acks.length);
  for (let k = 0; k < c.acks.length; k++) {
    buf[k * 4] = 0x40;
    buf[k * 4 + 1] = 2;
    buf.writeUInt16BE(c.acks[k]!, k * 4 + 2);
  }
  c.acks.length = 0;
  c.sock.write(buf);
}

/** Writes `n` PUBLISH packets from a template in one write, stamped now. */
function publish(c: Conn, tpl: NonNullable<Conn['tpl']>, n: number): void {
  const buf = Buffer.allocUnsafe(tpl.size * n);
  tpl.bytes.copy(buf, 0, 0, tpl.size * n);
  const t = nowUs();
  for (let k = 0; k < n; k++) {
    const at = k * tpl.size;
    buf.writeDoubleLE(t, at + tpl.stampAt);
    if (spec.qos > 0) {
      buf.writeUInt16BE(c.nextId, at + tpl.idAt);
      c.nextId = c.nextId === 65_535 ? 1 : c.nextId + 1;
    }
  }
  if (spec.qos > 0) c.unacked += n;
  sent += n;
  copiesOut += n * spec.fanout;
  if (!c.sock.write(buf)) c.blocked = true;
}

let scheduled = false;
function schedule(): void {
  if (scheduled) return;
  scheduled = true;
  setImmediate(pump);
}

/** Closed loop: publishers take turns sending a batch while the in-flight budget allows. */
let turn = 0;
function pump(): void {
  scheduled = false;
  if (!running) return;
  const n = pubs.length;
  let any = false;
  for (let k = 0; k < n; k++) {
    const room = Math.floor((spec.inflight - (copiesOut - copiesIn - copiesLost)) / spec.fanout);
    if (room <= 0) break;
    const c = pubs[(turn + k) % n]!;
    if (c.blocked) continue;
    const count = Math.min(spec.batch, room, spec.qos > 0 ? spec.pubackWindow - c.unacked : spec.batch);
    if (count <= 0) continue;
    publish(c, c.tpl!, count);
    any = true;
  }
  turn = (turn + 1) % n;
  // Room left after every publisher had a turn: another round, once I/O has had its turn.
  if (any) schedule();
}

/** A broker that dropped copies would stall the loop: what has not arrived after STALL_MS is written off. */
function watchStalls(): void {
  let last = copiesIn;
  setInterval(() => {
    const missing = copiesOut - copiesIn - copiesLost;
    if (running && copiesIn === last && missing > 0) {
      copiesLost += missing;
      lost += missing;
      schedule();
    }
    last = copiesIn;
  }, STALL_MS).unref();
}

/** Paced: every millisecond, the messages due so far, one PUBLISH per write, round-robin over publishers. */
function paced(): void {
  const t0 = nowUs();
  let due = 0;
  let next = 0;
  const tick = (): void => {
    if (!running) return;
    const want = Math.floor(((nowUs() - t0) * spec.ratePerS) / 1e6);
    while (due < want) {
      due++;
      const c = pubs[next]!;
      next = (next + 1) % pubs.length;
      if (spec.qos > 0 && c.unacked >= spec.pubackWindow) {
        behind++;
        continue;
      }
      publish(c, c.one!, 1);
    }
    setTimeout(tick, 1);
  };
  tick();
}

function report(): GenReport {
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < BUCKETS; i++) if (hist[i]! > 0) pairs.push([i, hist[i]!]);
  return { sent, received, acked, behind, lost, dropped, hist: pairs };
}

/** Opens `count` connections of one role, at most connectConcurrency at a time. */
async function connectAll(into: Conn[], count: number, first: number, role: 'pub' | 'sub' | 'idle'): Promise<number> {
  let next = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (next < count) {
      const c = await open(first + next++, role);
      if (c === undefined) failed++;
      else into.push(c);
    }
  };
  await Promise.all(Array.from({ length: Math.min(spec.connectConcurrency, count) }, worker));
  return failed;
}

const progress = setInterval(() => out({ up: subs.length + pubs.length + idle.length }), 1000);
let failed = await connectAll(subs, spec.subs.conns, spec.subs.first, 'sub');
failed += await connectAll(pubs, spec.pubs.conns, spec.pubs.first, 'pub');
failed += await connectAll(idle, spec.idle, 0, 'idle');
clearInterval(progress);
for (const c of pubs) {
  c.tpl = publishTemplate(fill(spec.pubs.topic, c.index), spec.qos, spec.payloadBytes, spec.batch);
  c.one = publishTemplate(fill(spec.pubs.topic, c.index), spec.qos, spec.payloadBytes, 1);
}
// Keep alive (3.1.1 §3.1.2.10): one sweep for every connection, at half the interval.
if (spec.keepaliveS > 0) {
  setInterval(() => {
    for (const list of [subs, pubs, idle]) for (const c of list) if (!c.blocked) c.sock.write(PINGREQ);
  }, (spec.keepaliveS * 1000) / 2).unref();
}
out({ ready: { conns: subs.length + pubs.length + idle.length, failed } });

const rl = createInterface({ input: process.stdin });
rl.on('line', (cmd) => {
  if (cmd === 'start' && pubs.length > 0 && !running) {
    running = true;
    if (spec.ratePerS > 0) paced();
    else {
      watchStalls();
      schedule();
    }
  } else if (cmd === 'mark') {
    sent = received = acked = behind = lost = dropped = 0;
    hist.fill(0);
    out({ marked: true });
  } else if (cmd === 'report') {
    out({ report: report() });
  } else if (cmd === 'stop') {
    shutdown();
  }
});
rl.on('close', shutdown);

function shutdown(): void {
  stopping = true;
  running = false;
  for (const list of [subs, pubs, idle]) for (const c of list) c.sock.destroy();
  process.exit(0);
}
