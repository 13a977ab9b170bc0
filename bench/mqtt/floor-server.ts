// The floor: a bare Node net server with no broker state, for what any Node broker pays before its own
// code. It answers just enough MQTT 3.1.1 for the bench's clients: CONNACK to CONNECT, PINGRESP to
// PINGREQ, SUBACK to SUBSCRIBE (exact topics only, no wildcards), and it relays each PUBLISH's bytes
// unchanged to the sockets subscribed to its topic, answering PUBACK at QoS 1 (the subscribers' PUBACKs
// are read and dropped). Idle runs measure its RSS per socket; latency runs its end-to-end p50/p99: a
// Node process reading and writing sockets through `net` streams, one 'data' event and one write each.
//
// Usage: node --import tsx bench/mqtt/floor-server.ts   (prints {"port":N})
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { readFixedHeader, type FixedHeader } from './wire.js';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const PINGRESP = Buffer.from([0xd0, 0x00]);
/** Subscribed sockets by exact topic. */
const subscribers = new Map<string, Socket[]>();

const header: FixedHeader = { body: 0, end: 0 };

/** One listener shared by every socket: walks the chunk's packets by their fixed headers (3.1.1 §2.2). */
function onData(this: Socket, chunk: Buffer): void {
  let pos = 0;
  // The bench's clients never split a packet across writes this small.
  while (pos < chunk.length && readFixedHeader(chunk, pos, header)) {
    const first = chunk[pos]!;
    const i = header.body;
    const end = header.end;
    const type = first >> 4;
    if (type === 1) this.write(CONNACK);
    else if (type === 12) this.write(PINGRESP);
    else if (type === 8) subscribe(this, chunk, i);
    else if (type === 3) publish(this, chunk, pos, i, end, (first >> 1) & 3);
    pos = end;
  }
}

function subscribe(socket: Socket, chunk: Buffer, body: number): void {
  const topicLength = chunk.readUInt16BE(body + 2);
  const topic = chunk.toString('utf8', body + 4, body + 4 + topicLength);
  const qos = chunk[body + 4 + topicLength]! & 3;
  let list = subscribers.get(topic);
  if (list === undefined) subscribers.set(topic, (list = []));
  list.push(socket);
  socket.once('close', () => list.splice(list.indexOf(socket), 1));
  socket.write(Buffer.from([0x90, 0x03, chunk[body]!, chunk[body + 1]!, qos]));
}

function publish(socket: Socket, chunk: Buffer, start: number, body: number, end: number, qos: number): void {
  const topicLength = chunk.readUInt16BE(body);
  const list = subscribers.get(chunk.toString('utf8', body + 2, body + 2 + topicLength));
  if (list !== undefined) for (const s of list) s.write(chunk.subarray(start, end));
  if (qos === 1) {
    const id = body + 2 + topicLength;
    socket.write(Buffer.from([0x40, 0x02, chunk[id]!, chunk[id + 1]!]));
  }
}

const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
process.once('SIGTERM', () => process.exit(0));
