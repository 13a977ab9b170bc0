/**
 * Retained messages read from PostgreSQL by every node (issue 14; the seam is src/mqtt/retained-source.ts).
 * Nothing is loaded at start and nothing kept in memory: a subscription's retained messages are the rows
 * its filter matches (retained-filter.ts), read in keyset pages in byte order as the caller asks for
 * them. A write takes the lock on `mqtt_retained_totals` first, checks the quotas against the counts
 * the trigger of migration 0010 keeps, and writes in the same transaction: the quotas hold across the
 * nodes exactly, at the cost of retained writes running one at a time (they are rare; live messages
 * are not touched by this).
 */
import { sql, type Kysely, type Transaction } from 'kysely';
import { fromStored, type Message } from '../../mqtt/message.js';
import type { StoredMessage } from '../../mqtt/persistence.js';
import type { RetainedSource } from '../../mqtt/retained-source.js';
import { quotaExceeded, type RetainedQuotas, type Tally } from '../../mqtt/retained-usage.js';
import { decodeJson, encodeJson } from '../sql/mqtt-persistence.js';
import { filterCondition } from './retained-filter.js';

/** Rows per page of a match: payloads may be large, so a page is kept short. */
const PAGE_ROWS = 64;

interface RetainedRow {
  topic: string;
  payload: Buffer;
  qos: number;
  properties: string | null;
  expires_at: number | null;
}

function toMessage(row: RetainedRow): Message {
  const s: StoredMessage = { topic: row.topic, payload: row.payload, qos: row.qos as StoredMessage['qos'], retain: true };
  if (row.properties !== null) s.properties = decodeJson(row.properties) as Record<string, unknown>;
  if (row.expires_at !== null) s.expiresAt = Number(row.expires_at);
  return fromStored(s);
}

export class PostgresRetained implements RetainedSource {
  readonly inMemory = 0;
  count = 0;
  bytes = 0;
  readonly #db: Kysely<unknown>;
  readonly #quotas: RetainedQuotas;
  readonly #pageRows: number;

  /** On a database migrated to 0010 (the store's pool: int8 read as numbers). */
  constructor(db: Kysely<unknown>, quotas: RetainedQuotas, pageRows = PAGE_ROWS) {
    this.#db = db;
    this.#quotas = quotas;
    this.#pageRows = pageRows;
  }

  set(m: Message, owner: string, bytes: number, checked = true): Promise<string | null> {
    return this.#db.transaction().execute(async (trx) => {
      const totals = await this.#lockTotals(trx);
      if (m.payload.length === 0) {
        await sql`delete from mqtt_retained where topic = ${m.topic}`.execute(trx);
        await this.#readTotals(trx);
        return null;
      }
      const previous = (await sql<{ owner: string; bytes: number }>`select owner, bytes from mqtt_retained where topic = ${m.topic}`.execute(trx)).rows[0];
      const mine = (await sql<Tally>`select count, bytes from mqtt_retained_usage where owner = ${owner}`.execute(trx)).rows[0] ?? { count: 0, bytes: 0 };
      const why = !checked ? null : quotaExceeded(num(mine), totals, owner, bytes, previous && { owner: previous.owner, bytes: Number(previous.bytes) }, this.#quotas);
      if (why !== null) return why;
      const properties = m.properties === undefined ? null : encodeJson(m.properties);
      await sql`insert into mqtt_retained (topic, payload, qos, properties, expires_at, owner, bytes)
        values (${m.topic}, ${m.payload}, ${m.qos}, ${properties}, ${m.expiresAt ?? null}, ${owner}, ${bytes})
        on conflict (topic) do update set payload = excluded.payload, qos = excluded.qos, properties = excluded.properties,
          expires_at = excluded.expires_at, owner = excluded.owner, bytes = excluded.bytes`.execute(trx);
      await this.#readTotals(trx);
      return null;
    });
  }

  async *matching(filter: string, now: number): AsyncIterable<Message> {
    const c = filterCondition(filter);
    const regex = c.regex === undefined ? sql`` : sql`and topic ~ ${c.regex}`;
    // [MQTT-4.7.2-1]; `$` is not special in LIKE.
    const dollar = c.excludeDollar ? sql`and topic not like '$%'` : sql``;
    let after: string | undefined;
    for (;;) {
      const from = after === undefined ? sql`` : sql`and topic collate "C" > ${after}`;
      const { rows } = await sql<RetainedRow>`select topic, payload, qos, properties, expires_at from mqtt_retained
        where topic collate "C" like ${c.like} escape '\\' ${regex} ${dollar} and (expires_at is null or expires_at > ${now}) ${from}
        order by topic collate "C" limit ${this.#pageRows}`.execute(this.#db);
      for (const row of rows) yield toMessage(row);
      if (rows.length < this.#pageRows) return;
      after = rows[rows.length - 1]!.topic;
    }
  }

  async sweep(now: number): Promise<void> {
    await this.#db.transaction().execute(async (trx) => {
      await this.#lockTotals(trx);
      await sql`delete from mqtt_retained where expires_at is not null and expires_at <= ${now}`.execute(trx);
      await this.#readTotals(trx);
    });
  }

  /** Locks the totals row (every retained write takes it first: see migration 0010) and reads it. */
  async #lockTotals(trx: Transaction<unknown>): Promise<Tally> {
    const { rows } = await sql<Tally>`select count, bytes from mqtt_retained_totals where id = 1 for update`.execute(trx);
    return num(rows[0] ?? { count: 0, bytes: 0 });
  }

  async #readTotals(trx: Transaction<unknown>): Promise<void> {
    const { rows } = await sql<Tally>`select count, bytes from mqtt_retained_totals where id = 1`.execute(trx);
    const t = num(rows[0] ?? { count: 0, bytes: 0 });
    this.count = t.count;
    this.bytes = t.bytes;
  }
}

/** A tally with numbers (a pool without the int8 parser hands bigints over as strings). */
function num(t: Tally): Tally {
  return { count: Number(t.count), bytes: Number(t.bytes) };
}
