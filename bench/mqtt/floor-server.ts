// The floor: a bare Node net server with no broker state, for what any Node broker pays before its own
// code. It answers just enough MQTT 3.1.1 for the bench's clients: CONNACK to CONNECT, PINGRESP to
// PINGREQ, SUBACK to SUBSCRIBE (exact topics only, no wildcards), and it relays each PUBLISH's bytes
// unchanged to the sockets subscribed to its topic, answering PUBACK at QoS 1 (the subscribers' PUBACKs
// are read and dropped). Idle runs measure its RSS per socket; latency runs its end-to-end p50/p99: a
// Node process reading and writing sockets through `net` streams, one 'data' event and one write each.
//
// With FLOOR_REDIS set it is one of two such relays in series, the floor of a message that crosses two
// broker nodes through Redis as the hub's cluster forwards it: node `a` (the publishers' side) PUBLISHes
// each message's bytes on FLOOR_CHANNEL + 'fwd' with a 4-byte token, node `b` (the subscribers' side)
// relays them to its subscribers and, for QoS 1, answers the token on FLOOR_CHANNEL + 'ack'; node `a`
// sends the publisher's PUBACK on that answer (the hub's PUBACK too waits for the other node).
//
// Usage: node --import tsx bench/mqtt/floor-server.ts   (prints {"port":N})
//        FLOOR_REDIS=redis://... FLOOR_CHANNEL=prefix: FLOOR_NODE=a|b node --import tsx bench/mqtt/floor-server.ts
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Redis } from 'ioredis';
import { readFixedHeader, type FixedHeader } from './wire.js';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const PINGRESP = Buffer.from([0xd0, 0x00]);
/** Subscribed sockets by exact topic. */
const subscribers = new Map<string, Socket[]>();

const header: FixedHeader = { body: 0, end: 0 };
/** The fixed header of a message forwarded by the other relay (FLOOR_REDIS). */
const forwarded: FixedHeader = { body: 0, end: 0 };

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

/** Writes a PUBLISH's bytes to the sockets subscribed to its topic. */
function relay(chunk: Buffer, start: number, body: number, end: number): void {
  const topicLength = chunk.readUInt16BE(body);
  const list = subscribers.get(chunk.toString('utf8', body + 2, body + 2 + topicLength));
  if (list !== undefined) for (const s of list) s.write(chunk.subarray(start, end));
}

function publish(socket: Socket, chunk: Buffer, start: number, body: number, end: number, qos: number): void {
  const id = body + 2 + chunk.readUInt16BE(body);
  if (peer !== undefined) return peer.forward(socket, chunk.subarray(start, end), qos === 1 ? [chunk[id]!, chunk[id + 1]!] : undefined);
  relay(chunk, start, body, end);
  if (qos === 1) socket.write(Buffer.from([0x40, 0x02, chunk[id]!, chunk[id + 1]!]));
}

/** The other relay, through Redis (FLOOR_REDIS): node a forwards, node b relays and confirms. */
function peerThrough(url: string, channel: string, nodeName: string) {
  const out = new Redis(url);
  const input = new Redis(url);
  const fwd = `${channel}fwd`;
  const ack = `${channel}ack`;
  const waiting = new Map<number, { socket: Socket; id: [number, number] }>();
  let next = 1;
  void input.subscribe(nodeName === 'a' ? ack : fwd);
  input.on('messageBuffer', (_channel: Buffer, message: Buffer) => {
    const token = message.readUInt32BE(0);
    if (nodeName === 'a') {
      const w = waiting.get(token);
      waiting.delete(token);
      if (w !== undefined && !w.socket.destroyed) w.socket.write(Buffer.from([0x40, 0x02, w.id[0], w.id[1]]));
      return;
    }
    const packet = message.subarray(4);
    if (readFixedHeader(packet, 0, forwarded)) relay(packet, 0, forwarded.body, forwarded.end);
    if (token !== 0) void out.publish(ack, message.subarray(0, 4));
  });
  return {
    forward(socket: Socket, packet: Buffer, id: [number, number] | undefined): void {
      const token = id === undefined ? 0 : next++ >>> 0;
      if (id !== undefined) waiting.set(token, { socket, id });
      const frame = Buffer.allocUnsafe(4 + packet.length);
      frame.writeUInt32BE(token, 0);
      packet.copy(frame, 4);
      void out.publish(fwd, frame);
    },
  };
}

const peer = process.env.FLOOR_REDIS ? peerThrough(process.env.FLOOR_REDIS, process.env.FLOOR_CHANNEL ?? 'floor:', process.env.FLOOR_NODE ?? 'a') : undefined;

const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
process.once('SIGTERM', () => process.exit(0));
