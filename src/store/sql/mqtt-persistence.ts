/**
 * The MqttPersistence on an SQL database: the broker's tables (migration 0002_mqtt) in the hub's
 * database, through the store's Kysely instance. SqliteMqttPersistence and PostgresMqttPersistence
 * extend it with how each opens its database and hands out queue seqs (MqttSqlDialect).
 *
 * Operations run one at a time in call order, through a promise chain rather than Kysely's connection
 * mutex: that mutex wakes every waiter at each release, so 10,000 concurrent calls (a QoS 1 fan-out) ran
 * at ~1,400/s. Call order also means an enqueue made before deleteSession() is deleted by it and one made
 * after survives, awaited or not. Enqueues made while earlier operations run share one INSERT. On
 * PostgreSQL the order is per instance (per node); other nodes' instances run beside it, and queue seqs
 * come from the database so theirs never clash.
 */
import { CompiledQuery } from 'kysely';
import type { Kysely, Selectable } from 'kysely';
import type { EnqueuedMessage, MqttPersistence, QueuedMessage, RetainedRecord, StoredMessage, StoredSession, StoredSubscription } from '../../mqtt/persistence.js';

// Row types of migration 0002_mqtt. Booleans are 0/1; JSON columns are text.
interface MqttTables {
  mqtt_sessions: {
    client_id: string; owner: string; protocol_version: number; expiry_interval_s: number;
    disconnected_at: number | null; subscriptions: string;
  };
  mqtt_queue: {
    client_id: string; seq: number; topic: string; payload: Buffer; qos: number; retain: number;
    properties: string | null; expires_at: number | null; packet_id: number | null; released: number; subscription_ids: string | null;
    // migration 0011_mqtt_queue_share_group
    share_group: string | null;
  };
  mqtt_incoming_qos2: { client_id: string; packet_id: number };
  // owner and bytes: migration 0008_mqtt_retained_owner; null in rows stored before it.
  mqtt_retained: { topic: string; payload: Buffer; qos: number; properties: string | null; expires_at: number | null; owner: string | null; bytes: number | null };
}
type Row<T extends keyof MqttTables> = Selectable<MqttTables[T]>;

/** A session's expiry interval meaning "never" (MQTT 5 §3.1.2.11.2). */
const NEVER_EXPIRES_S = 0xffffffff;

const QUEUE_COLUMNS = 'client_id, seq, topic, payload, qos, retain, properties, expires_at, packet_id, released, subscription_ids, share_group';
/** Parameters of a queue row but its seq; a new message is neither in flight nor released. */
const QUEUE_ROW_PARAMS = 9;
/** Rows per INSERT, well below SQLite's limit of 32,766 parameters a statement (PostgreSQL's: 65,535). */
const INSERT_CHUNK_ROWS = 1000;

/** What differs between the databases the broker's tables live in. */
export interface MqttSqlDialect {
  /**
   * `n` queue seqs, ascending, that no instance on this database has handed out or will: with several
   * hub nodes on one database, a sequence in it, not a counter in the process.
   */
  nextSeqs(db: Kysely<unknown>, n: number): Promise<number[]>;
  /** The `i`th (from 1) bound parameter of a raw statement: `?` or `$i`. */
  placeholder(i: number): string;
  /** SQL for the bytes of a text column (`length(cast(x as blob))`, `octet_length(x)`). */
  textBytes(column: string): string;
}

/** Enqueued rows waiting for their INSERT, as one flat parameter list without seqs; `seqs` settles when it has run. */
interface EnqueueBatch {
  params: unknown[];
  seqs: Promise<number[]>;
}

/** Key of the object a Buffer becomes in JSON text; user properties are strings, so it cannot clash. */
const BUFFER_KEY = '$base64';

/** JSON text for properties, with Buffers (correlation data) as `{ "$base64": "..." }`. */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, function (this: Record<string, unknown>, key, v: unknown) {
    // Buffer#toJSON has already run on `v`; the holder still has the Buffer itself.
    const raw = this[key];
    return Buffer.isBuffer(raw) ? { [BUFFER_KEY]: raw.toString('base64') } : v;
  });
}

export function decodeJson(text: string): unknown {
  return JSON.parse(text, (_key, v: unknown) => {
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
      const encoded = (v as Record<string, unknown>)[BUFFER_KEY];
      if (typeof encoded === 'string' && Object.keys(v).length === 1) return Buffer.from(encoded, 'base64');
    }
    return v;
  });
}

