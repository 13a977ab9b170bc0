/**
 * The slots for long-lived event streams, shared by every SSE route (`/v1/events`,
 * `/v1/devices/{id}/events`, `/v1/topics/events`): at most `max` streams in the hub, and at most
 * `maxPerUser` of them for one user, whichever of their tokens or OAuth clients opened them. Without
 * the per-user limit one user could hold all of the hub's slots and every other user got 429.
 *
 * Every SSE route needs an access token, so there is no per-address limit: the user is the key.
 */
import { HubError } from '../errors.js';

export interface StreamSlotsOptions {
  /** Streams at once in the hub (--max-sse-clients). */
  max: number;
  /** Streams at once per user (--max-sse-clients-per-user); 0 = no limit. */
  maxPerUser: number;
}

/** Seconds a client refused a slot is told to wait (Retry-After): streams are long-lived, slots free up slowly. */
export const STREAM_RETRY_AFTER_S = 5;

export class StreamSlots {
  #open = 0;
  /** Open streams by user id; only users with at least one stream. */
  readonly #perUser = new Map<string, number>();

  constructor(private readonly opts: StreamSlotsOptions) {}

  /**
   * Takes a slot for `userId`: the function that gives it back (idempotent), or the HubError to answer
   * (429 CR_ERR_TOO_MANY_REQUESTS hub-wide, CR_ERR_TOO_MANY_STREAMS for the user).
   */
  acquire(userId: string): (() => void) | HubError {
    if (this.#open >= this.opts.max) return new HubError('CR_ERR_TOO_MANY_REQUESTS', 'too many event streams');
    const mine = this.#perUser.get(userId) ?? 0;
    if (this.opts.maxPerUser > 0 && mine >= this.opts.maxPerUser) {
      return new HubError('CR_ERR_TOO_MANY_STREAMS', `this user already has ${mine} event streams open (--max-sse-clients-per-user); close one or retry later`);
    }
    this.#open++;
    this.#perUser.set(userId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#open--;
      const n = (this.#perUser.get(userId) ?? 1) - 1;
      if (n <= 0) this.#perUser.delete(userId);
      else this.#perUser.set(userId, n);
    };
  }

  get open(): number {
    return this.#open;
  }

  openFor(userId: string): number {
    return this.#perUser.get(userId) ?? 0;
  }
}
