// The broker's own CPU per message, in one process and without sockets: a Broker build fed pre-encoded
// packets through in-memory streams, with the hub's ACL hook in front (one rule, as bench/mqtt runs
// the hub). For A/B decisions when the machine is too noisy for whole-system runs: alternate two builds,
// several runs each, and compare medians. No syscalls are counted, only the broker's JavaScript.
//
//   node --import tsx bench/mqtt/broker-cpu.ts DIST SCENARIO [MESSAGES=100000] [ACL=whole]
//   DIST      a dist/ folder: dist, or a copy of an earlier build (.bench-tmp/a/dist)
//   SCENARIO  fanin0 fanin1 p2p0 p2p1 fanout0 fanout1 lat0 lat1 (shape, then QoS; lat: one PUBLISH per read)
//   ACL       whole: subscriptions granted whole, as the hub grants a device its own topics (default);
//             per-message: every subscription granted in part, so each delivery is checked (the hub's
//             ACL behind a per-subscription cache; a build without it runs as whole, and says so)
// Prints one line: {"scenario":...,"dist":...,"msgs":N,"usPerMsg":X} (and "acl" when per-message).
import { Duplex } from 'node:stream';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connectPacket, publishTemplate, readFixedHeader, subscribePacket, type FixedHeader } from './wire.js';

interface BrokerLike {
  handle(stream: Duplex, meta: { remoteAddress: string; transport: 'tcp' }): void;
}
type Identity = { kind: 'anonymous' };
interface AclLike {
  allows(id: Identity, action: 'publish' | 'subscribe', name: string, clientId: string): boolean;
}

const [dist = 'dist', scenario = 'fanin1', messagesArg = '100000', aclAsked = 'whole'] = process.argv.slice(2);
// An earlier build would refuse a 'per-message' answer (it knows only true and false).
const aclMode = aclAsked === 'per-message' && !existsSync(resolve(dist, 'mqtt/receive-check.js')) ? 'whole (no per-message check in this build)' : aclAsked;
const load = async <T>(file: string): Promise<T> => (await import(pathToFileURL(resolve(dist, file)).href)) as T;
const { Broker } = await load<{ Broker: new (o: object, h: object) => BrokerLike }>('mqtt/broker.js');
const { Acl, parseAcl } = await load<{ Acl: new (rules: unknown, owns: () => boolean) => AclLike; parseAcl(text: string): unknown }>('mqtt/hub/acl.js');
const acl = new Acl(parseAcl('allow all anonymous bench/#\n'), () => false);
const anonymous: Identity = { kind: 'anonymous' };
const broker = new Broker({ allowAnonymous: true }, {
  authorizePublish: (_p: string, topic: string, clientId: string) => acl.allows(anonymous, 'publish', topic, clientId),
  authorizeSubscribe: (_p: string, filter: string, clientId: string) => {
    const ok = acl.allows(anonymous, 'subscribe', filter, clientId);
    return ok && aclMode === 'per-message' ? 'per-message' : ok;
  },
  authorizeReceive: (_p: string, topic: string, clientId: string) => acl.allows(anonymous, 'subscribe', topic, clientId),
});

/** One PUBLISH with a 64-byte payload and, at QoS 1, packet id `id`. */
function publish(topic: string, qos: 0 | 1, id: number): Buffer {
  const t = publishTemplate(topic, qos, 64, 1);
  if (qos > 0) t.bytes.writeUInt16BE(id, t.idAt);
  return t.bytes;
}

let received = 0;
const header: FixedHeader = { body: 0, end: 0 };