function toSession(row: Row<'mqtt_sessions'>): StoredSession {
  const { client_id: clientId, owner, expiry_interval_s: expiryIntervalS, disconnected_at: disconnectedAt } = row;
  const protocolVersion = row.protocol_version as StoredSession['protocolVersion'];
  return { clientId, owner, protocolVersion, expiryIntervalS, disconnectedAt, subscriptions: JSON.parse(row.subscriptions) as StoredSubscription[] };
}

/** The optional fields of a message, present only when set. */
function withOptional<T extends StoredMessage>(message: T, properties: string | null, expiresAt: number | null): T {
  if (properties !== null) message.properties = decodeJson(properties) as Record<string, unknown>;
  if (expiresAt !== null) message.expiresAt = expiresAt;
  return message;
}

function toQueued(row: Row<'mqtt_queue'>): QueuedMessage {
  const { seq, topic, payload } = row;
  const message: QueuedMessage = { seq, topic, payload, qos: row.qos as QueuedMessage['qos'], retain: row.retain === 1, released: row.released === 1 };
  if (row.packet_id !== null) message.packetId = row.packet_id;
  if (row.subscription_ids !== null) message.subscriptionIds = JSON.parse(row.subscription_ids) as number[];
  if (row.share_group !== null) message.shareGroup = row.share_group;
  return withOptional(message, row.properties, row.expires_at);
}

function toRetained(row: Row<'mqtt_retained'>): StoredMessage {
  const message: StoredMessage = { topic: row.topic, payload: row.payload, qos: row.qos as StoredMessage['qos'], retain: true };
  return withOptional(message, row.properties, row.expires_at);
}

export class SqlMqttPersistence implements MqttPersistence {
  readonly #db: Kysely<MqttTables>;
  readonly #dialect: MqttSqlDialect;
  readonly #onClose: () => Promise<void>;
  /** Settles when every operation called so far has. */
  #tail: Promise<unknown> = Promise.resolve();
  /** The enqueue batch queued behind running operations, which later enqueues join until it starts. */
  #openBatch: EnqueueBatch | undefined;

  /** On a database someone migrated; `onClose` runs at close() (closing the database if this instance opened it). */
  protected constructor(db: Kysely<unknown>, dialect: MqttSqlDialect, onClose: () => Promise<void>) {
    this.#db = db as Kysely<MqttTables>;
    this.#dialect = dialect;
    this.#onClose = onClose;
  }

