/**
 * Long-lived connections opened with a token (SSE streams), indexed by the token's SHA-256, so that a
 * revocation ends them at once instead of when they next close. A connection is held from when it
 * opens until it closes, so the index is bounded by the connection limits (--max-sse-clients); ending
 * the connections of a revoked token costs one map lookup per token.
 */
import type { EndedSessions, Session } from '../core/auth/authenticator.js';

interface Held {
  session: Session;
  end(): void;
}

export class LiveSessions {
  readonly #byTokenHash = new Map<string, Set<Held>>();
  /** The OAuth-token connections too, for revocations that name a client, grant or family, not hashes. */
  readonly #oauth = new Set<Held>();

  /** Calls `end` (once) when `session`'s token is revoked; the returned function lets go (the connection closed). */
  hold(session: Session, end: () => void): () => void {
    const held: Held = { session, end };
    let set = this.#byTokenHash.get(session.tokenHash);
    if (!set) this.#byTokenHash.set(session.tokenHash, (set = new Set()));
    set.add(held);
    if (session.oauth) this.#oauth.add(held);
    return () => this.#release(held);
  }

  /** Ends the connections of the sessions that ended; returns how many. */
  end(ended: EndedSessions): number {
    const doomed: Held[] = [];
    if ('tokenHashes' in ended) {
      for (const h of ended.tokenHashes) for (const held of this.#byTokenHash.get(h) ?? []) doomed.push(held);
    } else {
      for (const held of this.#oauth) if (ended.match(held.session)) doomed.push(held);
    }
    for (const held of doomed) {
      this.#release(held);
      held.end();
    }
    return doomed.length;
  }

  /** Connections held (for tests and metrics). */
  get size(): number {
    let n = 0;
    for (const set of this.#byTokenHash.values()) n += set.size;
    return n;
  }

  #release(held: Held): void {
    const set = this.#byTokenHash.get(held.session.tokenHash);
    if (!set?.delete(held)) return;
    if (set.size === 0) this.#byTokenHash.delete(held.session.tokenHash);
    this.#oauth.delete(held);
  }
}
