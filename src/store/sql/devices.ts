/**
 * SqlStore's device registry (table `devices`), on the store's one Kysely instance. A device's
 * report at connect also decides its claims (table `device_claims`, device-claims.ts), in one
 * transaction with the users it names.
 */
import type { Kysely, Selectable } from 'kysely';
import { DuplicateError, type DeviceRecord, type NewDevice, type Store } from '../store.js';
import type { SqlDialect } from './dialect.js';
import { insertOrDuplicate } from './duplicate.js';
import { normalizeEmail } from './email.js';
import type { DeviceClaimsTable, DevicesTable, UsersTable } from './tables.js';

function parseInfo(text: string | null): Record<string, unknown> | null {
  if (text === null) return null;
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function toDevice(row: Selectable<DevicesTable>): DeviceRecord {
  return {
    id: row.id,
    name: row.name,
    email: row.email,
    secretHash: row.secret_hash,
    info: parseInfo(row.info),
    createdAt: row.created_at,
    lastSeenAt: row.last_seen_at,
    factoryKeyId: row.factory_key_id,
    revokedAt: row.revoked_at,
  };
}

/** The row a new device becomes. */
function deviceRow(device: NewDevice, now: number): Selectable<DevicesTable> {
  const email = device.email === null ? '' : normalizeEmail(device.email);
  return {
    id: device.id,
    name: device.name,
    email: email === '' ? null : email,
    secret_hash: device.secretHash,
    info: null,
    created_at: now,
    last_seen_at: null,
    factory_key_id: device.factoryKeyId ?? null,
    revoked_at: null,
  };
}

type DeviceMethods = 'createDevice' | 'createDevices' | 'setDeviceRevoked' | 'getDevice' | 'listDevices' | 'listDevicesByEmail'
  | 'updateDeviceInfo' | 'touchDevice' | 'deleteDevice';

type Tables = { devices: DevicesTable; users: UsersTable; device_claims: DeviceClaimsTable };

export class SqlDevices implements Pick<Store, DeviceMethods> {
  readonly #db: Kysely<Tables>;

  readonly #dialect: SqlDialect;

  constructor(db: Kysely<Tables>, dialect: SqlDialect) {
    this.#db = db;
    this.#dialect = dialect;
  }

  async createDevice(device: NewDevice): Promise<DeviceRecord> {
    const row = deviceRow(device, Date.now());
    await insertOrDuplicate(this.#dialect, `Device ${row.id}`, () => this.#db.insertInto('devices').values(row).execute());
    return toDevice(row);
  }

  async createDevices(devices: readonly NewDevice[]): Promise<DeviceRecord[]> {
    const now = Date.now();
    const rows = devices.map((d) => deviceRow(d, now));
    await this.#dialect.transaction(this.#db, async (trx) => {
      for (const row of rows) {
        try {
          await trx.insertInto('devices').values(row).execute();
        } catch (err) {
          // Thrown out of the transaction callback, so Kysely rolls every insert back.
          if (this.#dialect.isUniqueViolation(err)) throw new DuplicateError(`Device ${row.id} already exists`, { cause: err, key: row.id });
          throw err;
        }
      }
    });
    return rows.map(toDevice);
  }

  async setDeviceRevoked(id: string, revokedAt: number | null): Promise<boolean> {
    const result = await this.#db.updateTable('devices').set({ revoked_at: revokedAt }).where('id', '=', id).executeTakeFirst();
    return result.numUpdatedRows > 0n;
  }

  async getDevice(id: string): Promise<DeviceRecord | undefined> {
    const row = await this.#db.selectFrom('devices').selectAll().where('id', '=', id).executeTakeFirst();
    return row && toDevice(row);
  }

  async listDevices(): Promise<DeviceRecord[]> {
    const rows = await this.#db.selectFrom('devices').selectAll().orderBy('created_at').orderBy('id').execute();
    return rows.map(toDevice);
  }

  async listDevicesByEmail(email: string): Promise<DeviceRecord[]> {
    const normalized = normalizeEmail(email);
    if (normalized === '') return [];
    const rows = await this.#db
      .selectFrom('devices')
      .selectAll()
      .where('email', '=', normalized)
      .orderBy('created_at')
      .orderBy('id')
      .execute();
    return rows.map(toDevice);
  }

  async updateDeviceInfo(id: string, info: Record<string, unknown>, seenAt: number): Promise<void> {
    const reported = typeof info['email'] === 'string' ? normalizeEmail(info['email']) : '';
    await this.#dialect.transaction(this.#db, async (trx) => {
      const row = await trx.selectFrom('devices').select('email').where('id', '=', id).executeTakeFirst();
      if (!row) return;
      const isUser = async (email: string | null) =>
        email !== null && (await trx.selectFrom('users').select('id').where('email', '=', email).executeTakeFirst()) !== undefined;
      let owner = row.email;
      let claim = false;
      if (reported !== '' && reported !== owner) {
        const reportedIsUser = await isUser(reported);
        const ownerIsUser = await isUser(owner);
        // Issue 12: the device may name an address nobody has (its confirmation gives the device to
        // whoever proves the mailbox), but joining an account, or leaving one, waits for a yes.
        if (!ownerIsUser) owner = reportedIsUser ? null : reported;
        claim = reportedIsUser || ownerIsUser;
      }
      await trx.updateTable('devices').set({ info: JSON.stringify(info), last_seen_at: seenAt, email: owner }).where('id', '=', id).execute();
      if (!claim) {
        await trx.deleteFrom('device_claims').where('device_id', '=', id).execute();
        return;
      }
      const existing = await trx.selectFrom('device_claims').select('email').where('device_id', '=', id).executeTakeFirst();
      if (existing?.email === reported) return; // the same claim: kept, declined or not
      await trx.deleteFrom('device_claims').where('device_id', '=', id).execute();
      await trx.insertInto('device_claims').values({ device_id: id, email: reported, created_at: seenAt, declined_at: null }).execute();
    });
  }

  async touchDevice(id: string, seenAt: number): Promise<void> {
    await this.#db.updateTable('devices').set({ last_seen_at: seenAt }).where('id', '=', id).execute();
  }

  async deleteDevice(id: string): Promise<boolean> {
    // One transaction: a report of the device racing the delete must not leave its claim behind.
    return this.#dialect.transaction(this.#db, async (trx) => {
      await trx.deleteFrom('device_claims').where('device_id', '=', id).execute();
      const result = await trx.deleteFrom('devices').where('id', '=', id).executeTakeFirst();
      return result.numDeletedRows > 0n;
    });
  }
}
