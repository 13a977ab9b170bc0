/**
 * Limits on the size of topic names and filters, below what the protocol allows (65,535 UTF-8 bytes,
 * hence up to 65,535 levels). MQTT leaves such limits to the server: 5.0 answers a name it does not
 * accept with 0x90 Topic Name invalid (§3.4.2.1, §3.5.2.1) and a filter with 0x8F (§3.9.3). They
 * bound what one topic costs in every structure keyed by it (the subscription and retained tries hold
 * one node per level) and in every walk of them.
 */
export interface TopicLimits {
  /** Most levels (one more than the number of '/'). */
  readonly maxLevels: number;
  /** Most UTF-8 bytes. */
  readonly maxBytes: number;
}

/** Why `s` (a topic name or filter, already valid) exceeds `limits`, or null when it does not. */
export function topicLimitProblem(s: string, limits: TopicLimits): string | null {
  const { maxLevels, maxBytes } = limits;
  // A UTF-16 code unit is at least one UTF-8 byte and at most three: count only when in doubt.
  if (s.length > maxBytes || (s.length * 3 > maxBytes && Buffer.byteLength(s) > maxBytes)) return `longer than ${maxBytes} bytes`;
  let levels = 1;
  for (let i = s.indexOf('/'); i !== -1; i = s.indexOf('/', i + 1)) {
    if (++levels > maxLevels) return `more than ${maxLevels} levels`;
  }
  return null;
}
