import { DuplicateError } from '../store.js';
import type { SqlDialect } from './dialect.js';

/** Runs an insert, turning a unique-key clash into DuplicateError. */
export async function insertOrDuplicate(dialect: SqlDialect, what: string, run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (dialect.isUniqueViolation(err)) throw new DuplicateError(`${what} already exists`, { cause: err });
    throw err;
  }
}

/** insertOrDuplicate for an insert that returns what it inserted. */
export async function insertOrDuplicateValue<T>(dialect: SqlDialect, what: string, run: () => Promise<T>): Promise<T> {
  let value!: T;
  await insertOrDuplicate(dialect, what, async () => {
    value = await run();
  });
  return value;
}
