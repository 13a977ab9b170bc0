// MQTT over WebSocket: which Duplex adapter carries the broker's bytes faster. Same broker, same
// clients (mqtt.js over ws://), two upgrade paths: the tunnel's wsDuplex (one ws message per tick of
// writes, pauses the socket on backpressure) and ws's own createWebSocketStream (one message per write).
//   node --import tsx bench/mqtt-ws/main.ts [messages] [payloadBytes]
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { connectAsync } from 'mqtt';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { Broker } from '../../src/mqtt/broker.js';
import { wsDuplex } from '../../src/relay/protocol/ws-duplex.js';

const N = Number(process.argv[2] ?? 50_000);
const SIZE = Number(process.argv[3] ?? 64);

const broker = new Broker({ allowAnonymous: true, maxQueuedPerClient: N * 2 }, {});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 2 * 1024 * 1024, handleProtocols: () => 'mqtt' });
const server = createServer();
server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
  wss.handleUpgrade(req, socket, head, (ws) => {
    const stream = req.url === '/wsduplex' ? wsDuplex(ws) : createWebSocketStream(ws);
    broker.handle(stream, { remoteAddress: '127.0.0.1', transport: 'ws' });
  });
});
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const port = (server.address() as AddressInfo).port;

async function run(path: string, qos: 0 | 1): Promise<number> {
  const url = `ws://127.0.0.1:${port}${path}`;
  const sub = await connectAsync(url, { reconnectPeriod: 0 });
  const pub = await connectAsync(url, { reconnectPeriod: 0 });
  const topic = `bench/${path}/${qos}`;
  await sub.subscribeAsync(topic, { qos });
  const payload = Buffer.alloc(SIZE, 97);
  let got = 0;
  const done = new Promise<void>((r) => sub.on('message', () => ++got === N && r()));
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    if (qos === 0) pub.publish(topic, payload, { qos });
    else await pub.publishAsync(topic, payload, { qos });
  }
  await done;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  await Promise.all([sub.endAsync(), pub.endAsync()]);
  return N / s;
}

const rows: Array<[string, string, number]> = [];
for (const qos of [0, 1] as const) {
  for (const path of ['/stream', '/wsduplex', '/stream', '/wsduplex']) rows.push([path.slice(1), `QoS ${qos}`, await run(path, qos)]);
}
console.log(`MQTT over WebSocket, ${N} messages of ${SIZE} B, one publisher -> one subscriber (mqtt.js), msg/s`);
console.log('adapter                  | qos   | msg/s');
for (const [a, q, r] of rows) console.log(`${a.padEnd(24)} | ${q} | ${Math.round(r).toLocaleString('en')}`);
await broker.close();
server.close();
wss.close();
process.exit(0);
