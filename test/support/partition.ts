/**
 * A network partition between one process and Redis, for the tests: a TCP forwarder on a local port
 * to the real Redis. `cut()` destroys every piped connection and refuses new ones (as a link that
 * went away would); `heal()` lets connections through again. Only the process given `url` is cut
 * off: the other nodes keep using Redis directly.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface RedisPartition {
  /** The forwarded Redis URL: the target's, with the forwarder's port (the database number kept). */
  readonly url: string;
  cut(): void;
  heal(): void;
  readonly isCut: boolean;
  close(): Promise<void>;
}

export async function redisPartition(targetUrl: string): Promise<RedisPartition> {
  const target = new URL(targetUrl);
  const host = target.hostname || '127.0.0.1';
  const port = Number(target.port || 6379);
  const piped = new Set<Socket>();
  let isCut = false;
  const server: Server = createServer((client) => {
    if (isCut) {
      client.destroy();
      return;
    }
    const upstream = connect(port, host);
    piped.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      piped.delete(client);
      piped.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = new URL(targetUrl);
  url.hostname = '127.0.0.1';
  url.port = String((server.address() as { port: number }).port);
  return {
    url: url.toString(),
    get isCut() {
      return isCut;
    },
    cut() {
      isCut = true;
      for (const s of [...piped]) s.destroy();
      piped.clear();
    },
    heal() {
      isCut = false;
    },
    close() {
      isCut = true;
      for (const s of [...piped]) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
