// The preflight `npm test` runs first (scripts/test-prerequisites.js): on a machine without the
// programs the suite drives, it installs them (root with apt-get) or stops at once with the command to
// run. Tested against PATHs of fake programs in a temp dir: nothing is installed or removed for real.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
// @ts-expect-error: a plain ESM script without type declarations
import * as preflight from '../scripts/test-prerequisites.js';

interface Prerequisite { command?: string; python?: string; module?: string; package: string }
const { PREREQUISITES, decide, main, missing, onPath, packagesFor, pythonHas } = preflight as {
  PREREQUISITES: Prerequisite[];
  decide: (absent: Prerequisite[], o: { root: boolean; aptGet: boolean; checkOnly: boolean }) => { action: string; message?: string; packages?: string[]; commands?: string[][] };
  main: (o: { argv?: string[]; env?: NodeJS.ProcessEnv; root?: boolean; log?: (s: string) => void; error?: (s: string) => void }) => number;
  missing: (p?: Prerequisite[], probe?: { path: string; onPath: typeof onPathFn; pythonHas: (py: string, m: string) => boolean }) => Prerequisite[];
  onPath: typeof onPathFn;
  packagesFor: (absent: Prerequisite[]) => string[];
  pythonHas: (py: string, m: string) => boolean;
};
declare function onPathFn(name: string, path: string | undefined): boolean;

const SCRIPT = resolve(import.meta.dirname, '../scripts/test-prerequisites.js');
const dirs: string[] = [];
after(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

/** A directory of fake programs (each exits 0) to use as the whole PATH. */
function fakeBin(commands: readonly string[], scripts: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'cloudrest-preflight-'));
  dirs.push(dir);
  for (const c of commands) writeFileSync(join(dir, c), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  for (const [name, body] of Object.entries(scripts)) writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return dir;
}
const CHMOD = ['/bin/chmod', '/usr/bin/chmod'].find((p) => existsSync(p))!;
const allCommands = PREREQUISITES.flatMap((p) => (p.command ? [p.command] : []));
const byCommand = (c: string): Prerequisite => PREREQUISITES.find((p) => p.command === c)!;

describe('test prerequisites (npm test preflight)', () => {
  test('every program the tests spawn is in the one list, with its Debian package', () => {
    for (const c of ['dig', 'mosquitto_pub', 'mosquitto_sub', 'curl', 'openssl', 'ip', 'avahi-daemon', 'avahi-browse', 'dbus-daemon']) assert.ok(byCommand(c)?.package, c);
    assert.ok(PREREQUISITES.some((p) => p.python === '/usr/bin/python3' && p.module === 'paho.mqtt' && p.package === 'python3-paho-mqtt'));
  });

  test('a command is found only as an executable file on PATH', () => {
    const dir = fakeBin(['present']);
    writeFileSync(join(dir, 'not-executable'), 'x', { mode: 0o644 });
    assert.ok(onPath('present', `/nonexistent:${dir}`));
    assert.ok(!onPath('not-executable', dir));
    assert.ok(!onPath('absent', dir));
    assert.ok(!onPath('present', ''));
    const python = fakeBin([], { python: 'case "$2" in "import good") exit 0;; *) exit 1;; esac' });
    assert.ok(pythonHas(join(python, 'python'), 'good'));
    assert.ok(!pythonHas(join(python, 'python'), 'bad'));
    assert.ok(!pythonHas(join(python, 'no-such-python'), 'good'));
  });

  test('nothing missing: nothing to do; missing as root with apt-get: update once, then install the packages', () => {
    assert.deepEqual(decide([], { root: true, aptGet: true, checkOnly: false }), { action: 'none' });
    const absent = [byCommand('dig'), byCommand('mosquitto_pub'), byCommand('mosquitto_sub')];
    const plan = decide(absent, { root: true, aptGet: true, checkOnly: false });
    assert.equal(plan.action, 'install');
    assert.deepEqual(plan.packages, ['dnsutils', 'mosquitto-clients'], 'each package once');
    assert.deepEqual(plan.commands?.map((c) => c.slice(0, 2)), [['apt-get', '-qq'], ['apt-get', 'install']]);
    assert.deepEqual(plan.commands?.[1]?.slice(-2), ['dnsutils', 'mosquitto-clients']);
  });

  test('missing without root, or with --check-only, or without apt-get: stop with one line naming the install command', () => {
    const absent = [byCommand('avahi-browse')];
    for (const o of [{ root: false, aptGet: true, checkOnly: false }, { root: true, aptGet: true, checkOnly: true }, { root: false, aptGet: false, checkOnly: false }]) {
      const plan = decide(absent, o);
      assert.equal(plan.action, 'stop');
      assert.ok(!plan.message!.includes('\n'));
      assert.match(plan.message!, /avahi-browse/);
      assert.match(plan.message!, o.root ? /apt-get install -y avahi-utils/ : /sudo apt-get install -y avahi-utils/);
    }
  });

  test('run by a user on a machine lacking dig, the script exits at once naming the command that installs it', () => {
    const bin = fakeBin([...allCommands.filter((c) => c !== 'dig'), 'apt-get']);
    const r = spawnSync(process.execPath, [SCRIPT, '--check-only'], { env: { PATH: bin }, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    // The packages named are those of what is missing here: dnsutils, and Paho only if this machine lacks it.
    const expected = packagesFor(missing(PREREQUISITES, { path: bin, onPath, pythonHas }));
    assert.ok(expected.includes('dnsutils'));
    assert.ok(lines[0]!.includes(`apt-get install -y ${expected.join(' ')},`), lines[0]);
    assert.ok(!lines[0]!.includes('curl'), 'present programs are not named');
  });

  test('as root with apt-get it runs apt-get update once and installs what is missing, then checks again', () => {
    const calls = join(mkdtempSync(join(tmpdir(), 'cloudrest-preflight-calls-')), 'calls');
    dirs.push(resolve(calls, '..'));
    // A fake apt-get that records its arguments and "installs" dig and ip into its own directory.
    const bin = fakeBin(allCommands.filter((c) => c !== 'dig' && c !== 'ip'), {
      'apt-get': `echo "$*" >> ${calls}\ncase "$*" in *install*) for c in dig ip; do printf '#!/bin/sh\\nexit 0\\n' > "\${0%/*}/$c"; ${CHMOD} +x "\${0%/*}/$c"; done;; esac`,
    });
    const out: string[] = [];
    const code = main({ argv: [], env: { PATH: bin }, root: true, log: (s) => out.push(s), error: (s) => out.push(s) });
    assert.equal(code, 0, out.join('\n'));
    const recorded = readFileSync(calls, 'utf8').trim().split('\n');
    assert.equal(recorded.length, 2);
    assert.equal(recorded[0], '-qq update');
    assert.match(recorded[1]!, /^install -y -qq .*\biproute2\b.*\bdnsutils\b/);
    assert.ok(existsSync(join(bin, 'dig')));
    assert.ok(out.some((l) => l.startsWith('+ apt-get install')), 'it prints what it runs');

    // An install that does not provide the program fails the preflight instead of the tests.
    const stubborn = fakeBin(allCommands.filter((c) => c !== 'dig'), { 'apt-get': 'exit 0' });
    const errors: string[] = [];
    assert.equal(main({ argv: [], env: { PATH: stubborn }, root: true, log: () => {}, error: (s) => errors.push(s) }), 1);
    assert.match(errors.join('\n'), /still missing after installing: .*dig/);
  });
});
