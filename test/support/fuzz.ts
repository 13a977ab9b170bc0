/**
 * What every decoder fuzz test (test/fuzz-*.test.ts) shares: the run count and seed, read from the
 * environment so that `npm test` stays fast and repeatable while a longer hunt is one command
 * (docs/operations.md "Fuzzing the decoders"), and the arbitraries that turn valid encodings into
 * hostile ones (bit flips, truncation, splicing) or split them into chunks.
 *
 *   CLOUDREST_FUZZ_RUNS   runs per property (default 200; a property may scale it by a factor)
 *   CLOUDREST_FUZZ_SEED   the seed (default a fixed one; `random` picks one, printed on failure)
 */
import assert from 'node:assert/strict';
import fc from 'fast-check';

const DEFAULT_RUNS = 200;
const DEFAULT_SEED = 0x12c10d;

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** Runs per property at factor 1. */
export const FUZZ_RUNS = Math.max(1, envInt('CLOUDREST_FUZZ_RUNS', DEFAULT_RUNS));
/** The seed every property starts from (fast-check prints it, with the failing path, on a failure). */
export const FUZZ_SEED = process.env.CLOUDREST_FUZZ_SEED === 'random' ? (Math.random() * 0x7fffffff) | 0 : envInt('CLOUDREST_FUZZ_SEED', DEFAULT_SEED);

/**
 * fast-check parameters for one property. `factor` scales the run count for properties that are
 * cheaper (more runs) or dearer (fewer) than the rest, so the whole set stays balanced at any count.
 */
export function fuzzParams(factor = 1): fc.Parameters<unknown> {
  return { numRuns: Math.max(1, Math.round(FUZZ_RUNS * factor)), seed: FUZZ_SEED, endOnFailure: false };
}

/**
 * node:test options for a fuzz test: a long run (CLOUDREST_FUZZ_RUNS raised) may take longer than the
 * runner's default timeout, which is meant for the default count.
 */
export const FUZZ_TEST_OPTIONS = { timeout: FUZZ_RUNS > DEFAULT_RUNS ? Infinity : 120_000 };

/** Asserts a property with the shared parameters. */
export function checkProperty<Ts extends [unknown, ...unknown[]]>(
  arbs: { [K in keyof Ts]: fc.Arbitrary<Ts[K]> },
  predicate: (...args: Ts) => boolean | void,
  factor = 1,
): void {
  fc.assert(fc.property(...arbs, predicate), fuzzParams(factor) as fc.Parameters<Ts>);
}

/** fc.record with a plain prototype, so decoded objects compare deep-equal to generated ones. */
export function record<T extends object>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as fc.Arbitrary<T>;
}

/** Random bytes, mostly short, sometimes long enough to cross a header or two. */
export const randomBytes = (maxLength = 512): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ maxLength }).map((a) => Buffer.from(a.buffer, a.byteOffset, a.length));

/** One change to a byte string. Positions are taken modulo the length, so any position is valid. */
type Mutation =
  | { op: 'flip'; at: number; bit: number }
  | { op: 'set'; at: number; value: number }
  | { op: 'truncate'; at: number }
  | { op: 'delete'; at: number; length: number }
  | { op: 'insert'; at: number; bytes: Uint8Array }
  | { op: 'duplicate'; at: number; length: number };

const BOUNDARY_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff];

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ op: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant('set' as const), at: fc.nat(), value: fc.oneof(fc.constantFrom(...BOUNDARY_BYTES), fc.integer({ min: 0, max: 255 })) }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ op: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ op: fc.constant('duplicate' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 32 }) }),
);

function applyMutation(b: Buffer, m: Mutation): Buffer {
  if (b.length === 0) return m.op === 'insert' ? Buffer.from(m.bytes) : b;
  const at = m.at % b.length;
  switch (m.op) {
    case 'flip': {
      const c = Buffer.from(b);
      c[at] = c[at]! ^ (1 << m.bit);
      return c;
    }
    case 'set': {
      const c = Buffer.from(b);
      c[at] = m.value;
      return c;
    }
    case 'truncate':
      return b.subarray(0, at);
    case 'delete':
      return Buffer.concat([b.subarray(0, at), b.subarray(at + m.length)]);
    case 'insert':
      return Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
    case 'duplicate':
      return Buffer.concat([b.subarray(0, at + m.length), b.subarray(at)]);
  }
}

/** A valid encoding with one to four mutations applied: bit flips, boundary bytes, truncation, cuts, insertions. */
export function mutated(valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc.tuple(valid, fc.array(mutationArb, { minLength: 1, maxLength: 4 })).map(([b, ms]) => ms.reduce(applyMutation, b));
}

/** The head of one valid encoding joined to the tail of another, each cut anywhere. */
export function spliced(valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc.tuple(valid, valid, fc.nat(), fc.nat()).map(([a, b, i, j]) => Buffer.concat([a.subarray(0, i % (a.length + 1)), b.subarray(j % (b.length + 1))]));
}

/** Hostile input derived from valid encodings, or plain random bytes. */
export function hostile(valid: fc.Arbitrary<Buffer>, maxRandomBytes = 512): fc.Arbitrary<Buffer> {
  return fc.oneof({ arbitrary: mutated(valid), weight: 4 }, { arbitrary: spliced(valid), weight: 2 }, { arbitrary: randomBytes(maxRandomBytes), weight: 1 });
}

/** Cut points for `chunksOf`: a few random positions (as fractions of any length). */
export const cutPoints: fc.Arbitrary<number[]> = fc.array(fc.nat(), { maxLength: 12 });

/** `bytes` split at the given points (taken modulo its length), in order, empty chunks included. */
export function chunksOf(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  out.push(bytes.subarray(prev));
  return out;
}

/**
 * Runs `fn` and returns what it threw, asserting that it is nothing but `errorType` (a decoder may
 * refuse input only with its own error, never with a TypeError or RangeError from reading past a
 * buffer, nor a stack overflow).
 */
export function onlyThrows<E extends Error>(errorType: abstract new (...args: never[]) => E, fn: () => void): E | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (!(err instanceof errorType)) assert.fail(`threw ${(err as Error)?.name ?? typeof err} instead of ${errorType.name}: ${(err as Error)?.stack ?? String(err)}`);
    return err;
  }
}
