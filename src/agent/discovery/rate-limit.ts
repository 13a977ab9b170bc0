/**
 * Caps how often discovery answers go out, so a forged source address cannot turn the agent into a
 * traffic amplifier: at most one answer per asker per `perAskerMs`, and at most `perSecond` in all.
 * The per-asker memory is bounded (oldest forgotten first).
 */
export class ReplyLimiter {
  readonly #last = new Map<string, number>();
  #windowStart = 0;
  #inWindow = 0;

  constructor(
    private readonly perAskerMs: number,
    private readonly perSecond: number,
    private readonly maxAskers = 1024,
  ) {}

  /** True if an answer to `asker` may go now (and counts it). */
  allow(asker: string, now = Date.now()): boolean {
    const last = this.#last.get(asker);
    if (last !== undefined && now - last < this.perAskerMs) return false;
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#inWindow = 0;
    }
    if (this.#inWindow >= this.perSecond) return false;
    this.#inWindow++;
    this.#last.delete(asker);
    this.#last.set(asker, now);
    if (this.#last.size > this.maxAskers) this.#last.delete(this.#last.keys().next().value!);
    return true;
  }
}
