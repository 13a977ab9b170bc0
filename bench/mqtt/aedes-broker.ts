// Aedes as a minimal broker process, the way its README runs one: in-memory persistence
// (aedes-persistence, Aedes's default), anonymous access, one TCP server. Prints {"port":N}.
//
// Usage: node --import tsx bench/mqtt/aedes-broker.ts
import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker();
const server = createServer((socket) => {
  // As the hub and the bench's Mosquitto: small packets go out at once.
  socket.setNoDelay(true);
  broker.handle(socket);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`));
const stop = (): void => {
  server.close();
  broker.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
