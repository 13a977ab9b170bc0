/**
 * Retained messages every node reads from PostgreSQL (issue 14, src/store/postgres/postgres-retained.ts):
 * an index on `topic collate "C"` for filter prefixes (LIKE) and keyset pages in byte order, one on
 * expiry, and what the retained quotas count, per owner and in all, kept by statement triggers on every
 * write, so any writer (the broker, `cloudrest copy-store`) leaves the counts right. Retained writes
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
    // Per statement, from its transition tables: a bulk write (a sweep, copy-store) updates each counter once, not once per row.
    await sql.raw(`create function mqtt_retained_count() returns trigger language plpgsql as $$
begin
  -- The totals row first, always: every retained write locks it before any owner's row.
  if tg_op = 'INSERT' then
    update mqtt_retained_totals t set count = t.count + d.n, bytes = t.bytes + d.b
      from (select count(*) as n, coalesce(sum(bytes), 0) as b from new_rows) d where t.id = 1;
    insert into mqtt_retained_usage (owner, count, bytes)
      select coalesce(owner, ''), count(*), coalesce(sum(bytes), 0) from new_rows group by coalesce(owner, '')
      on conflict (owner) do update set count = mqtt_retained_usage.count + excluded.count, bytes = mqtt_retained_usage.bytes + excluded.bytes;
  elsif tg_op = 'DELETE' then
    update mqtt_retained_totals t set count = t.count - d.n, bytes = t.bytes - d.b
      from (select count(*) as n, coalesce(sum(bytes), 0) as b from old_rows) d where t.id = 1;
    update mqtt_retained_usage u set count = u.count - d.n, bytes = u.bytes - d.b
      from (select coalesce(owner, '') as owner, count(*) as n, coalesce(sum(bytes), 0) as b from old_rows group by 1) d where u.owner = d.owner;
  else
    update mqtt_retained_totals t set bytes = t.bytes + d.b
      from (select (select coalesce(sum(bytes), 0) from new_rows) - (select coalesce(sum(bytes), 0) from old_rows) as b) d where t.id = 1;
    update mqtt_retained_usage u set count = u.count - d.n, bytes = u.bytes - d.b
      from (select coalesce(owner, '') as owner, count(*) as n, coalesce(sum(bytes), 0) as b from old_rows group by 1) d where u.owner = d.owner;
    insert into mqtt_retained_usage (owner, count, bytes)
      select coalesce(owner, ''), count(*), coalesce(sum(bytes), 0) from new_rows group by coalesce(owner, '')
      on conflict (owner) do update set count = mqtt_retained_usage.count + excluded.count, bytes = mqtt_retained_usage.bytes + excluded.bytes;
  end if;
  if tg_op <> 'INSERT' then
    delete from mqtt_retained_usage u using (select distinct coalesce(owner, '') as owner from old_rows) d where u.owner = d.owner and u.count <= 0;
  end if;
  return null;
end $$`).execute(db);
    await sql`create trigger mqtt_retained_count_insert after insert on mqtt_retained referencing new table as new_rows for each statement execute function mqtt_retained_count()`.execute(db);
    await sql`create trigger mqtt_retained_count_update after update on mqtt_retained referencing old table as old_rows new table as new_rows for each statement execute function mqtt_retained_count()`.execute(db);
    await sql`create trigger mqtt_retained_count_delete after delete on mqtt_retained referencing old table as old_rows for each statement execute function mqtt_retained_count()`.execute(db);
  },

  async down(db: Kysely<unknown>): Promise<void> {
    if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
    for (const op of ['insert', 'update', 'delete']) await sql.raw(`drop trigger mqtt_retained_count_${op} on mqtt_retained`).execute(db);
    await sql`drop function mqtt_retained_count()`.execute(db);
    await sql`drop index mqtt_retained_expires`.execute(db);
    await sql`drop index mqtt_retained_topic_c`.execute(db);
    await sql`drop table mqtt_retained_totals`.execute(db);
    await sql`drop table mqtt_retained_usage`.execute(db);
  },
};
