/**
 * The one runner of the seams' contract suites (ARCHITECTURE.md "Seams": each interface has one
 * contract suite that every implementation passes). A suite is written against the interface only and
 * gets its instances from the implementation's `make`; test/contracts.test.ts lists every seam with
 * every implementation of it, so adding a backend means adding one entry there.
 */
import { after, describe } from 'node:test';

/** One implementation of a seam, as its contract suite sees it. */
export interface Implementation<T, A extends unknown[] = [], P extends object = object> {
  /** Shown in the test names: "Store contract: SqliteStore on a file". */
  name: string;
  /** A fresh, empty instance, made from the suite's arguments if it passes any (hooks, limits). */
  make(...args: A): Promise<T>;
  /** Removes what the instances leave behind (temporary folders), once the implementation's suite has run. */
  cleanup?(): void | Promise<void>;
  /** What the implementation promises beyond the interface's minimum, for suites with optional parts. */
  properties?: P;
}

/** A seam's suite: registers its tests, given one implementation. */
export type ContractSuite<T, A extends unknown[] = [], P extends object = object> = (implementation: Implementation<T, A, P>) => void;

/** Runs `suite` against each implementation, each under "<seam> contract: <implementation>". */
export function runContract<T, A extends unknown[] = [], P extends object = object>(
  seam: string,
  suite: ContractSuite<T, A, P>,
  implementations: ReadonlyArray<Implementation<T, A, P>>,
): void {
  if (implementations.length === 0) throw new Error(`${seam} has no implementation to run its contract against`);
  for (const implementation of implementations) {
    describe(`${seam} contract: ${implementation.name}`, () => {
      const { cleanup } = implementation;
      if (cleanup) after(() => cleanup.call(implementation));
      suite(implementation);
    });
  }
}
