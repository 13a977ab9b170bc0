/**
 * `cloudrest factory-keys add|list|revoke|rotate`: the keys factories use with POST /v1/factory/devices
 * (seed 002 "Device Factory Provisioning"). A key is printed once; the database keeps its SHA-256.
 * Revoking or rotating a key leaves the devices it provisioned as they are.
 */
import { newId, sha256Hex } from '../core/secrets.js';
import { loadConfig, helpText } from '../config/load.js';
import type { OptionTable } from '../config/option.js';
import { newDerivationKey, newFactoryKey } from '../factory/factory-key.js';
import type { FactoryKeyRecord } from '../store/store.js';
import { dataJsonOptions, dataOption, storeOption, jsonOption, UsageError, withStore } from './admin.js';

export const factoryKeysAddOptions = {
  data: dataOption,
  store: storeOption,
  name: { type: 'string', default: 'factory', description: 'What the key is for (a plant, a production line)' },
  json: jsonOption,
} as const satisfies OptionTable;


const MAX_NAME_CHARS = 128;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** The one positional argument a command takes (an id). */
export function oneArgument(positionals: string[], what: string, usage: string): string {
  if (positionals.length !== 1 || positionals[0] === '') throw new UsageError(`expected one ${what}\nUsage: ${usage}`);
  return positionals[0]!;
}

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());

function printKey(out: (s: string) => void, json: boolean, k: FactoryKeyRecord, key: string, what: string): void {
  if (json) return out(JSON.stringify({ id: k.id, name: k.name, key }));
  out(`factory key ${what}: ${k.name}`);
  out(`  id:  ${k.id}`);
  out(`  key: ${key}   (shown once; the hub keeps only its hash)`);
  out(`use it at the factory: CLOUDREST_FACTORY_KEY=${key} cloudrest agent provision --factory https://<hub> --id-file F --out DIR`);
}

export async function factoryKeysAdd(argv: string[], out: (s: string) => void): Promise<void> {
  const { config, positionals } = loadConfig(factoryKeysAddOptions, { argv });
  if (positionals.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`);
  const name = config.name.trim();
  if (name === '' || name.length > MAX_NAME_CHARS || CONTROL.test(name)) throw new UsageError(`--name: 1-${MAX_NAME_CHARS} characters, no control characters`);
  const key = newFactoryKey();
  const rec = await withStore(config, (s) => s.createFactoryKey({ id: newId('fk_'), name, keyHash: sha256Hex(key), derivationKey: newDerivationKey() }));
  printKey(out, config.json, rec, key, 'added');
}

export async function factoryKeysList(argv: string[], out: (s: string) => void): Promise<void> {
  const { config } = loadConfig(dataJsonOptions, { argv });
  await withStore(config, async (s) => {
    const keys = await s.listFactoryKeys();
    const counts = new Map<string, number>();
    for (const d of await s.listDevices()) if (d.factoryKeyId !== null) counts.set(d.factoryKeyId, (counts.get(d.factoryKeyId) ?? 0) + 1);
    const rows = keys.map((k) => ({ id: k.id, name: k.name, createdAt: iso(k.createdAt), rotatedAt: iso(k.rotatedAt), revokedAt: iso(k.revokedAt), devices: counts.get(k.id) ?? 0 }));
    if (config.json) return out(JSON.stringify(rows));
    for (const r of rows) {
      const state = r.revokedAt ? `REVOKED ${r.revokedAt}` : r.rotatedAt ? `rotated ${r.rotatedAt}` : 'active';
      out(`${r.id}  ${r.name}  created ${r.createdAt!}  ${state}  ${r.devices} device${r.devices === 1 ? '' : 's'}`);
    }
  });
}

export async function factoryKeysRevoke(argv: string[], out: (s: string) => void): Promise<void> {
  const { config, positionals } = loadConfig(dataJsonOptions, { argv });
  const id = oneArgument(positionals, 'factory key id', 'cloudrest factory-keys revoke ID [--data DIR] [--store URL]');
  const rec = await withStore(config, async (s) => ((await s.revokeFactoryKey(id, Date.now())) ? s.getFactoryKey(id) : undefined));
  if (rec === undefined) throw new UsageError(`no factory key ${id}`);
  if (config.json) return out(JSON.stringify({ id, revokedAt: iso(rec.revokedAt) }));
  out(`factory key ${id} revoked (${iso(rec.revokedAt)!}); it can provision nothing more, and the devices it provisioned keep working`);
}

export async function factoryKeysRotate(argv: string[], out: (s: string) => void): Promise<void> {
  const { config, positionals } = loadConfig(dataJsonOptions, { argv });
  const id = oneArgument(positionals, 'factory key id', 'cloudrest factory-keys rotate ID [--data DIR] [--store URL]');
  const key = newFactoryKey();
  const rec = await withStore(config, async (s) => {
    const k = await s.getFactoryKey(id);
    if (k === undefined) throw new UsageError(`no factory key ${id}`);
    if (k.revokedAt !== null) throw new UsageError(`factory key ${id} is revoked; add a new one instead`);
    if (!(await s.rotateFactoryKey(id, sha256Hex(key), Date.now()))) throw new UsageError(`factory key ${id} was revoked meanwhile`);
    return k;
  });
  printKey(out, config.json, rec, key, 'rotated (the old key no longer works; devices it provisioned stay)');
}

export const factoryKeysHelp = {
  add: () => helpText('cloudrest factory-keys add [--name N] [--data DIR] [--store URL] [--json]', factoryKeysAddOptions),
  list: () => helpText('cloudrest factory-keys list [--data DIR] [--store URL] [--json]', dataJsonOptions),
  revoke: () => helpText('cloudrest factory-keys revoke ID [--data DIR] [--store URL] [--json]', dataJsonOptions),
  rotate: () => helpText('cloudrest factory-keys rotate ID [--data DIR] [--store URL] [--json]', dataJsonOptions),
};
