/**
 * The per-message check of a subscription granted only in part ('per-message', hooks.ts): may its
 * session receive a message on this topic? The hook is asked once per topic; answers are kept, at most
 * MAX_TOPICS per subscription (the oldest dropped first), and the whole check is replaced when the
 * authorization changes (Broker.authorizationChanged). Subscriptions granted whole carry no check, so
 * routing to them costs nothing more.
 */
import type { ResolvedHooks, SubscribeDecision } from './hooks.js';

/** Topics remembered per subscription: a subscriber to `devices/+/events` sees one per device. */
export const MAX_TOPICS = 256;

export class ReceiveCheck {
  readonly #answers = new Map<string, boolean>();

  constructor(
    private readonly hooks: Pick<ResolvedHooks, 'authorizeReceive'>,
    private readonly principal: string,
    private readonly clientId: string,
  ) {}

  allows(topic: string): boolean {
    const known = this.#answers.get(topic);
    if (known !== undefined) return known;
    const ok = this.hooks.authorizeReceive(this.principal, topic, this.clientId);
    if (this.#answers.size >= MAX_TOPICS) this.#answers.delete(this.#answers.keys().next().value!);
    this.#answers.set(topic, ok);
    return ok;
  }

  /** Topics remembered (for tests). */
  get size(): number {
    return this.#answers.size;
  }
}

/**
 * The check a subscription needs after authorizeSubscribe answered `decision`: none when granted whole;
 * otherwise one (a stored subscription no longer granted at all then receives only what its topics allow).
 */
export function receiveCheckFor(decision: SubscribeDecision, hooks: Pick<ResolvedHooks, 'authorizeReceive'>, principal: string, clientId: string): ReceiveCheck | undefined {
  return decision === true ? undefined : new ReceiveCheck(hooks, principal, clientId);
}
