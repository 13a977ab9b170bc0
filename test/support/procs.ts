import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

const ROOT = resolve(import.meta.dirname, '../..');
export const CLI = join(ROOT, 'bin/cloudrest.js');
export const AGENT_BUNDLE = join(ROOT, 'dist/cloudrest-agent.mjs');
const run = promisify(execFile);

/** Every child started by the tests; killed when the test process exits, even on a timeout. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

/** A child process whose stdout lines (JSON logs or text) can be awaited. */
export class Proc {
  readonly lines: string[] = [];
  readonly #waiters: Array<{ test: (l: string) => boolean; resolve: (l: string) => void }> = [];
  readonly exited: Promise<number | null>;

  constructor(readonly child: ChildProcess, readonly name: string) {
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (l) => {
        this.lines.push(l);
        if (process.env.CLOUDREST_TEST_VERBOSE) process.stderr.write(`[${name}] ${l}\n`);
        for (const w of [...this.#waiters]) {
          if (w.test(l)) {
            this.#waiters.splice(this.#waiters.indexOf(w), 1);
            w.resolve(l);
          }
        }
      });
    }
    children.add(child);
    this.exited = new Promise((r) => child.once('exit', (code) => {
      children.delete(child);
      r(code);
    }));
  }

  /** Resolves with the first line (already seen or future) that passes `test`. */
  waitFor(test: (l: string) => boolean, timeoutMs = 15_000, what = 'line'): Promise<string> {
    const seen = this.lines.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms; output:\n${this.lines.slice(-30).join('\n')}`)), timeoutMs);
      this.#waiters.push({ test, resolve: (l) => { clearTimeout(t); resolve(l); } });
    });
  }

  /** Resolves with the parsed JSON log line whose msg is `msg` (and that matches `where`). */
  async waitForLog(msg: string, where: (o: Record<string, unknown>) => boolean = () => true, timeoutMs?: number): Promise<Record<string, unknown>> {
    const l = await this.waitFor((line) => {
      const o = parseJson(line);
      return o !== undefined && o.msg === msg && where(o);
    }, timeoutMs, `log "${msg}"`);
    return parseJson(l)!;
  }

  /** Log lines with this msg seen so far. */
  logs(msg: string): Array<Record<string, unknown>> {
    return this.lines.map(parseJson).filter((o): o is Record<string, unknown> => o?.msg === msg);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return this.child.exitCode;
    this.child.kill(signal);
    const t = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const code = await this.exited;
    clearTimeout(t);
    return code;
  }
}

function parseJson(l: string): Record<string, unknown> | undefined {
  if (!l.startsWith('{')) return undefined;
  try {
    return JSON.parse(l) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

export function tempDir(prefix = 'cloudrest-test-'): { path: string; remove(): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}

export async function cli(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CLI, ...args], { cwd: ROOT });
  return stdout;
}

/** Runs `cloudrest args` expecting it to fail: its exit code and stderr (the test fails if it succeeds). */
export async function cliFails(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ code: number; stderr: string }> {
  try {
    await run(process.execPath, [CLI, ...args], { env });
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
  throw new Error(`cloudrest ${args.join(' ')} succeeded`);
}

export interface HubProc extends Proc {
  httpPort: number;
  tunnelPort: number;
  /** MQTT ports, when those listeners are on. */
  mqttPort: number | undefined;
  mqttsPort: number | undefined;
  url: string;
}

/** Starts `cloudrest hub` on free ports and waits until it listens. */
export async function startHub(data: string, extra: string[] = [], fixedPorts?: { http: number; tunnel: number }): Promise<HubProc> {
  // MQTT on free ports too, unless the test says otherwise (Mosquitto holds 1883 on dev machines).
  const mqtt = extra.some((a) => a.startsWith('--mqtt-port') || a === '--no-mqtt') ? [] : ['--mqtt-port', '0'];
  const mqtts = extra.includes('--tls-cert') && !extra.some((a) => a.startsWith('--mqtts-port') || a === '--no-mqtt') ? ['--mqtts-port', '0'] : [];
  const args = [CLI, 'hub', '--data', data, '--host', '127.0.0.1', '--http-port', String(fixedPorts?.http ?? 0), '--tunnel-port', String(fixedPorts?.tunnel ?? 0), ...mqtt, ...mqtts, ...extra];
  const p = new Proc(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), 'hub');
  const l = await p.waitForLog('hub listening');
  return Object.assign(p, { httpPort: l.httpPort as number, tunnelPort: l.tunnelPort as number, mqttPort: l.mqttPort as number | undefined, mqttsPort: l.mqttsPort as number | undefined, url: `http://127.0.0.1:${l.httpPort as number}` });
}

