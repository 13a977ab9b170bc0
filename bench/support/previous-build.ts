// An earlier build of the hub beside this one, for A/B figures measured in the same run:
// `BENCH_PREVIOUS=<git ref>` (a commit, tag or `HEAD~1`) checks that commit out as a detached git
// worktree under .bench-tmp/, links this checkout's node_modules when the two lockfiles are the same
// (else runs `npm ci` there), and builds it with its own `npm run build`. A commit is built once; later
// runs reuse it. Progress goes to stderr, so a benchmark's stdout stays its report.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

export interface Build {
  /** The full commit hash. */
  readonly commit: string;
  /** `<short hash> <subject>`, for report titles. */
  readonly title: string;
  readonly root: string;
  /** Its `bin/cloudrest.js`. */
  readonly cli: string;
  /** Its agent bundle, `dist/cloudrest-agent.mjs`. */
  readonly agent: string;
}

const git = (args: string[]): string => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();

/** Builds `ref` (once per commit) and returns where its CLI and agent are. */
export function previousBuild(ref: string): Build {
  const commit = git(['rev-parse', '--verify', `${ref}^{commit}`]);
  const title = git(['log', '-1', '--format=%h %s', commit]).slice(0, 80);
  const root = join(ROOT, '.bench-tmp', `build-${commit.slice(0, 12)}`);
  const built = join(root, '.built');
  if (!existsSync(built)) {
    process.stderr.write(`building the previous build ${title} in ${root}\n`);
    if (existsSync(root)) {
      execFileSync('git', ['worktree', 'remove', '--force', root], { cwd: ROOT, stdio: 'ignore' });
      rmSync(root, { recursive: true, force: true });
    }
    git(['worktree', 'add', '--detach', '--force', root, commit]);
    const sameLock = readFileSync(join(root, 'package-lock.json')).equals(readFileSync(join(ROOT, 'package-lock.json')));
    const out = { cwd: root, stdio: ['ignore', 2, 2] as ['ignore', number, number] };
    if (sameLock) symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
    else execFileSync('npm', ['ci', '--no-audit', '--no-fund'], out);
    execFileSync('npm', ['run', 'build'], out);
    writeFileSync(built, `${commit}\n`);
  }
  return { commit, title, root, cli: join(root, 'bin/cloudrest.js'), agent: join(root, 'dist/cloudrest-agent.mjs') };
}

/** The build BENCH_PREVIOUS names, or undefined when it is not set. */
export function previousFromEnv(): Build | undefined {
  const ref = process.env.BENCH_PREVIOUS;
  return ref === undefined || ref === '' ? undefined : previousBuild(ref);
}
