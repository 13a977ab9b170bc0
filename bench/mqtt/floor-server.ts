// The floor for idle connections in Node: a net server that holds each socket with one 'data' listener
// and answers just enough MQTT for the bench's clients (CONNACK to CONNECT, PINGRESP to PINGREQ). No
// broker state at all, so its RSS per connection is what any Node broker pays before its own objects.
//
// Usage: node --import tsx bench/mqtt/floor-server.ts   (prints {"port":N})
import { createServer, type AddressInfo, type Socket } from 'node:net';

const CONNACK = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const PINGRESP = Buffer.from([0xd0, 0x00]);

/** One listener shared by every socket: a packet's first byte says what it is (3.1.1 §2.2.1). */
function onData(this: Socket, chunk: Buffer): void {
  const type = chunk[0]! >> 4;
  if (type === 1) this.write(CONNACK);
  else if (type === 12) this.write(PINGRESP);
}

const server = createServer((socket) => {
  socket.setNoDelay(true);
  socket.on('data', onData);
  socket.on('error', () => socket.destroy());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
process.once('SIGTERM', () => process.exit(0));