/** A client's end of the connection: counts PUBLISHes it is sent and answers QoS 1 ones with PUBACK. */
class Client extends Duplex {
  override _read(): void {}

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: () => void): void {
    for (const { chunk } of chunks) this.#scan(chunk);
    cb();
  }

  override _write(chunk: Buffer, _encoding: string, cb: () => void): void {
    this.#scan(chunk);
    cb();
  }

  #scan(buf: Buffer): void {
    const acks: number[] = [];
    let pos = 0;
    while (pos < buf.length && readFixedHeader(buf, pos, header)) {
      const first = buf[pos]!;
      const i = header.body;
      if (first >> 4 === 3) {
        received++;
        if (((first >> 1) & 3) > 0) {
          const topicLength = buf.readUInt16BE(i);
          acks.push(0x40, 2, buf[i + 2 + topicLength]!, buf[i + 3 + topicLength]!);
        }
      }
      pos = header.end;
    }
    // As a peer would: the acknowledgements come back on a later turn of the event loop.
    if (acks.length > 0) setImmediate(() => this.push(Buffer.from(acks)));
  }
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
function open(id: string): Client {
  const c = new Client();
  broker.handle(c, { remoteAddress: '127.0.0.1', transport: 'tcp' });
  c.push(connectPacket(id, 60));
  return c;
}

const qos: 0 | 1 = scenario.endsWith('1') ? 1 : 0;
const shape = scenario.slice(0, -1);
const shapes: Record<string, { pubs: number; subs: number; topic: (i: number) => string; filter: (i: number) => string }> = {
  fanin: { pubs: 100, subs: 1, topic: (i) => `bench/fanin/${i}`, filter: () => 'bench/fanin/+' },
  p2p: { pubs: 20, subs: 20, topic: (i) => `bench/p2p/${i}`, filter: (i) => `bench/p2p/${i}` },
  fanout: { pubs: 1, subs: 1000, topic: () => 'bench/fanout', filter: () => 'bench/fanout' },
  // The latency scenario's shape: one PUBLISH per chunk, as a client paced at a fixed rate sends them.
  lat: { pubs: 10, subs: 10, topic: (i) => `bench/lat/${i}`, filter: (i) => `bench/lat/${i}` },
};
const found = shapes[shape];
if (found === undefined) {
  process.stderr.write(`unknown scenario ${scenario}: fanin0 fanin1 p2p0 p2p1 fanout0 fanout1 lat0 lat1\n`);
  process.exit(2);
}
const s = found;
/** Copies of each PUBLISH the subscribers receive. */
const fanout = shape === 'fanout' ? s.subs : 1;
const subs = Array.from({ length: s.subs }, (_, i) => open(`sub-${i}`));
await turn();
subs.forEach((c, i) => c.push(subscribePacket(1, s.filter(i), qos)));
const pubs = Array.from({ length: s.pubs }, (_, i) => open(`pub-${i}`));
for (let k = 0; k < 5; k++) await turn();

// 64 chunks of 32 PUBLISHes per publisher (1 in the latency shape), encoded once (packet ids run on across chunks).
const BATCH = shape === 'lat' ? 1 : 32;
const chunks = pubs.map((_, i) => {
  let id = 1;
  return Array.from({ length: 64 }, () => Buffer.concat(Array.from({ length: BATCH }, () => {
    const p = publish(s.topic(i), qos, id);
    id = id === 65_535 ? 1 : id + 1;
    return p;
  })));
});

/** Every publisher sends a chunk, then waits (a bounded number of turns) until most copies arrived. */
async function run(copies: number): Promise<void> {
  const start = received;
  const perRound = pubs.length * BATCH * fanout;
  let round = 0;
  while (received - start < copies) {
    pubs.forEach((c, i) => c.push(chunks[i]![round % 64]!));
    round++;
    for (let guard = 0; guard < 1000 && received - start < (round - 2) * perRound; guard++) await turn();
    await turn();
  }
}

const copies = Number(messagesArg);
await run(Math.min(copies, 50_000)); // warm-up: the JIT, the pools
const cpu0 = process.cpuUsage();
const from = received;
await run(copies);
const cpu = process.cpuUsage(cpu0);
const msgs = received - from;
process.stdout.write(`${JSON.stringify({ scenario, dist, msgs, usPerMsg: Number(((cpu.user + cpu.system) / msgs).toFixed(3)), ...(aclMode === 'whole' ? {} : { acl: aclMode }) })}\n`);
process.exit(0);
