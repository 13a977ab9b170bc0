// A longer hunt with the decoder fuzz tests (test/fuzz-*.test.ts, docs/operations.md "Fuzzing the
// decoders"): many more runs per property than `npm test` makes, from a new seed unless one is given.
//
//   npm run fuzz                                        20,000 runs per property, a random seed
//   CLOUDREST_FUZZ_RUNS=200000 CLOUDREST_FUZZ_SEED=42 npm run fuzz
import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

const runs = process.env.CLOUDREST_FUZZ_RUNS || '20000';
const seed = process.env.CLOUDREST_FUZZ_SEED || String((Math.random() * 0x7fffffff) | 0);
const files = readdirSync('test').filter((f) => f.startsWith('fuzz-') && f.endsWith('.test.ts')).sort().map((f) => `test/${f}`);
console.log(`fuzzing ${files.length} files: CLOUDREST_FUZZ_RUNS=${runs} CLOUDREST_FUZZ_SEED=${seed} (set both to repeat this run)`);
const r = spawnSync(process.execPath, ['scripts/run-tests.js', ...files], { stdio: 'inherit', env: { ...process.env, CLOUDREST_FUZZ_RUNS: runs, CLOUDREST_FUZZ_SEED: seed } });
process.exit(r.status ?? 1);