/**
 * Starts the simulated device REST service as its own process; with `password`, the device
 * authenticates its users itself (apiAuthPath /auth); `port` reuses a port (a device restarting).
 */
export async function startDevice(email: string | null, opts: { password?: string; port?: number } = {}): Promise<Proc & { port: number; url: string }> {
  const args = ['--import', 'tsx', join(ROOT, 'test/fixtures/device.ts'), email ?? '', String(opts.port ?? 0)];
  const env = { ...process.env, CLOUDREST_TEST_DEVICE_PASSWORD: opts.password ?? '' };
  const p = new Proc(spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] }), 'device');
  const l = await p.waitFor((x) => x.startsWith('{"port"'));
  const port = (JSON.parse(l) as { port: number }).port;
  return Object.assign(p, { port, url: `http://127.0.0.1:${port}` });
}

/** Starts the bundled agent (dist/cloudrest-agent.mjs, as shipped to devices) and waits for it to connect. */
export async function startAgent(opts: { hub: string | string[]; deviceId: string; secret: string; api: string; extra?: string[]; waitConnected?: boolean }): Promise<Proc> {
  const hubs = Array.isArray(opts.hub) ? opts.hub : [opts.hub];
  const args = [AGENT_BUNDLE, ...hubs.flatMap((h) => ['--hub', h]), `--device-id=${opts.deviceId}`, `--secret=${opts.secret}`, '--api', opts.api, '--backoff-min-ms', '50', '--backoff-max-ms', '500', ...(opts.extra ?? [])];
  const p = new Proc(spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }), 'agent');
  if (opts.waitConnected !== false) await p.waitForLog('connected');
  return p;
}

export async function addUser(data: string, email: string, password: string): Promise<void> {
  await cli(['users', 'add', '--data', data, '--email', email, '--password', password]);
}

export async function addDevice(data: string, name: string, email?: string): Promise<{ id: string; secret: string }> {
  const out = await cli(['devices', 'add', '--data', data, '--name', name, '--json', ...(email ? ['--email', email] : [])]);
  return JSON.parse(out) as { id: string; secret: string };
}

export async function login(url: string, email: string, password: string, remember = false): Promise<string> {
  const r = await fetch(`${url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password, remember }) });
  if (r.status !== 200) throw new Error(`login failed: ${r.status} ${await r.text()}`);
  return ((await r.json()) as { access_token: string }).access_token;
}

/** Resident set size of a process in bytes, from /proc. */
export async function rssBytes(pid: number): Promise<number> {
  const { readFile } = await import('node:fs/promises');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmRSS:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** Runs curl (a real peer nobody here wrote). */
export async function curl(args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('curl', ['-sS', ...args], { maxBuffer: 64 * 1024 * 1024 });
}

/**
 * GET `url` with curl and a bearer token: the status (0 when curl got no answer in `maxSeconds`, e.g. a
 * node killed mid-way) and the body.
 */
export async function curlGet(url: string, token: string, maxSeconds = 5): Promise<{ status: number; body: string }> {
  const { stdout } = await curl(['-m', String(maxSeconds), '-H', `Authorization: Bearer ${token}`, '-w', '\n%{http_code}', url])
    .catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '\n000' }));
  const lines = stdout.split('\n');
  return { status: Number(lines.at(-1)), body: lines.slice(0, -1).join('\n') };
}
