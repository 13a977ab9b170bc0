/**
 * Retained messages every node reads from PostgreSQL (issue 14, src/store/postgres/postgres-retained.ts):
 * an index on `topic collate "C"` for filter prefixes (LIKE) and keyset pages in byte order, one on
 * expiry, and what the retained quotas count, per owner and in all, kept by a trigger on every row
 * written, so any writer (the broker, `cloudrest copy-store`) leaves the counts right. Retained writes
 * take the totals row's lock first (the trigger and PostgresRetained alike): they run one at a time
 * across the nodes, which is what makes the quotas exact, and they never deadlock on the counters.
 * Nothing on SQLite: a single process counts in memory.
 */
import { PostgresAdapter, sql } from 'kysely';
import type { Kysely, Migration } from 'kysely';

export const m0010MqttRetainedShared: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
    // Rows stored before 0008 have no charge: estimated as topic + payload + properties, as retainedIndex did.
    await sql`update mqtt_retained set owner = coalesce(owner, ''), bytes = coalesce(bytes, octet_length(topic) + length(payload) + coalesce(octet_length(properties), 0)) where owner is null or bytes is null`.execute(db);
    await sql`create table mqtt_retained_usage (owner text primary key, count bigint not null, bytes bigint not null)`.execute(db);
    await sql`create table mqtt_retained_totals (id integer primary key check (id = 1), count bigint not null, bytes bigint not null)`.execute(db);
    await sql`insert into mqtt_retained_usage select owner, count(*), sum(bytes) from mqtt_retained group by owner`.execute(db);
    await sql`insert into mqtt_retained_totals select 1, count(*), coalesce(sum(bytes), 0) from mqtt_retained`.execute(db);
    await sql`create index mqtt_retained_topic_c on mqtt_retained (topic collate "C")`.execute(db);
    await sql`create index mqtt_retained_expires on mqtt_retained (expires_at) where expires_at is not null`.execute(db);
    await sql.raw(`create function mqtt_retained_count() returns trigger language plpgsql as $$
begin
  -- The totals row first, always: every retained write locks it before any owner's row.
  if tg_op = 'UPDATE' then
    update mqtt_retained_totals set bytes = bytes - coalesce(old.bytes, 0) + coalesce(new.bytes, 0) where id = 1;
  elsif tg_op = 'DELETE' then
    update mqtt_retained_totals set count = count - 1, bytes = bytes - coalesce(old.bytes, 0) where id = 1;
  else
    update mqtt_retained_totals set count = count + 1, bytes = bytes + coalesce(new.bytes, 0) where id = 1;
  end if;
  if tg_op in ('UPDATE', 'DELETE') then
    update mqtt_retained_usage set count = count - 1, bytes = bytes - coalesce(old.bytes, 0) where owner = coalesce(old.owner, '');
    delete from mqtt_retained_usage where owner = coalesce(old.owner, '') and count <= 0;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    insert into mqtt_retained_usage values (coalesce(new.owner, ''), 1, coalesce(new.bytes, 0))
      on conflict (owner) do update set count = mqtt_retained_usage.count + 1, bytes = mqtt_retained_usage.bytes + excluded.bytes;
  end if;
  return null;
end $$`).execute(db);
    await sql`create trigger mqtt_retained_count after insert or update or delete on mqtt_retained for each row execute function mqtt_retained_count()`.execute(db);
  },

  async down(db: Kysely<unknown>): Promise<void> {
    if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
    await sql`drop trigger mqtt_retained_count on mqtt_retained`.execute(db);
    await sql`drop function mqtt_retained_count()`.execute(db);
    await sql`drop index mqtt_retained_expires`.execute(db);
    await sql`drop index mqtt_retained_topic_c`.execute(db);
    await sql`drop table mqtt_retained_totals`.execute(db);
    await sql`drop table mqtt_retained_usage`.execute(db);
  },
};
