/**
 * SqlStore's pending device ownership (table `device_claims`, issue 12): claims are written by
 * SqlDevices.updateDeviceInfo from what a device reports; here they are listed, accepted (the one
 * transaction that gives a device a new owner outside the trusted paths) and declined. Their mailed
 * links are `email_confirmations` rows with purpose 'claim'.
 */
import type { Kysely, Selectable } from 'kysely';
import type { DeviceClaimRecord, DeviceRecord, Store } from '../store.js';
import type { SqlDialect } from './dialect.js';
import { toDevice } from './devices.js';
import { normalizeEmail } from './email.js';
import type { ConfirmationsTable, DeviceClaimsTable, DevicesTable } from './tables.js';

type Tables = { device_claims: DeviceClaimsTable; devices: DevicesTable; email_confirmations: ConfirmationsTable };

function toClaim(row: Selectable<DeviceClaimsTable>): DeviceClaimRecord {
  return { deviceId: row.device_id, email: row.email, createdAt: row.created_at, declinedAt: row.declined_at };
}

type ClaimMethods = 'getDeviceClaim' | 'listDeviceClaims' | 'acceptDeviceClaim' | 'declineDeviceClaim';

export class SqlDeviceClaims implements Pick<Store, ClaimMethods> {
  readonly #db: Kysely<Tables>;

  readonly #dialect: SqlDialect;

  constructor(db: Kysely<Tables>, dialect: SqlDialect) {
    this.#db = db;
    this.#dialect = dialect;
  }

  async getDeviceClaim(deviceId: string): Promise<DeviceClaimRecord | undefined> {
    const row = await this.#db.selectFrom('device_claims').selectAll().where('device_id', '=', deviceId).executeTakeFirst();
    return row && toClaim(row);
  }

  async listDeviceClaims(email: string): Promise<DeviceClaimRecord[]> {
    const rows = await this.#db
      .selectFrom('device_claims')
      .innerJoin('devices', 'devices.id', 'device_claims.device_id')
      .selectAll('device_claims')
      .where('device_claims.email', '=', normalizeEmail(email))
      .where('device_claims.declined_at', 'is', null)
      .orderBy('device_claims.created_at')
      .orderBy('device_claims.device_id')
      .execute();
    return rows.map(toClaim);
  }

  async acceptDeviceClaim(deviceId: string, email: string, now: number): Promise<DeviceRecord | undefined> {
    const e = normalizeEmail(email);
    return this.#dialect.transaction(this.#db, async (trx) => {
      const claim = await trx.selectFrom('device_claims').selectAll().where('device_id', '=', deviceId).executeTakeFirst();
      if (!claim || claim.email !== e || claim.declined_at !== null) return undefined;
      const moved = await trx.updateTable('devices').set({ email: e }).where('id', '=', deviceId).executeTakeFirst();
      if (moved.numUpdatedRows === 0n) return undefined;
      await trx.deleteFrom('device_claims').where('device_id', '=', deviceId).execute();
      await useLinks(trx, deviceId, now);
      const row = await trx.selectFrom('devices').selectAll().where('id', '=', deviceId).executeTakeFirstOrThrow();
      return toDevice(row);
    });
  }

  async declineDeviceClaim(deviceId: string, email: string, now: number): Promise<boolean> {
    return this.#dialect.transaction(this.#db, async (trx) => {
      const r = await trx
        .updateTable('device_claims')
        .set({ declined_at: now })
        .where('device_id', '=', deviceId)
        .where('email', '=', normalizeEmail(email))
        .where('declined_at', 'is', null)
        .executeTakeFirst();
      if (r.numUpdatedRows === 0n) return false;
      await useLinks(trx, deviceId, now);
      return true;
    });
  }
}

/** Every unused claim link of the device is spent: a decision, either way, is final. */
async function useLinks(trx: Kysely<Tables>, deviceId: string, now: number): Promise<void> {
  await trx.updateTable('email_confirmations').set({ used_at: now }).where('device_id', '=', deviceId).where('purpose', '=', 'claim').where('used_at', 'is', null).execute();
}
