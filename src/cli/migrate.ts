/**
 * `cloudrest migrate --from sqlite:DIR --to postgres://...`: moves a single-process hub's state to the
 * PostgreSQL store of a scaled-out hub (issue 13), with the SQLite hub stopped. The copy itself is
 * src/store/copy-store.ts.
 */
import { join } from 'node:path';
import { DATABASE_FILE } from '../backends.js';
import { helpText, loadConfig } from '../config/load.js';
import type { OptionTable } from '../config/option.js';
import { copySqliteToPostgres, CopyRefusedError } from '../store/copy-store.js';
import { UsageError } from './admin.js';

export const migrateOptions = {
  from: { type: 'string', required: true, description: 'sqlite:DIR: the data folder (--data) of the hub to copy, which must be stopped' },
  to: { type: 'string', required: true, description: 'postgres://USER@HOST:PORT/DB: the database to copy into (migrated to the latest schema first)' },
  force: { type: 'bool', default: false, description: 'Copy into a database that has rows already, deleting them first (the target then holds exactly the source)' },
} as const satisfies OptionTable;

const SQLITE_PREFIX = 'sqlite:';

export async function runMigrate(argv: string[], out: (s: string) => void): Promise<void> {
  const { config } = loadConfig(migrateOptions, { argv });
  if (!config.from.startsWith(SQLITE_PREFIX) || config.from.length === SQLITE_PREFIX.length) throw new UsageError('--from must be sqlite:DIR, the data folder of the hub to copy');
  if (!/^postgres(ql)?:\/\//i.test(config.to)) throw new UsageError('--to must be a postgres://USER@HOST:PORT/DB URL');
  const dir = config.from.slice(SQLITE_PREFIX.length);
  try {
    const result = await copySqliteToPostgres({
      sqliteDataDir: dir,
      sqliteFile: join(dir, DATABASE_FILE),
      postgresUrl: config.to,
      force: config.force,
    });
    const replaced = Object.entries(result.replaced);
    if (replaced.length > 0) out(`replaced the target's rows (--force): ${replaced.map(([t, n]) => `${t} ${n}`).join(', ')}`);
    out('copied, in one transaction:');
    for (const [table, rows] of Object.entries(result.rows)) out(`  ${table.padEnd(20)} ${rows}`);
    out(result.signingKey
      ? 'the token-signing key too: tokens the SQLite hub issued stay valid'
      : `no token-signing key in ${dir} (no hub has run there): the PostgreSQL hub makes one when it first starts`);
    out('every table\'s row count in the target matches the source');
  } catch (err) {
    if (err instanceof CopyRefusedError) throw new UsageError(err.message);
    throw err;
  }
}

export const migrateHelp = (): string =>
  helpText('cloudrest migrate --from sqlite:DIR --to postgres://USER@HOST:PORT/DB [--force]   (stop the hub on DIR first)', migrateOptions);
