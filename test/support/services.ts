/**
 * The real PostgreSQL and Redis servers the scaled-out tests use (issue 13 "Evidence"), found in this
 * order: CLOUDREST_TEST_PG_URL / CLOUDREST_TEST_REDIS_URL when set; else the servers on their standard
 * local ports (127.0.0.1:5432 as postgres, 127.0.0.1:6379) when they answer; else private instances
 * started here from the installed binaries on free ports, stopped when the test process exits.
 *
 * Each caller gets its own database (`testPostgres`) or key prefix (`testRedis`) and removes it with
 * `drop()`. A test that must restart or flush Redis starts its own server (`privateRedis`): the shared
 * one may serve other test files at the same time.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Redis } from 'ioredis';

const started = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of started) c.kill('SIGKILL');
});

/** True when something accepts TCP connections on host:port within `timeoutMs`. */
export function reachable(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('error', () => done(false));
    s.connect(port, host, () => done(true));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up within ${timeoutMs} ms`);
}

/** A unique, lower-case name part: the pid and some random bits. */
export function runTag(): string {
  return `${process.pid}_${randomBytes(4).toString('hex')}`;
}

// ---------------------------------------------------------------- PostgreSQL

/** The bin folder of the newest installed PostgreSQL (Debian: /usr/lib/postgresql/N/bin). */
function postgresBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).filter((v) => existsSync(join(base, v, 'bin', 'initdb'))).sort((a, b) => Number(b) - Number(a)) : [];
  if (versions.length === 0) throw new Error('no PostgreSQL server here: set CLOUDREST_TEST_PG_URL or install postgresql (npm test does so as root)');
  return join(base, versions[0]!, 'bin');
}

let privatePg: Promise<string> | undefined;

export interface PostgresServer {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly url: string;
  readonly port: number;
  /** Stops the server (immediate shutdown; kill -9 with `hard`). */
  stop(hard?: boolean): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
}

/**
 * initdb + postgres of this test alone on a free port, as the `postgres` user when run as root
 * (PostgreSQL refuses root); removed when the test process exits.
 */
export async function privatePostgres(): Promise<PostgresServer> {
  const bin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), 'cloudrest-pg-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const asRoot = process.getuid?.() === 0;
  const wrap = (cmd: string, args: string[]): [string, string[]] => (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);
  if (asRoot) {
    const id = (flag: string) => Number(spawnSync('id', [flag, 'postgres'], { encoding: 'utf8' }).stdout.trim());
    chownSync(dir, id('-u'), id('-g'));
  }
  const data = join(dir, 'data');
  const [initCmd, initArgs] = wrap(join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8']);
  const init = spawnSync(initCmd, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr}`);
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let child: ChildProcess | undefined;
  const start = async () => {
    const [cmd, args] = wrap(join(bin, 'postgres'), ['-D', data, '-p', String(port), '-k', dir, '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off']);
    const c = spawn(cmd, args, { stdio: 'ignore' });
    started.add(c);
    c.once('exit', () => started.delete(c));
    child = c;
    await waitUntil('the private PostgreSQL', async () => {
      const client = new pg.Client({ connectionString: url });
      try {
        await client.connect();
        return true;
      } catch {
        return false;
      } finally {
        await client.end().catch(() => undefined);
      }
    });
  };
  const stop = async (hard = false) => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    // A hard stop kills the postmaster and its backends; else pg_ctl's fast shutdown.
    if (hard) spawnSync('pkill', ['-KILL', '-f', '--', `-D ${data}`]);
    else {
      const [ctl, ctlArgs] = wrap(join(bin, 'pg_ctl'), ['stop', '-D', data, '-m', 'fast', '-w']);
      spawnSync(ctl, ctlArgs, { stdio: 'ignore' });
    }
    await gone;
  };
  await start();
  return { url, port, stop, start };
}

/** The server to make test databases on: a URL whose database is one to connect to for CREATE DATABASE. */
export function postgresServer(): Promise<string> {
  const fromEnv = process.env.CLOUDREST_TEST_PG_URL;
  if (fromEnv) return Promise.resolve(fromEnv);
  privatePg ??= (async () => ((await reachable('127.0.0.1', 5432)) ? 'postgres://postgres@127.0.0.1:5432/postgres' : (await privatePostgres()).url))();
  return privatePg;
}

export interface TestDatabase {
  /** postgres://... of a new, empty database of this run. */
  readonly url: string;
  /** Drops it (connections still open are ended). */
  drop(): Promise<void>;
}

/** A new database of its own on the test server. */
export async function testPostgres(): Promise<TestDatabase> {
  const server = new URL(await postgresServer());
  const name = `cloudrest_test_${runTag()}`;
  const admin = async (sql: string) => {
    const c = new pg.Client({ connectionString: server.toString() });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  await admin(`CREATE DATABASE ${name}`);
  const url = new URL(server.toString());
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    async drop() {
      if (dropped) return;
      dropped = true;
      await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    },
  };
}

// ---------------------------------------------------------------- Redis

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** Stops the server (kill -9 with `hard`); a private one only. */
  stop(hard?: boolean): Promise<void>;
  /** Starts it again on the same port, empty (nothing is kept on disk). */
  restart(): Promise<void>;
}

/** A redis-server of this test alone on a free port (or `port`), keeping nothing on disk. */
export async function privateRedis(port?: number): Promise<RedisServer> {
  const p = port ?? (await freePort());
  let child: ChildProcess | undefined;
  const start = async () => {
    const c = spawn('redis-server', ['--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    started.add(c);
    c.once('exit', () => started.delete(c));
    child = c;
    await waitUntil('the private Redis', () => reachable('127.0.0.1', p));
  };
  const stop = async (hard = false) => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once('exit', r));
    c.kill(hard ? 'SIGKILL' : 'SIGTERM');
    await gone;
  };
  await start();
  return {
    url: `redis://127.0.0.1:${p}`,
    port: p,
    stop,
    async restart() {
      await stop();
      await start();
    },
  };
}

let sharedRedis: Promise<string> | undefined;

/** The Redis server tests share (key prefixes keep them apart). */
export function redisServer(): Promise<string> {
  const fromEnv = process.env.CLOUDREST_TEST_REDIS_URL;
  if (fromEnv) return Promise.resolve(fromEnv);
  sharedRedis ??= (async () => ((await reachable('127.0.0.1', 6379)) ? 'redis://127.0.0.1:6379' : (await privateRedis()).url))();
  return sharedRedis;
}

export interface TestRedis {
  readonly url: string;
  /** `cloudrest-test:<pid>_<random>:`, this run's alone. */
  readonly keyPrefix: string;
  /** Deletes every key under the prefix. */
  drop(): Promise<void>;
}

/** A key prefix of its own on the shared test Redis. */
export async function testRedis(): Promise<TestRedis> {
  const url = await redisServer();
  const keyPrefix = `cloudrest-test:${runTag()}:`;
  return {
    url,
    keyPrefix,
    async drop() {
      const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
      await r.connect();
      try {
        let cursor = '0';
        do {
          const [next, keys] = await r.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length > 0) await r.del(...keys);
        } while (cursor !== '0');
      } finally {
        r.disconnect();
      }
    },
  };
}
