/**
 * Warnings for refusals a stranger can repeat at will (a connection past the per-address cap), without
 * one log line per refusal: the first refusal for an address is logged at once, later ones are counted
 * and written as one summary line per interval, so an address refused all the time costs one line per
 * interval (issue 12: 15,000 refusals wrote 15,000 lines). Metrics count every refusal.
 */
import type { Logger } from 'pino';

export class RefusalLog {
  /** Refusals not logged yet, by address key; an entry stays one quiet interval after its last summary. */
  readonly #pending = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly message: string,
    private readonly intervalMs = 60_000,
  ) {}

  refused(address: string, fields: Record<string, unknown>): void {
    const n = this.#pending.get(address);
    if (n !== undefined) {
      this.#pending.set(address, n + 1);
      return;
    }
    this.#pending.set(address, 0);
    this.log.warn({ address, ...fields }, this.message);
    this.#timer ??= setInterval(() => this.#flush(), this.intervalMs).unref();
  }

  #flush(): void {
    for (const [address, n] of this.#pending) {
      if (n === 0) {
        this.#pending.delete(address);
        continue;
      }
      this.log.warn({ address, refused: n, intervalMs: this.intervalMs }, `${this.message} (repeated)`);
      this.#pending.set(address, 0);
    }
    if (this.#pending.size === 0) this.stop();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
