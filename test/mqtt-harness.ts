// Shared by the test/mqtt-*.test.ts suites: a broker behind a real TCP server on port 0, mqtt.js
// clients, raw sockets that speak bytes, and the mosquitto command-line clients as child processes.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect as netConnect, type AddressInfo, type Server, type Socket } from 'node:net';
import { connect as mqttConnect, connectAsync, type IClientOptions, type MqttClient } from 'mqtt';
import { generate, parser, type Packet } from 'mqtt-packet';
import { Broker } from '../src/mqtt/broker.js';
import type { BrokerHooks } from '../src/mqtt/hooks.js';
import type { BrokerOptions } from '../src/mqtt/options.js';

export interface TestBroker {
  broker: Broker;
  port: number;
  url: string;
  /** Every client made by client() and raw(), closed by stop(). */
  stop(): Promise<void>;
  client(opts?: IClientOptions): Promise<MqttClient>;
  /** An mqtt.js client not yet connected (call connect()), to attach listeners before CONNACK. */
  unconnected(opts?: IClientOptions): MqttClient;
  raw(): Promise<RawClient>;
  /** The broker's ends of the open TCP connections. */
  serverSockets(): Socket[];
}

export async function startBroker(options: BrokerOptions = { allowAnonymous: true }, hooks: BrokerHooks = {}): Promise<TestBroker> {
  const broker = new Broker(options, hooks);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    broker.handle(socket, { remoteAddress: socket.remoteAddress ?? '', transport: 'tcp' });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const clients: MqttClient[] = [];
  const raws: RawClient[] = [];
  return {
    broker,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    async client(opts: IClientOptions = {}) {
      const c = await connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5_000, ...opts });
      clients.push(c);
      return c;
    },
    unconnected(opts: IClientOptions = {}) {
      const c = mqttConnect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5_000, ...opts, manualConnect: true });
      clients.push(c);
      return c;
    },
    async raw() {
      const r = await RawClient.connect(port);
      raws.push(r);
      return r;
    },
    serverSockets() {
      return [...sockets];
    },
    async stop() {
      await broker.close();
      await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
      for (const r of raws) r.socket.destroy();
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** A TCP client that writes bytes or packets and reads packets, to test what mqtt.js would not send. */
export class RawClient {
  readonly packets: Packet[] = [];
  readonly closed: Promise<void>;
  #waiters: Array<() => void> = [];
  #parser = parser({ protocolVersion: 4 });

  private constructor(readonly socket: Socket) {
    this.#parser.on('packet', (p) => {
      this.packets.push(p);
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on('data', (b) => this.#parser.parse(b));
    socket.on('error', () => undefined);
    this.closed = new Promise((r) => socket.once('close', () => r()));
    void this.closed.then(() => {
      for (const w of this.#waiters.splice(0)) w();
    });
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = netConnect(port, '127.0.0.1');
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  /** Parses what the broker sends as protocol `version` from now on (CONNACK tells the parser too). */
  setVersion(version: 4 | 5): void {
    (this.#parser as unknown as { settings: { protocolVersion: number } }).settings.protocolVersion = version;
  }

  write(bytes: Buffer | number[]): void {
    this.socket.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
  }

  send(packet: Packet, version: 4 | 5 = 4): void {
    this.write(generate(packet, { protocolVersion: version }));
  }

  /** Resolves with the first packet (already received or future) that passes `test`. */
  async next(test: (p: Packet) => boolean = () => true, timeoutMs = 3_000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.packets.findIndex(test);
      if (i !== -1) return this.packets.splice(i, 1)[0]!;
      if (this.socket.destroyed || this.socket.readableEnded) throw new Error(`connection closed; received ${JSON.stringify(this.packets.map((p) => p.cmd))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching packet within ${timeoutMs} ms; received ${JSON.stringify(this.packets.map((p) => p.cmd))}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Resolves true if the broker closes the connection within `timeoutMs`. */
  async closesWithin(timeoutMs = 3_000): Promise<boolean> {
    let t: NodeJS.Timeout | undefined;
    const r = await Promise.race([this.closed.then(() => true), new Promise<boolean>((res) => (t = setTimeout(() => res(false), timeoutMs)))]);
    clearTimeout(t);
    return r;
  }

  /** CONNECT and wait for CONNACK. */
  async handshake(version: 4 | 5 = 4, fields: Partial<Extract<Packet, { cmd: 'connect' }>> = {}): Promise<Extract<Packet, { cmd: 'connack' }>> {
    this.setVersion(version);
    this.send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: version, clientId: `raw-${Math.random().toString(36).slice(2)}`, clean: true, keepalive: 60, ...fields }, version);
    return (await this.next((p) => p.cmd === 'connack')) as Extract<Packet, { cmd: 'connack' }>;
  }
}

/** A mosquitto_sub / mosquitto_pub process; stdout lines collected. */
export class MosquittoProc {
  readonly lines: string[] = [];
  readonly exited: Promise<number | null>;
  #buf = '';
  #waiters: Array<() => void> = [];

  constructor(readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      this.#buf += s;
      const parts = this.#buf.split('\n');
      this.#buf = parts.pop()!;
      this.lines.push(...parts);
      for (const w of this.#waiters.splice(0)) w();
    });
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (s: string) => this.lines.push(`stderr: ${s.trim()}`));
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
  }

  async waitForLines(n: number, timeoutMs = 5_000): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.lines.filter((l) => !l.startsWith('stderr:')).length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`mosquitto client printed ${JSON.stringify(this.lines)}, wanted ${n} lines`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.min(left, 100));
        this.#waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.lines.filter((l) => !l.startsWith('stderr:'));
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
  }
}

export function mosquitto(command: 'mosquitto_sub' | 'mosquitto_pub', args: string[]): MosquittoProc {
  return new MosquittoProc(spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves with the next `n` messages `client` receives: [topic, payload, packet]. */
export function collect(client: MqttClient, n: number, timeoutMs = 5_000): Promise<Array<{ topic: string; payload: string; packet: Extract<Packet, { cmd: 'publish' }> }>> {
  return new Promise((resolve, reject) => {
    const got: Array<{ topic: string; payload: string; packet: Extract<Packet, { cmd: 'publish' }> }> = [];
    const t = setTimeout(() => {
      client.off('message', on);
      reject(new Error(`got ${got.length} of ${n} messages: ${JSON.stringify(got.map((g) => [g.topic, g.payload]))}`));
    }, timeoutMs);
    const on = (topic: string, payload: Buffer, packet: Extract<Packet, { cmd: 'publish' }>): void => {
      got.push({ topic, payload: payload.toString(), packet });
      if (got.length === n) {
        clearTimeout(t);
        client.off('message', on);
        resolve(got);
      }
    };
    client.on('message', on);
  });
}
