// The deployment files in deploy/ (compose, systemd) are what users copy: every flag and CLOUDREST_*
// variable they name must be one the hub knows, and each node's settings must load as a valid config.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { hubOptions } from '../src/config/hub-options.js';
import { loadConfig } from '../src/config/load.js';
import { envName } from '../src/config/option.js';

const DEPLOY = new URL('../deploy/', import.meta.url).pathname;
const KNOWN_ENV = new Set(['CLOUDREST_CONFIG', ...Object.keys(hubOptions).map(envName)]);

/** KEY=VALUE lines of an env file, comments and blank lines left out. */
function envFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

test('every CLOUDREST_* variable in deploy/ is an option of cloudrest hub', () => {
  const files = ['Dockerfile', 'compose/compose.yaml', ...readdirSync(join(DEPLOY, 'systemd')).map((f) => `systemd/${f}`)];
  const unknown: string[] = [];
  let seen = 0;
  for (const f of files) {
    for (const m of readFileSync(join(DEPLOY, f), 'utf8').matchAll(/\bCLOUDREST_[A-Z0-9_]+/g)) {
      seen++;
      if (!KNOWN_ENV.has(m[0])) unknown.push(`${f}: ${m[0]}`);
    }
  }
  assert.ok(seen > 10, `expected the deploy files to configure the hub through CLOUDREST_* variables, saw ${seen}`);
  assert.deepEqual(unknown, []);
});

test('each compose node (its command and the shared environment) loads as a valid hub config', () => {
  const text = readFileSync(join(DEPLOY, 'compose/compose.yaml'), 'utf8');
  // The shared environment block of the x-hub anchor: `    CLOUDREST_X: value` lines.
  const env: Record<string, string> = {};
  for (const m of text.matchAll(/^ {4}(CLOUDREST_[A-Z0-9_]+): (.+)$/gm)) env[m[1]!] = m[2]!.replace(/\$\{[A-Z_]+:-([^}]*)\}/, '$1').replace(/\$\{[A-Z_]+:\?[^}]*\}/, 'a-secret-of-at-least-sixteen-chars');
  const commands = [...text.matchAll(/^ {4}command: (\[.*\])$/gm)].map((m) => JSON.parse(m[1]!) as string[]).filter((c) => c[0] === 'hub');
  assert.equal(commands.length, 4, 'two fronts and two edges');
  const roles = commands.map((argv) => loadConfig(hubOptions, { argv: argv.slice(1), env }).config).map((c) => `${c.role}:${c.nodeId}`);
  assert.deepEqual(roles, ['front:front1', 'front:front2', 'edge:edge1', 'edge:edge2']);
  assert.match(env.CLOUDREST_STORE ?? '', /^postgres:\/\//);
  assert.match(env.CLOUDREST_REDIS ?? '', /^redis:\/\//);
});

test('the systemd example env files load as a front and an edge', () => {
  const common = envFile(join(DEPLOY, 'systemd/common.env'));
  for (const [file, role] of [['front1.env', 'front'], ['edge1.env', 'edge']] as const) {
    const env = { ...common, ...envFile(join(DEPLOY, 'systemd', file)), CLOUDREST_NODE_ID: file.replace('.env', '') };
    const { config } = loadConfig(hubOptions, { argv: [], env });
    assert.equal(config.role, role);
    assert.match(config.store, /^postgres:\/\//);
  }
});
