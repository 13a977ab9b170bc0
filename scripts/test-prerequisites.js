// The system programs the test suite drives as real peers (mosquitto clients, Paho, curl, openssl,
// dig, Avahi in network namespaces), checked before `npm test` builds anything. Missing ones are
// installed when this runs as root with apt-get (as on CI: .ci/run calls this same script);
// otherwise it stops at once with the one command that installs them.
//
//   node scripts/test-prerequisites.js               check, and install what is missing when root
//   node scripts/test-prerequisites.js --check-only  check, never install (as a non-root user)
import { accessSync, constants, existsSync, readdirSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/**
 * The one list: what is needed, which Debian package provides it, and which tests use it. A check is
 * a command looked up on PATH, or a Python module imported by a given interpreter.
 */
export const PREREQUISITES = [
  { command: 'curl', package: 'curl', usedBy: 'HTTP and SSE end-to-end tests (test/support/procs.ts)' },
  { command: 'openssl', package: 'openssl', usedBy: 'TLS certificates for MQTTS and tunnel tests' },
  { command: 'mosquitto_pub', package: 'mosquitto-clients', usedBy: 'MQTT tests with the Mosquitto clients' },
  { command: 'mosquitto_sub', package: 'mosquitto-clients', usedBy: 'MQTT tests with the Mosquitto clients' },
  { python: '/usr/bin/python3', module: 'paho.mqtt', package: 'python3-paho-mqtt', usedBy: 'test/mqtt-paho.test.ts (Paho for Python)' },
  { command: 'ip', package: 'iproute2', usedBy: 'test/discovery.e2e.test.ts (a LAN of two network namespaces)' },
  { command: 'dig', package: 'dnsutils', usedBy: 'test/discovery.e2e.test.ts (mDNS queries)' },
  { command: 'avahi-daemon', package: 'avahi-daemon', usedBy: 'test/discovery.e2e.test.ts (started by the test itself)' },
  { command: 'avahi-browse', package: 'avahi-utils', usedBy: 'test/discovery.e2e.test.ts (DNS-SD browsing)' },
  { command: 'dbus-daemon', package: 'dbus', usedBy: 'test/discovery.e2e.test.ts (the bus Avahi needs, started by the test itself)' },
  { command: 'redis-server', package: 'redis-server', usedBy: 'scaled-out tests that restart Redis (test/support/services.ts starts private ones)' },
  { command: 'haproxy', package: 'haproxy', usedBy: 'test/deploy-haproxy.e2e.test.ts (the shipped load balancer config, run for real)' },
  { command: 'dockerd', package: 'docker.io', usedBy: 'test/deploy-compose.e2e.test.ts (the shipped compose.yaml, deployed for real; the test starts the daemon)' },
  { command: 'docker-compose', package: 'docker-compose', usedBy: 'test/deploy-compose.e2e.test.ts (where `docker compose` v2 is absent)' },
  { command: 'debootstrap', package: 'debootstrap', usedBy: 'test/compose-stand-ins/build-images.sh (base images where no registry is reachable)' },
  { serverBin: '/usr/lib/postgresql', binary: 'initdb', package: 'postgresql', usedBy: 'scaled-out tests that stop PostgreSQL (test/support/services.ts starts private ones)' },
];

/** True when some `<base>/<version>/bin/<binary>` exists (Debian installs PostgreSQL per version). */
export function inServerBin(base, binary) {
  try {
    return readdirSync(base).some((v) => existsSync(join(base, v, 'bin', binary)));
  } catch {
    return false;
  }
}

/** True when `name` is an executable file in one of the PATH directories. */
export function onPath(name, path) {
  for (const dir of (path ?? '').split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** True when `python` exists and imports `module`. */
export function pythonHas(python, module) {
  const r = spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore', timeout: 20_000 });
  return r.status === 0;
}

/** The prerequisites not met; `probe` lets tests check against a PATH of their own. */
export function missing(prerequisites = PREREQUISITES, probe = { path: process.env.PATH, onPath, pythonHas, inServerBin }) {
  return prerequisites.filter((p) => {
    if (p.command !== undefined) return !probe.onPath(p.command, probe.path);
    if (p.serverBin !== undefined) return !(probe.inServerBin ?? inServerBin)(p.serverBin, p.binary);
    return !probe.pythonHas(p.python, p.module);
  });
}

/** What it is called in messages: the command, or the interpreter and module. */
export const label = (p) => p.command ?? (p.serverBin !== undefined ? `${p.serverBin}/*/bin/${p.binary}` : `${p.python} -c 'import ${p.module}'`);

/** The Debian packages for what is missing, each once, in table order. */
export const packagesFor = (absent) => [...new Set(absent.map((p) => p.package))];

/**
 * What to do about `absent`: nothing, install with apt-get (root with apt-get, and installing
 * allowed), or stop with one line naming the command to run.
 */
export function decide(absent, { root, aptGet, checkOnly }) {
  if (absent.length === 0) return { action: 'none' };
  const packages = packagesFor(absent);
  const install = `apt-get install -y ${packages.join(' ')}`;
  if (root && aptGet && !checkOnly) return { action: 'install', packages, commands: [['apt-get', '-qq', 'update'], ['apt-get', 'install', '-y', '-qq', ...packages]] };
  const what = absent.map(label).join(', ');
  const how = aptGet ? `run: ${root ? '' : 'sudo '}${install}` : `install them (on Debian or Ubuntu: sudo ${install})`;
  return { action: 'stop', message: `npm test needs ${what}, which this machine lacks; ${how}, then npm test again` };
}

/** Checks, installs or stops; returns the exit code. */
export function main({ argv = process.argv.slice(2), env = process.env, root = process.getuid?.() === 0, log = console.log, error = console.error } = {}) {
  const checkOnly = argv.includes('--check-only');
  const probe = { path: env.PATH, onPath, pythonHas, inServerBin };
  const absent = missing(PREREQUISITES, probe);
  const plan = decide(absent, { root, aptGet: onPath('apt-get', env.PATH), checkOnly });
  if (plan.action === 'none') return 0;
  if (plan.action === 'stop') {
    error(plan.message);
    return 1;
  }
  log(`test prerequisites: missing ${absent.map(label).join(', ')}; installing ${plan.packages.join(' ')}`);
  for (const cmd of plan.commands) {
    log(`+ ${cmd.join(' ')}`);
    const r = spawnSync(cmd[0], cmd.slice(1), { stdio: ['ignore', 'ignore', 'inherit'], env: { ...env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0) {
      error(`test prerequisites: ${cmd.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`})`);
      return 1;
    }
  }
  const still = missing(PREREQUISITES, probe);
  if (still.length > 0) {
    error(`test prerequisites: still missing after installing: ${still.map(label).join(', ')}`);
    return 1;
  }
  return 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exit(main());
