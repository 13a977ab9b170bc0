// Benchmarks that hold thousands of sockets need more open files than the usual soft limit of 1,024.
import { spawnSync } from 'node:child_process';

/**
 * Runs this script again under bash with the soft limit on open files raised to `limit` (or to the hard
 * limit where that is lower, as in containers without CAP_SYS_RESOURCE), and exits with its status.
 * Returns at once in the re-run (CLOUDREST_BENCH_FDS=1), which everything it starts inherits.
 */
export function rerunWithOpenFiles(limit: number): void {
  if (process.env.CLOUDREST_BENCH_FDS === '1') return;
  const cmd = `ulimit -n ${limit} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"`;
  const r = spawnSync('bash', ['-c', cmd, 'bash', process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, CLOUDREST_BENCH_FDS: '1' },
  });
  process.exit(r.status ?? 1);
}
