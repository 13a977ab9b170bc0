// The floor for the many-agents benchmark: the least a Node process can do to hold websocket
// connections. node:http + ws, set up as the hub sets up its agent endpoint (noServer, no
// compression, same maxPayload), answering each binary message with a copy (as the hub answers a PING
// with a PONG) and doing nothing else. Usage: node --import tsx bench/agents/floor-server.ts; prints {"port":N}.
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer, type RawData } from 'ws';

const server = createServer((_req, res) => res.writeHead(404).end());
const wss = new WebSocketServer({ noServer: true, maxPayload: 65_536 + 64 * 1024, perMessageDeflate: false });
server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
  socket.setNoDelay(true);
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => undefined);
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => process.exit(0));
