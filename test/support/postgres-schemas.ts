/**
 * Fresh, empty PostgreSQL namespaces for contract suites: one test database (testPostgres) per suite,
 * created on first use and dropped by drop(), and in it one schema per case, so every case starts
 * empty without the cost of a database each. A case's URL sets its schema as the search path.
 */
import pg from 'pg';
import { testPostgres, type TestDatabase } from './services.js';

export interface PostgresSchemas {
  /** postgres://... whose connections see only a new, empty schema. */
  url(): Promise<string>;
  /** Drops the database with every schema in it. */
  drop(): Promise<void>;
}

export function postgresSchemas(): PostgresSchemas {
  let database: Promise<TestDatabase> | undefined;
  let n = 0;
  return {
    async url() {
      const db = await (database ??= testPostgres());
      const schema = `case_${++n}`;
      const client = new pg.Client({ connectionString: db.url });
      await client.connect();
      try {
        await client.query(`create schema ${schema}`);
      } finally {
        await client.end();
      }
      const url = new URL(db.url);
      url.searchParams.set('options', `-c search_path=${schema}`);
      return url.toString();
    },
    async drop() {
      if (database) await (await database).drop();
    },
  };
}
