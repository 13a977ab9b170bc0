// The load generator, run as its own process so it never shares an event loop with a server under
// test: autocannon for the warm-up, then for the measured run. Latency comes from autocannon's
// per-response times (float ms) into a 10 µs histogram, since its own histogram rounds to whole ms.
//
// Usage: node --import tsx bench/relay/load.ts '{"url":...,"connections":N,"warmupS":2,"durationS":10,"headers":{},"rate":5000}'
// Prints {"phase":"measure"} when the measured run starts, then one {"result":{...}} line.
import { createRequire } from 'node:module';
import type { EventEmitter } from 'node:events';
import { Pool } from 'undici';

interface LoadSpec {
  url: string;
  connections: number;
  warmupS: number;
  durationS: number;
  headers: Record<string, string>;
  /** Requests per second across all connections (autocannon's overallRate); absent: as fast as answered. */
  rate?: number;
}

interface CannonResult {
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}

type Cannon = (
  opts: { url: string; connections: number; duration: number; headers: Record<string, string>; overallRate?: number },
  cb: (err: Error | null, result: CannonResult) => void,
) => EventEmitter;

export interface LoadResult {
  requestsPerS: number;
  ok: number;
  errors: number;
  non2xx: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

const autocannon = createRequire(import.meta.url)('autocannon') as Cannon;
const BUCKET_MS = 0.01;
const BUCKETS = 200_000; // 10 µs up to 2 s; slower answers land in the last bucket

function run(spec: LoadSpec, durationS: number, hist?: Uint32Array): Promise<CannonResult> {
  if (spec.rate) return paced(spec, spec.rate, durationS, hist);
  return new Promise((resolve, reject) => {
    const opts = { url: spec.url, connections: spec.connections, duration: durationS, headers: spec.headers };
    const inst = autocannon(opts, (err, r) => (err ? reject(err) : resolve(r)));
    if (hist) {
      inst.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
        if (status >= 200 && status < 300) hist[Math.min(BUCKETS - 1, Math.floor(ms / BUCKET_MS))]!++;
      });
    }
  });
}

/**
 * Open loop at a fixed rate: requests are due at even intervals whatever the answers do, on a pool of
 * `connections` kept-alive connections. Each latency counts from when the request was handed to the
 * pool, so time spent waiting for a busy connection counts against the server (no coordinated
 * omission), while the timer's own lateness (it wakes every millisecond or so and sends what is due)
 * does not. (autocannon's overallRate sends each connection's share in a burst every second, which
 * measures the burst, not the server.)
 */
async function paced(spec: LoadSpec, rate: number, durationS: number, hist?: Uint32Array): Promise<CannonResult> {
  const url = new URL(spec.url);
  const pool = new Pool(url.origin, { connections: spec.connections, pipelining: 1 });
  const intervalNs = 1e9 / rate;
  const start = process.hrtime.bigint();
  const endNs = Number(durationS) * 1e9;
  let due = 0;
  let ok = 0;
  let errors = 0;
  let non2xx = 0;
  let inflight = 0;
  const fire = (): void => {
    inflight++;
    const sentNs = Number(process.hrtime.bigint() - start);
    pool.request({ method: 'GET', path: url.pathname + url.search, headers: spec.headers }).then(async ({ statusCode, body }) => {
      await body.dump();
      const ms = (Number(process.hrtime.bigint() - start) - sentNs) / 1e6;
      if (statusCode >= 200 && statusCode < 300) {
        ok++;
        if (hist) hist[Math.min(BUCKETS - 1, Math.floor(ms / BUCKET_MS))]!++;
      } else non2xx++;
    }, () => errors++).finally(() => inflight--);
  };
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = Number(process.hrtime.bigint() - start);
      while (due <= now && due < endNs) {
        fire();
        due += intervalNs;
      }
      if (due < endNs) setTimeout(tick, 1);
      else resolve();
    };
    tick();
  });
  while (inflight > 0) await new Promise((r) => setTimeout(r, 5));
  await pool.close();
  return { duration: durationS, errors, timeouts: 0, non2xx, '2xx': ok };
}

function percentile(hist: Uint32Array, total: number, p: number): number {
  const want = Math.ceil(total * p);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= want && want > 0) return (i + 1) * BUCKET_MS;
  }
  return NaN;
}

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
if (spec.warmupS > 0) await run(spec, spec.warmupS);
process.stdout.write(`${JSON.stringify({ phase: 'measure' })}\n`);
const hist = new Uint32Array(BUCKETS);
const r = await run(spec, spec.durationS, hist);
let max = 0;
for (let i = 0; i < BUCKETS; i++) if (hist[i]! > 0) max = (i + 1) * BUCKET_MS;
const result: LoadResult = {
  requestsPerS: r['2xx'] / r.duration,
  ok: r['2xx'],
  errors: r.errors + r.timeouts,
  non2xx: r.non2xx,
  p50Ms: percentile(hist, r['2xx'], 0.5),
  p99Ms: percentile(hist, r['2xx'], 0.99),
  maxMs: max,
};
process.stdout.write(`${JSON.stringify({ result })}\n`);
