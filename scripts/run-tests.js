// Finds *.test.ts under test/ and src/ and runs them with node's test runner (via tsx).
//
// Every file has 240 s (--test-timeout counts per file). The files in LONG build container images on a
// fresh machine, which takes minutes: they run beside the others, in a runner of their own with a
// longer limit, and their report is printed after the others'.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

const LONG = new Set([join('test', 'deploy-compose.e2e.test.ts')]);
const LONG_TIMEOUT_MS = 25 * 60_000;

function find(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) find(p, out);
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

/** Runs the test runner over `files`; resolves with its exit code (and its output, when buffered). */
function runner(files, timeoutMs, buffered) {
  return new Promise((resolve) => {
    const args = ['--import', 'tsx', '--test', '--test-concurrency=2', `--test-timeout=${timeoutMs}`, ...files];
    const child = spawn(process.execPath, args, { stdio: ['ignore', buffered ? 'pipe' : 'inherit', buffered ? 'pipe' : 'inherit'] });
    const out = [];
    if (buffered) {
      child.stdout.on('data', (c) => out.push(c));
      child.stderr.on('data', (c) => out.push(c));
    }
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 1 : 0), output: Buffer.concat(out) }));
  });
}

const only = process.argv.slice(2);
const files = only.length ? only : [...find('src'), ...find('test')].sort();
const long = files.filter((f) => LONG.has(f));
const rest = files.filter((f) => !LONG.has(f));
const longRun = long.length ? runner(long, LONG_TIMEOUT_MS, rest.length > 0) : undefined;
const main = rest.length ? await runner(rest, 240_000, false) : { code: 0 };
let code = main.code;
if (longRun) {
  const r = await longRun;
  if (r.output.length) process.stdout.write(r.output);
  if (code === 0) code = r.code;
}
process.exit(code);
