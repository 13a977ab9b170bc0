/**
 * A device's credentials folder, as `cloudrest agent provision` writes it and `cloudrest agent
 * --credentials DIR` reads it:
 *
 *   DIR/credentials.json  {"deviceId","secret","hub":[...],"identity","factory"}   mode 0600
 *   DIR/identity          SHA-256 of the device id, hex (seed 002: written once the factory server
 *                         has the id, so its presence means "provisioned")                  mode 0600
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ConfigError } from '../config/load.js';
import { deviceIdProblem } from '../core/device-fields.js';

export const CREDENTIALS_FILE = 'credentials.json';
export const IDENTITY_FILE = 'identity';
const MAX_CREDENTIALS_BYTES = 64 * 1024;

export interface DeviceCredentials {
  deviceId: string;
  secret: string;
  /** Tunnel URLs (tcp://, tls://, ws://, wss://). */
  hub: string[];
  /** SHA-256 of deviceId, hex. */
  identity: string;
  /** The URL the device was provisioned through. */
  factory: string;
}

/** The identity of a device id (seed 002: the identity file holds the device id hashed with SHA-256). */
export function identityOf(deviceId: string): string {
  return createHash('sha256').update(deviceId, 'utf8').digest('hex');
}

/** The credentials.json text for `c`: stable, so provisioning twice writes the same bytes. */
export function credentialsJson(c: DeviceCredentials): string {
  return `${JSON.stringify({ deviceId: c.deviceId, secret: c.secret, hub: c.hub, identity: c.identity, factory: c.factory }, null, 2)}\n`;
}

/** Reads and checks DIR/credentials.json; undefined if the folder has none. Throws ConfigError if it is unusable. */
export async function readCredentials(dir: string): Promise<DeviceCredentials | undefined> {
  const path = join(dir, CREDENTIALS_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`${path}: ${(err as Error).message}`);
  }
  if (text.length > MAX_CREDENTIALS_BYTES) throw new ConfigError(`${path}: larger than ${MAX_CREDENTIALS_BYTES} bytes`);
  let o: unknown;
  try {
    o = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${path}: not JSON (${(err as Error).message})`);
  }
  const c = (typeof o === 'object' && o !== null ? o : {}) as Record<string, unknown>;
  const str = (k: string): string => {
    const v = c[k];
    if (typeof v !== 'string' || v === '') throw new ConfigError(`${path}: "${k}" must be a non-empty string`);
    return v;
  };
  const deviceId = str('deviceId');
  const problem = deviceIdProblem(deviceId);
  if (problem) throw new ConfigError(`${path}: deviceId: ${problem}`);
  const hub = c.hub;
  if (!Array.isArray(hub) || hub.length === 0 || !hub.every((h) => typeof h === 'string' && h !== '')) throw new ConfigError(`${path}: "hub" must be a list of hub URLs`);
  const identity = str('identity');
  if (identity !== identityOf(deviceId)) throw new ConfigError(`${path}: "identity" is not the SHA-256 of deviceId`);
  return { deviceId, secret: str('secret'), hub: hub as string[], identity, factory: typeof c.factory === 'string' ? c.factory : '' };
}
