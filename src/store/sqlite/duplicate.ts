import { DuplicateError } from '../store.js';

export function isUniqueViolation(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
}

/** Runs an insert, turning a unique-key clash into DuplicateError. */
export async function insertOrDuplicate(what: string, run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (isUniqueViolation(err)) throw new DuplicateError(`${what} already exists`, { cause: err });
    throw err;
  }
}

/** insertOrDuplicate for an insert that returns what it inserted. */
export async function insertOrDuplicateValue<T>(what: string, run: () => Promise<T>): Promise<T> {
  let value!: T;
  await insertOrDuplicate(what, async () => {
    value = await run();
  });
  return value;
}
