// Where a Node process allocates, including what the young generation collects at once (the sampling
// heap profiler of --heap-prof drops those samples, which are the ones that matter on a hot path).
// Load it into the process under test; it starts after ALLOC_DELAY_MS (skip start-up and warm-up) and
// writes a table of allocation by function, with the two callers above Node's and V8's own functions,
// to ALLOC_OUT when the process exits:
//
//   ALLOC_DELAY_MS=4000 ALLOC_OUT=/tmp/hub-alloc.txt BENCH_BROKERS=hub BENCH_FLOOR=0 \
//     BENCH_HUB_FLAGS="--import $PWD/bench/support/alloc-profile.mjs" BENCH_SCENARIOS=latency-q1 npm run bench:mqtt
//
// Divide the total by the messages in the sampled window for bytes per message.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';

// '%p' in ALLOC_OUT becomes the process id (NODE_OPTIONS loads this into every process of a run).
const out = (process.env.ALLOC_OUT ?? 'alloc-profile-%p.txt').replace('%p', String(process.pid));
const session = new Session();
session.connect();
session.post('HeapProfiler.enable');
let started = false;
setTimeout(() => {
  const params = { samplingInterval: 512, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true };
  session.post('HeapProfiler.startSampling', params, (err) => {
    if (err) process.stderr.write(`alloc-profile: ${err.message}\n`);
    else started = true;
  });
}, Number(process.env.ALLOC_DELAY_MS ?? 2000)).unref();

const label = (frame) => `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}`;

process.on('exit', () => {
  if (!started) return;
  // The in-process inspector answers synchronously, so this completes before the process ends.
  session.post('HeapProfiler.stopSampling', (err, result) => {
    if (err) return;
    const bytes = new Map();
    let total = 0;
    const walk = (node, callers) => {
      const f = node.callFrame;
      let name = label(f);
      // Builtins and Node's internals say little alone: name who called them.
      if (f.url === '' || f.url.startsWith('node:')) name += ` <- ${callers.slice(-2).reverse().join(' <- ')}`;
      total += node.selfSize;
      bytes.set(name, (bytes.get(name) ?? 0) + node.selfSize);
      const here = `${f.functionName || '(anonymous)'}:${f.lineNumber + 1}`;
      for (const child of node.children) walk(child, [...callers, here]);
    };
    walk(result.profile.head, []);
    const rows = [...bytes].sort((a, b) => b[1] - a[1]).slice(0, 50);
    const lines = rows.map(([name, n]) => `${(n / 1e6).toFixed(1).padStart(8)} MB ${((100 * n) / total).toFixed(1).padStart(5)} %  ${name}`);
    writeFileSync(out, `allocated while sampling: ${(total / 1e6).toFixed(1)} MB\n${lines.join('\n')}\n`);
  });
});
