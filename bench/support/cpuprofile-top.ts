// Summarises a V8 .cpuprofile (node --cpu-prof): the functions with the most self time and the most
// total (inclusive) time, and self time per source file.
// Usage: node --import tsx bench/support/cpuprofile-top.ts FILE.cpuprofile [N=25]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const file = process.argv[2];
const n = Number(process.argv[3] ?? 25);
if (!file) {
  process.stderr.write('usage: cpuprofile-top.ts FILE.cpuprofile [N]\n');
  process.exit(2);
}
const prof = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(prof.nodes.map((x) => [x.id, x]));
const parent = new Map<number, number>();
for (const x of prof.nodes) for (const c of x.children ?? []) parent.set(c, x.id);

const short = (url: string): string => url.replace(/^file:\/\/.*?\/(dist|src|node_modules)\//, '$1/').replace(/^node:/, 'node:');
const key = (x: ProfileNode): string => `${x.callFrame.functionName || '(anonymous)'} ${short(x.callFrame.url)}:${x.callFrame.lineNumber + 1}`;

const self = new Map<string, number>();
const total = new Map<string, number>();
const files = new Map<string, number>();
let all = 0;
prof.samples.forEach((id, i) => {
  const us = prof.timeDeltas[i] ?? 0;
  all += us;
  const leaf = byId.get(id)!;
  self.set(key(leaf), (self.get(key(leaf)) ?? 0) + us);
  const f = short(leaf.callFrame.url) || leaf.callFrame.functionName;
  files.set(f, (files.get(f) ?? 0) + us);
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const k = key(byId.get(cur)!);
    if (!seen.has(k)) {
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + us);
    }
  }
});

const busy = all - (self.get('(idle) :0') ?? 0);
const top = (m: Map<string, number>, title: string): void => {
  process.stdout.write(`\n${title} (% of ${(busy / 1e6).toFixed(2)} s busy; ${(all / 1e6).toFixed(2)} s profiled)\n`);
  for (const [k, us] of [...m].filter(([k]) => !k.startsWith('(idle)') && !k.startsWith('(root)')).sort((a, b) => b[1] - a[1]).slice(0, n)) {
    process.stdout.write(`${((us / busy) * 100).toFixed(1).padStart(6)} %  ${k}\n`);
  }
};
top(self, 'self time');
top(total, 'total time');
top(files, 'self time by file');
