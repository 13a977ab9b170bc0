// Real MQTT peers for the hub's e2e tests: mqtt.js, the mosquitto command-line clients, Paho for Python.
import { execFile } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { connect as mqttConnect, connectAsync, type IClientOptions, type MqttClient } from 'mqtt';

const PAHO_SCRIPT = resolve(import.meta.dirname, '../fixtures/paho-roundtrip.py');

/** mqtt.js clients that close when the suite ends. */
export class MqttClients {
  readonly #all: MqttClient[] = [];

  async connect(url: string, opts: IClientOptions = {}): Promise<MqttClient> {
    const c = await connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...opts });
    this.#all.push(c);
    return c;
  }

  /** Connects with a message listener in place before the CONNACK, for messages a session had queued. */
  async connectCollecting(url: string, opts: IClientOptions): Promise<{ client: MqttClient; messages: Array<{ topic: string; payload: string }>; sessionPresent: boolean }> {
    const client = mqttConnect(url, { reconnectPeriod: 0, connectTimeout: 5_000, ...opts });
    this.#all.push(client);
    const messages: Array<{ topic: string; payload: string }> = [];
    client.on('message', (topic, payload) => messages.push({ topic, payload: payload.toString() }));
    const connack = await new Promise<{ sessionPresent: boolean }>((resolveConnack, reject) => {
      client.once('connect', resolveConnack);
      client.once('error', reject);
    });
    return { client, messages, sessionPresent: connack.sessionPresent };
  }

  /** The error a refused CONNECT ends with (its code is the CONNACK reason code). */
  async refusal(url: string, opts: IClientOptions): Promise<{ code?: number; message: string }> {
    try {
      const c = await this.connect(url, opts);
      await c.endAsync();
    } catch (err) {
      return err as { code?: number; message: string };
    }
    throw new Error('the connection was accepted');
  }

  async closeAll(): Promise<void> {
    await Promise.all(this.#all.map((c) => c.endAsync(true).catch(() => undefined)));
  }
}

/** Runs a command line client to its end: exit code (the CONNACK return code for a refused mosquitto client) and output. */
export function runClient(cmd: string, args: string[], timeoutMs = 10_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      done({ code, stdout, stderr });
    });
  });
}

/** Paho (Python, the Debian package): connect, subscribe, publish at QoS 1, receive it back. */
export function pahoRoundTrip(port: number, username: string, password: string, topic: string) {
  return runClient('/usr/bin/python3', [PAHO_SCRIPT, '127.0.0.1', String(port), username, password, topic], 15_000);
}

/** A self-signed certificate for 127.0.0.1 and localhost, as the TLS tests elsewhere make one. */
export function selfSignedCert(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  return { cert, key };
}

/** The next message on `topic` (a filter the client already subscribed to), within `timeoutMs`. */
export function nextMessage(client: MqttClient, match: (topic: string) => boolean, timeoutMs = 5_000): Promise<{ topic: string; payload: string; retain: boolean; qos: number }> {
  return new Promise((resolveMsg, reject) => {
    const t = setTimeout(() => {
      client.off('message', on);
      reject(new Error('no message within the time'));
    }, timeoutMs);
    const on = (topic: string, payload: Buffer, packet: { retain: boolean; qos: number }): void => {
      if (!match(topic)) return;
      clearTimeout(t);
      client.off('message', on);
      resolveMsg({ topic, payload: payload.toString(), retain: packet.retain, qos: packet.qos });
    };
    client.on('message', on);
  });
}

/** The SUBACK codes for `filters` (mqtt.js 5 rejects a v5 SUBACK holding a failure; its packet says which). */
export async function subackCodes(client: MqttClient, filters: string[], qos: 0 | 1 | 2 = 1): Promise<number[]> {
  try {
    return (await client.subscribeAsync(filters, { qos })).map((g) => g.qos);
  } catch (err) {
    const granted = (err as { packet?: { granted?: Array<number | { qos: number }> } }).packet?.granted;
    if (granted === undefined) throw err;
    return granted.map((g) => (typeof g === 'number' ? g : g.qos));
  }
}
