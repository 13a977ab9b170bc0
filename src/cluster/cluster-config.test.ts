import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hubOptions } from '../config/hub-options.js';
import { loadConfig } from '../config/load.js';
import { clusterSettings, internalUrlOf } from './cluster-config.js';

const SECRET = ['--cluster-secret', 'a-cluster-secret-of-32-characters'];
const PG = ['--store', 'postgres://u@db:5432/cloudrest'];
const settings = (...argv: string[]) => clusterSettings(loadConfig(hubOptions, { argv, env: {} }).config);

test('the embedded hub (role all, no --redis) has no cluster settings', () => {
  assert.equal(settings(), undefined);
});

test('a front or an edge without --redis, or any node without a long enough cluster secret, is refused with the flag named', () => {
  assert.throws(() => settings('--role', 'front'), /--role front needs --redis/);
  assert.throws(() => settings('--role', 'front', '--redis', 'redis://127.0.0.1:6379', ...SECRET), /--role front needs a store every node shares: --store postgres:\/\//);
  assert.throws(() => settings('--role', 'edge', '--redis', 'redis://127.0.0.1:6379', ...PG), /--role edge needs --cluster-secret/);
  assert.throws(() => settings('--redis', 'redis://127.0.0.1:6379', '--cluster-secret', 'short'), /--redis needs --cluster-secret \(at least 16/);
  assert.throws(() => settings('--role', 'edge', '--redis', 'redis://x:1', ...PG, ...SECRET, '--cluster-secret-previous', 'short'), /--cluster-secret-previous/);
});

test('--node-id takes letters, digits, - and _ only', () => {
  assert.throws(() => settings('--node-id', 'edge 1'), /--node-id "edge 1"/);
  assert.equal(settings('--role', 'edge', '--redis', 'redis://x:1', ...PG, ...SECRET, '--node-id', 'edge_1-a')?.nodeId, 'edge_1-a');
});

test('node-to-node TLS options go together, and --internal-url matches them', () => {
  const base = ['--role', 'edge', '--redis', 'redis://x:1', ...PG, ...SECRET];
  assert.throws(() => settings(...base, '--internal-tls-cert', '/nonexistent.pem'), /--internal-tls-cert and --internal-tls-key go together/);
  assert.throws(() => settings(...base, '--internal-url', 'tls://edge1:7444'), /--internal-url tls:\/\/edge1:7444: tls:\/\/ needs --internal-tls-cert/);
  assert.throws(() => settings(...base, '--internal-url', 'http://edge1:7444'), /tcp:\/\/HOST:PORT or tls:\/\/HOST:PORT/);
});

test('a front serves clients and holds no tunnels; an edge the other way round; a role-all node on SQLite hears it is one-machine only', () => {
  const front = settings('--role', 'front', '--redis', 'redis://x:1', ...PG, ...SECRET)!;
  assert.deepEqual([front.servesClients, front.holdsTunnels, front.storeWarning], [true, false, undefined]);
  assert.match(settings('--redis', 'redis://x:1', ...SECRET)!.storeWarning ?? '', /--store postgres:\/\//);
  const edge = settings('--role', 'edge', '--redis', 'redis://x:1', ...SECRET, ...PG)!;
  assert.deepEqual([edge.servesClients, edge.holdsTunnels, edge.storeWarning], [false, true, undefined]);
  assert.deepEqual(edge.secrets, ['a-cluster-secret-of-32-characters']);
});

test('the internal URL defaults to tcp:// of --host and the bound port', () => {
  const { config } = loadConfig(hubOptions, { argv: ['--role', 'edge', '--redis', 'redis://x:1', ...PG, ...SECRET, '--host', '10.0.0.5'], env: {} });
  assert.equal(internalUrlOf(config, clusterSettings(config)!, 7444), 'tcp://10.0.0.5:7444');
});
