// The floor of a second hop: a bare Node TCP relay that passes every byte between the agent and the
// hub's tunnel port unchanged (socket.pipe both ways), no parsing, no protocol. An edge node must do at
// least this much for each request, so hub + this relay is the least a two-process path can cost.
//   node --import tsx bench/cluster/tcp-relay.ts TARGET_PORT      prints {"port":N}
import { connect, createServer } from 'node:net';

const target = Number(process.argv[2]);
const server = createServer({ noDelay: true }, (client) => {
  const upstream = connect({ port: target, host: '127.0.0.1', noDelay: true });
  client.pipe(upstream).pipe(client);
  const close = (): void => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', close).on('close', close);
  upstream.on('error', close).on('close', close);
});
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  process.stdout.write(`${JSON.stringify({ port: typeof address === 'object' && address !== null ? address.port : 0 })}\n`);
});