  /** Runs `op` after every operation called before it; a failure rejects only its own caller(s). */
  #serial<T>(op: (db: Kysely<MqttTables>) => Promise<T>): Promise<T> {
    this.#openBatch = undefined; // enqueues called after this operation must run after it
    const result = this.#tail.then(() => op(this.#db));
    this.#tail = result.catch(() => undefined);
    return result;
  }

  // Sessions

  getSession(clientId: string): Promise<StoredSession | undefined> {
    return this.#serial(async (db) => {
      const row = await db.selectFrom('mqtt_sessions').selectAll().where('client_id', '=', clientId).executeTakeFirst();
      return row && toSession(row);
    });
  }

  async saveSession(session: StoredSession): Promise<void> {
    const { clientId: client_id, owner, protocolVersion: protocol_version, expiryIntervalS: expiry_interval_s } = session;
    const subscriptions = JSON.stringify(session.subscriptions);
    const row = { client_id, owner, protocol_version, expiry_interval_s, disconnected_at: session.disconnectedAt, subscriptions };
    const { client_id: _key, ...changes } = row;
    await this.#serial((db) =>
      db.insertInto('mqtt_sessions').values(row).onConflict((oc) => oc.column('client_id').doUpdateSet(changes)).execute(),
    );
  }

  async deleteSession(clientId: string): Promise<void> {
    await this.#serial((db) =>
      db.transaction().execute(async (trx) => {
        await trx.deleteFrom('mqtt_queue').where('client_id', '=', clientId).execute();
        await trx.deleteFrom('mqtt_incoming_qos2').where('client_id', '=', clientId).execute();
        await trx.deleteFrom('mqtt_sessions').where('client_id', '=', clientId).execute();
      }),
    );
  }

  async sessionOwners(): Promise<Array<{ clientId: string; owner: string }>> {
    const rows = await this.#serial((db) => db.selectFrom('mqtt_sessions').select(['client_id', 'owner']).execute());
    return rows.map((r) => ({ clientId: r.client_id, owner: r.owner }));
  }

  /** Expired once `disconnectedAt + expiryIntervalS` is reached; interval 0 ends the session at disconnect. */
  async expiredSessions(now: number): Promise<string[]> {
    const rows = await this.#serial((db) =>
      db.selectFrom('mqtt_sessions').select('client_id')
        .where('disconnected_at', 'is not', null)
        .where('expiry_interval_s', '<>', NEVER_EXPIRES_S)
        .where((eb) => eb(eb('disconnected_at', '+', eb('expiry_interval_s', '*', 1000)), '<=', now))
        .execute(),
    );
    return rows.map((r) => r.client_id);
  }

  // Queue

  async enqueue(clientId: string, messages: EnqueuedMessage[]): Promise<number[]> {
    if (messages.length === 0) return [];
    const params = messages.flatMap((m) => [
      clientId, m.topic, m.payload, m.qos, m.retain ? 1 : 0,
      m.properties === undefined ? null : encodeJson(m.properties),
      m.expiresAt ?? null,
      m.subscriptionIds === undefined ? null : JSON.stringify(m.subscriptionIds),
      m.shareGroup ?? null,
    ]);
    let batch = this.#openBatch;
    if (batch === undefined) {
      const created: EnqueueBatch = { params: [], seqs: Promise.resolve([]) };
      created.seqs = this.#serial(() => {
        if (this.#openBatch === created) this.#openBatch = undefined;
        return this.#insert(created.params);
      });
      this.#openBatch = batch = created;
    }
    // Shared with the enqueues batched with this one: if the INSERT fails, none of them is stored.
    const offset = batch.params.length / QUEUE_ROW_PARAMS;
    for (const p of params) batch.params.push(p);
    // The batch's rows are in call order and take ascending seqs, so seqs follow call order too.
    return (await batch.seqs).slice(offset, offset + messages.length);
  }

  /** Inserts the rows with new seqs, which it returns. One statement is atomic on its own; a transaction only when the rows need several. */
  async #insert(params: unknown[]): Promise<number[]> {
    const rows = params.length / QUEUE_ROW_PARAMS;
    const seqs = await this.#dialect.nextSeqs(this.#db as Kysely<unknown>, rows);
    const statements: CompiledQuery[] = [];
    for (let start = 0; start < rows; start += INSERT_CHUNK_ROWS) {
      const end = Math.min(rows, start + INSERT_CHUNK_ROWS);
      const chunk: unknown[] = [];
      const values: string[] = [];
      for (let r = start; r < end; r++) {
        const at = r * QUEUE_ROW_PARAMS;
        chunk.push(params[at], seqs[r]);
        for (let k = 1; k < QUEUE_ROW_PARAMS; k++) chunk.push(params[at + k]);
        const p = (k: number) => this.#dialect.placeholder(chunk.length - QUEUE_ROW_PARAMS - 1 + k);
        values.push(`(${p(1)}, ${p(2)}, ${p(3)}, ${p(4)}, ${p(5)}, ${p(6)}, ${p(7)}, ${p(8)}, null, 0, ${p(9)}, ${p(10)})`);
      }
      statements.push(CompiledQuery.raw(`insert into mqtt_queue (${QUEUE_COLUMNS}) values ${values.join(', ')}`, chunk));
    }
    if (statements.length === 1) {
      await this.#db.executeQuery(statements[0]!);
      return seqs;
    }
    await this.#db.transaction().execute(async (trx) => {
      for (const statement of statements) await trx.executeQuery(statement);
    });
    return seqs;
  }

  async queued(clientId: string, limit: number): Promise<QueuedMessage[]> {
    if (!(limit > 0)) return [];
    const rows = await this.#serial((db) => {
      const query = db
        .selectFrom('mqtt_queue')
        .selectAll()
        .where('client_id', '=', clientId)
        // In flight (packet id assigned) first: they are resent before anything new ([MQTT-4.4.0-1]).
        .orderBy((eb) => eb('packet_id', 'is', null))
        .orderBy('seq');
      return (Number.isFinite(limit) ? query.limit(Math.floor(limit)) : query).execute();
    });
    return rows.map(toQueued);
  }

  async updateQueued(clientId: string, seq: number, change: { packetId?: number; released?: boolean }): Promise<void> {
    const set: { packet_id?: number; released?: number } = {};
    if (change.packetId !== undefined) set.packet_id = change.packetId;
    if (change.released !== undefined) set.released = change.released ? 1 : 0;
    if (Object.keys(set).length === 0) return;
    await this.#serial((db) =>
      db.updateTable('mqtt_queue').set(set).where('client_id', '=', clientId).where('seq', '=', seq).execute(),
    );
  }

  async removeQueued(clientId: string, seq: number): Promise<void> {
    await this.#serial((db) => db.deleteFrom('mqtt_queue').where('client_id', '=', clientId).where('seq', '=', seq).execute());
  }

  async countQueued(clientId: string): Promise<number> {
    const count = (db: Kysely<MqttTables>) => db.selectFrom('mqtt_queue').select((eb) => eb.fn.countAll<number>().as('n'));
    const row = await this.#serial((db) => count(db).where('client_id', '=', clientId).executeTakeFirstOrThrow());
    return Number(row.n);
  }

  // Incoming QoS 2

  async addIncomingQos2(clientId: string, packetId: number): Promise<void> {
    const row = { client_id: clientId, packet_id: packetId };
    await this.#serial((db) => db.insertInto('mqtt_incoming_qos2').values(row).onConflict((oc) => oc.doNothing()).execute());
  }

  async removeIncomingQos2(clientId: string, packetId: number): Promise<void> {
    await this.#serial((db) =>
      db.deleteFrom('mqtt_incoming_qos2').where('client_id', '=', clientId).where('packet_id', '=', packetId).execute(),
    );
  }

  async incomingQos2(clientId: string): Promise<number[]> {
    const rows = await this.#serial((db) =>
      db.selectFrom('mqtt_incoming_qos2').select('packet_id').where('client_id', '=', clientId).orderBy('packet_id').execute(),
    );
    return rows.map((r) => r.packet_id);
  }

  // Retained

  async setRetained(message: StoredMessage, charge: { owner: string; bytes: number } = { owner: '', bytes: 0 }): Promise<void> {
    // [MQTT-3.3.1-6/7]: a retained PUBLISH with an empty payload removes the topic's retained message.
    if (message.payload.length === 0) {
      await this.#serial((db) => db.deleteFrom('mqtt_retained').where('topic', '=', message.topic).execute());
      return;
    }
    const properties = message.properties === undefined ? null : encodeJson(message.properties);
    const row = { topic: message.topic, payload: message.payload, qos: message.qos, properties, expires_at: message.expiresAt ?? null, owner: charge.owner, bytes: charge.bytes };
    const { topic: _key, ...changes } = row;
    await this.#serial((db) =>
      db.insertInto('mqtt_retained').values(row).onConflict((oc) => oc.column('topic').doUpdateSet(changes)).execute(),
    );
  }

  async allRetained(): Promise<StoredMessage[]> {
    return (await this.#serial((db) => db.selectFrom('mqtt_retained').selectAll().execute())).map(toRetained);
  }

  async retainedIndex(inlineMaxBytes: number): Promise<RetainedRecord[]> {
    // Older rows have no charge: estimated as topic + payload + properties, in bytes.
    const d = this.#dialect;
    const bytes = `coalesce(bytes, ${d.textBytes('topic')} + length(payload) + coalesce(${d.textBytes('properties')}, 0))`;
    const rows = await this.#serial((db) =>
      db.executeQuery<{ topic: string; qos: number; expires_at: number | null; owner: string | null; bytes: number; payload: Buffer | null; properties: string | null }>(
        CompiledQuery.raw(
          `select topic, qos, expires_at, owner, ${bytes} as bytes, ` +
            `case when ${bytes} <= ${d.placeholder(1)} then payload end as payload, case when ${bytes} <= ${d.placeholder(2)} then properties end as properties from mqtt_retained`,
          [inlineMaxBytes, inlineMaxBytes],
        ),
      ),
    );
    return rows.rows.map((row) => {
      const r: RetainedRecord = { topic: row.topic, qos: row.qos as RetainedRecord['qos'], owner: row.owner ?? '', bytes: Number(row.bytes) };
      if (row.expires_at !== null) r.expiresAt = row.expires_at;
      if (row.payload !== null) {
        r.payload = row.payload;
        if (row.properties !== null) r.properties = decodeJson(row.properties) as Record<string, unknown>;
      }
      return r;
    });
  }

  async getRetained(topic: string): Promise<StoredMessage | undefined> {
    const row = await this.#serial((db) => db.selectFrom('mqtt_retained').selectAll().where('topic', '=', topic).executeTakeFirst());
    return row && toRetained(row);
  }

  /** Waits for the operations already called, then closes the database if this instance opened it. */
  async close(): Promise<void> {
    await this.#serial(() => this.#onClose());
  }
}
