import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { HubConfig } from '../config/hub-options.js';
import { ConfigError } from '../config/load.js';
import { newId } from '../core/secrets.js';
import type { ClusterSecrets } from './node-link-auth.js';
import { parseInternalUrl } from './node-link.js';

export type NodeRole = 'all' | 'front' | 'edge';

/** What a node of a scaled-out hub needs beyond the embedded hub's config, checked once at start. */
export interface ClusterSettings {
  readonly role: NodeRole;
  readonly nodeId: string;
  /** Both secrets this node accepts, the current one first (it proves with that one). */
  readonly secrets: ClusterSecrets;
  /** PEM material for node-to-node TLS; undefined for plain TCP links. */
  readonly tls: { cert: Buffer; key: Buffer; ca: Buffer | undefined } | undefined;
  /** Whether this node takes agent tunnels (and so listens on --internal-port). */
  readonly holdsTunnels: boolean;
  /** Whether this node serves the client API, SSE and OAuth. */
  readonly servesClients: boolean;
  /** Set for a role-all node on the SQLite file under --data: only nodes on this machine sharing that folder share it. */
  readonly storeWarning: string | undefined;
}

const NODE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MIN_SECRET_CHARS = 16;

/** A configuration mistake a node refuses to start with (exit 2, one line); the message names the flags. */
export class ClusterConfigError extends ConfigError {}

/**
 * The node's role and cluster settings, validated; undefined for the embedded hub (`--role all`
 * without --redis: one process, nothing to route between).
 */
export function clusterSettings(config: HubConfig): ClusterSettings | undefined {
  const role = config.role as NodeRole;
  if (config.nodeId !== undefined && !NODE_ID.test(config.nodeId)) {
    throw new ClusterConfigError(`--node-id ${JSON.stringify(config.nodeId)}: use 1 to 64 letters, digits, - and _`);
  }
  const sharedStore = config.store.startsWith('postgres://') || config.store.startsWith('postgresql://');
  if (role !== 'all') {
    if (config.redis === undefined) throw new ClusterConfigError(`--role ${role} needs --redis redis://HOST:PORT: nodes find each other's devices there`);
    if (!sharedStore) throw new ClusterConfigError(`--role ${role} needs a store every node shares: --store postgres://USER@HOST:PORT/DB, not the SQLite file under --data`);
  }
  if (config.redis === undefined && role === 'all') return undefined;
  const secret = config.clusterSecret;
  if (secret === undefined || secret.length < MIN_SECRET_CHARS) {
    throw new ClusterConfigError(`${role === 'all' ? '--redis' : `--role ${role}`} needs --cluster-secret (at least ${MIN_SECRET_CHARS} characters; set it with CLOUDREST_CLUSTER_SECRET rather than on the command line): nodes authenticate each other with it`);
  }
  const previous = config.clusterSecretPrevious;
  if (previous !== undefined && previous.length < MIN_SECRET_CHARS) throw new ClusterConfigError(`--cluster-secret-previous must have at least ${MIN_SECRET_CHARS} characters too`);
  if ((config.internalTlsCert === undefined) !== (config.internalTlsKey === undefined)) {
    throw new ClusterConfigError('--internal-tls-cert and --internal-tls-key go together');
  }
  if (config.internalTlsCa !== undefined && config.internalTlsCert === undefined) {
    throw new ClusterConfigError('--internal-tls-ca needs --internal-tls-cert and --internal-tls-key (mutual TLS between nodes)');
  }
  if (config.internalUrl !== undefined) {
    try {
      const u = parseInternalUrl(config.internalUrl);
      if (u.tls !== (config.internalTlsCert !== undefined)) throw new Error(u.tls ? 'tls:// needs --internal-tls-cert and --internal-tls-key' : 'use tls:// with --internal-tls-cert');
    } catch (err) {
      throw new ClusterConfigError(`--internal-url ${config.internalUrl}: ${(err as Error).message}`);
    }
  }
  const tls = config.internalTlsCert !== undefined && config.internalTlsKey !== undefined
    ? { cert: readFileSync(config.internalTlsCert), key: readFileSync(config.internalTlsKey), ca: config.internalTlsCa === undefined ? undefined : readFileSync(config.internalTlsCa) }
    : undefined;
  return Object.freeze({
    role,
    nodeId: config.nodeId ?? newId('n_'),
    secrets: (previous === undefined ? [secret] : [secret, previous]) as ClusterSecrets,
    tls,
    holdsTunnels: role !== 'front',
    servesClients: role !== 'edge',
    storeWarning: sharedStore
      ? undefined
      : '--redis with the SQLite store: only nodes on this machine with the same --data share it; use --store postgres://USER@HOST:PORT/DB for nodes on several machines',
  });
}

/** How other nodes reach this one: --internal-url, else tcp:// or tls:// of --host and the bound port. */
export function internalUrlOf(config: HubConfig, settings: ClusterSettings, port: number): string {
  if (config.internalUrl !== undefined) return config.internalUrl;
  const host = config.host === '0.0.0.0' || config.host === '::' ? hostname() : config.host;
  return `${settings.tls ? 'tls' : 'tcp'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
