import { deviceIdProblem, deviceNameProblem, emailProblem } from '../core/device-fields.js';
import { hashPassword, newId, newSecret, sha256Hex } from '../core/secrets.js';
import { openStoreBackend, type StoreLocation } from '../backends.js';
import { DuplicateError, type Store } from '../store/store.js';
import { loadConfig, helpText } from '../config/load.js';
import type { OptionTable } from '../config/option.js';
import { hubOptions } from '../config/hub-options.js';

export const dataOption = { type: 'string', default: './data', description: 'Folder holding the hub database (with --store sqlite)' } as const;
/** The hub's own `--store`: the admin commands work on whichever database the hub uses. */
export const storeOption = hubOptions.store;
export const jsonOption = { type: 'bool', default: false, description: 'Print JSON' } as const;

export const usersAddOptions = {
  data: dataOption,
  store: storeOption,
  email: { type: 'string', required: true, description: 'Login email (devices reporting this email belong to this user)' },
  password: { type: 'string', required: true, description: 'Password (at least 8 characters)' },
} as const satisfies OptionTable;

export const devicesAddOptions = {
  data: dataOption,
  store: storeOption,
  name: { type: 'string', required: true, description: 'Device name' },
  email: { type: 'string', description: "Owner's email (otherwise taken from the device's GET /device)" },
  id: { type: 'string', description: 'Device id to use (default: a new random id)' },
  json: jsonOption,
} as const satisfies OptionTable;

/** The options of a command that reads, or names one record: the database folder and --json. */
export const dataJsonOptions = {
  data: dataOption,
  store: storeOption,
  json: jsonOption,
} as const satisfies OptionTable;

/** Runs `fn` on the hub's store (src/backends.ts picks it from --store and --data, as for the hub), closed afterwards. */
export async function withStore<T>(where: StoreLocation, fn: (s: Store) => Promise<T>): Promise<T> {
  const backend = await openStoreBackend(where);
  try {
    return await fn(backend.store);
  } finally {
    await backend.close();
  }
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export async function usersAdd(argv: string[], out: (s: string) => void): Promise<void> {
  const { config } = loadConfig(usersAddOptions, { argv });
  const email = config.email.trim().toLowerCase();
  const emailWrong = emailProblem(email);
  if (emailWrong) throw new UsageError(emailWrong);
  if (config.password.length < 8) throw new UsageError('the password needs at least 8 characters');
  const passwordHash = await hashPassword(config.password);
  await withStore(config, async (s) => {
    try {
      const u = await s.createUser({ id: newId('u_'), email, passwordHash });
      out(`user ${u.email} added (${u.id})`);
    } catch (err) {
      if (err instanceof DuplicateError) throw new UsageError(`a user with email ${email} already exists`);
      throw err;
    }
  });
}

export async function usersList(argv: string[], out: (s: string) => void): Promise<void> {
  const { config } = loadConfig(dataJsonOptions, { argv });
  await withStore(config, async (s) => {
    const users = await s.listUsers();
    if (config.json) out(JSON.stringify(users.map((u) => ({ id: u.id, email: u.email, createdAt: new Date(u.createdAt).toISOString() }))));
    else for (const u of users) out(`${u.id}  ${u.email}`);
  });
}

export async function devicesAdd(argv: string[], out: (s: string) => void): Promise<void> {
  const { config } = loadConfig(devicesAddOptions, { argv });
  const id = config.id ?? newId('d_');
  const problem = deviceIdProblem(id) ?? deviceNameProblem(config.name);
  if (problem) throw new UsageError(problem);
  const email = config.email?.trim().toLowerCase() ?? null;
  const emailWrong = email === null ? null : emailProblem(email);
  if (emailWrong) throw new UsageError(emailWrong);
  const secret = newSecret();
  await withStore(config, async (s) => {
    try {
      await s.createDevice({ id, name: config.name, email, secretHash: sha256Hex(secret) });
    } catch (err) {
      if (err instanceof DuplicateError) throw new UsageError(`a device with id ${id} already exists`);
      throw err;
    }
  });
  if (config.json) out(JSON.stringify({ id, secret, name: config.name, email }));
  else {
    out(`device added: ${config.name}`);
    out(`  id:     ${id}`);
    out(`  secret: ${secret}   (shown once; the hub keeps only its hash)`);
  }
}

export async function devicesList(argv: string[], out: (s: string) => void): Promise<void> {
  const { config } = loadConfig(dataJsonOptions, { argv });
  await withStore(config, async (s) => {
    const devices = await s.listDevices();
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    const rows = devices.map((d) => ({ id: d.id, name: d.name, email: d.email, lastSeen: iso(d.lastSeenAt), factoryKeyId: d.factoryKeyId, revokedAt: iso(d.revokedAt) }));
    if (config.json) out(JSON.stringify(rows));
    else for (const r of rows) out(`${r.id}  ${r.name}  ${r.email ?? '-'}  last seen ${r.lastSeen ?? 'never'}${r.revokedAt ? `  REVOKED ${r.revokedAt}` : ''}`);
  });
}

export const adminHelp = {
  'users add': () => helpText('cloudrest users add --email E --password P [--data DIR] [--store URL]', usersAddOptions),
  'users list': () => helpText('cloudrest users list [--data DIR] [--store URL] [--json]', dataJsonOptions),
  'devices add': () => helpText('cloudrest devices add --name N [--email E] [--id ID] [--data DIR] [--store URL] [--json]', devicesAddOptions),
  'devices list': () => helpText('cloudrest devices list [--data DIR] [--store URL] [--json]', dataJsonOptions),
};
