/**
 * Outgoing topic aliases (5.0 §3.3.2.3.4): the broker gives a topic an alias the first time it sends
 * it on a connection, then sends the alias with an empty topic name. Aliases are handed out until the
 * client's Topic Alias Maximum is reached and never reassigned, so a busy topic set with more topics
 * than aliases does not churn: topics beyond the limit simply go out in full.
 */
export class TopicAliasesOut {
  readonly #byTopic = new Map<string, number>();
  #next = 1;

  /** `max` = min(the client's Topic Alias Maximum, the broker's topicAliasMaximumOut). */
  constructor(readonly max: number) {}

  /** The alias `assign()` would return, without recording it. */
  peek(topic: string): { alias: number; known: boolean } {
    const alias = this.#byTopic.get(topic);
    if (alias !== undefined) return { alias, known: true };
    // [MQTT-3.3.2-9] never above the client's Topic Alias Maximum.
    return { alias: this.#next <= this.max ? this.#next : 0, known: false };
  }

  /** The alias to send with `topic`; `known` means the client already has it, so the topic name is left out. */
  assign(topic: string): { alias: number; known: boolean } {
    const a = this.peek(topic);
    if (!a.known && a.alias !== 0) {
      this.#byTopic.set(topic, a.alias);
      this.#next++;
    }
    return a;
  }
}
