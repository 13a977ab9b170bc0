/**
 * MQTT topic names, topic filters and a subscription trie that matches one against the other
 * (MQTT 3.1.1 §4.7 and 5.0 §4.7). Used by the in-process Bus and by the MQTT broker, so match() is
 * built for the publish hot path: one split of the topic, then a walk of the trie with no regexes and
 * no per-level allocation.
 *
 * Clause numbers are given as "3.1.1 / 5.0" where the two editions number a rule differently.
 */

/** Largest topic name or filter in UTF-8 bytes: its length travels in two bytes (3.1.1 §1.5.3, 5.0 §1.5.4). */
export const MAX_TOPIC_BYTES = 65_535;

const SLASH = 0x2f;
const PLUS = 0x2b;
const HASH = 0x23;
const DOLLAR = 0x24;

/** Why `name` is not a valid topic name for PUBLISH, or null when it is. */
export function validateTopicName(name: string): string | null {
  return check(name, false);
}

/** Why `filter` is not a valid topic filter for SUBSCRIBE, or null when it is. */
export function validateTopicFilter(filter: string): string | null {
  return check(filter, true);
}

/** One pass over the string: wildcards, U+0000, lone surrogates and the UTF-8 byte length together. */
function check(s: string, isFilter: boolean): string | null {
  // [MQTT-4.7.3-1] at least one character.
  if (s.length === 0) return 'must not be empty';
  // Every UTF-16 code unit encodes to at least one UTF-8 byte, so this length can never fit.
  if (s.length > MAX_TOPIC_BYTES) return `must not exceed ${MAX_TOPIC_BYTES} UTF-8 bytes`;
  let bytes = 0;
  let levelStart = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      bytes += 1;
      if (c === 0) return 'must not contain U+0000'; // [MQTT-4.7.3-2]
      if (c === PLUS || c === HASH) {
        // 3.1.1 [MQTT-4.7.1-1] / 5.0 [MQTT-4.7.0-1]: wildcards only in filters.
        if (!isFilter) return `must not contain the wildcard '${s[i]}'`;
        const next = i + 1 < s.length ? s.charCodeAt(i + 1) : SLASH;
        // 3.1.1 [MQTT-4.7.1-3] / 5.0 [MQTT-4.7.1-2]: '+' occupies a whole level.
        if (c === PLUS && (i !== levelStart || next !== SLASH)) return "'+' must occupy a whole level";
        // 3.1.1 [MQTT-4.7.1-2] / 5.0 [MQTT-4.7.1-1]: '#' alone in the last level.
        if (c === HASH && (i !== levelStart || i !== s.length - 1)) return "'#' must be the last level, alone";
      } else if (c === SLASH) {
        levelStart = i + 1;
      }
    } else if (c < 0x800) {
      bytes += 2;
    } else if (c >= 0xd800 && c <= 0xdbff) {
      // 3.1.1 [MQTT-1.5.3-1] / 5.0 [MQTT-1.5.4-1]: a lone surrogate has no well-formed UTF-8 encoding.
      const lo = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
      if (lo < 0xdc00 || lo > 0xdfff) return 'must be well-formed UTF-16 (lone surrogate)';
      bytes += 4;
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) {
      return 'must be well-formed UTF-16 (lone surrogate)';
    } else {
      bytes += 3;
    }
  }
  // 3.1.1 [MQTT-4.7.3-3] / 5.0 §1.5.4: the length prefix is two bytes.
  if (bytes > MAX_TOPIC_BYTES) return `must not exceed ${MAX_TOPIC_BYTES} UTF-8 bytes`;
  return null;
}

class TrieNode<T> {
  /** Children by literal level; created on first use so leaves stay small. */
  children: Map<string, TrieNode<T>> | undefined;
  /** Child for a `+` level: kept apart so a topic level spelled "+" can never reach it. */
  plus: TrieNode<T> | undefined;
  /** Values of filters that end here with `/#` (or are `#` at the root). */
  hash: Set<T> | undefined;
  /** Values of filters that end exactly at this level. */
  exact: Set<T> | undefined;

  isEmpty(): boolean {
    return this.children === undefined && this.plus === undefined && this.hash === undefined && this.exact === undefined;
  }
}

/**
 * Values keyed by MQTT topic filter. A value is stored once per filter (adding it again is a no-op);
 * the same value under two filters that both match a topic is reported once for each filter, as MQTT
 * allows for overlapping subscriptions (5.0 §4.7.2, 3.1.1 §3.3.5).
 */
export class TopicTree<T> {
  readonly #root = new TrieNode<T>();
  #size = 0;
  #nodes = 1;
  /** The walk's stack of (node, levels consumed), reused by every match. */
  readonly #stackNodes: TrieNode<T>[] = [];
  readonly #stackDepths: number[] = [];

  /** Number of (filter, value) pairs held. */
  get size(): number {
    return this.#size;
  }

  /** Trie nodes allocated, the root included: a gauge for metrics, and proof that remove() prunes. */
  get nodeCount(): number {
    return this.#nodes;
  }

  /** Removes every filter and value. */
  clear(): void {
    const root = this.#root;
    root.children = root.plus = root.hash = root.exact = undefined;
    this.#size = 0;
    this.#nodes = 1;
  }

  /** Stores `value` under `filter`; false when it was already there. Throws TypeError on an invalid filter. */
  add(filter: string, value: T): boolean {
    const problem = validateTopicFilter(filter);
    if (problem !== null) throw new TypeError(`invalid topic filter ${JSON.stringify(filter)}: ${problem}`);
    let node = this.#root;
    let start = 0;
    while (true) {
      const end = indexOfSlash(filter, start);
      const level = filter.slice(start, end);
      if (level === '#') {
        node.hash ??= new Set();
        return this.#insert(node.hash, value);
      }
      let next: TrieNode<T> | undefined;
      if (level === '+') {
        next = node.plus;
        if (next === undefined) node.plus = next = this.#newNode();
      } else {
        node.children ??= new Map();
        next = node.children.get(level);
        if (next === undefined) node.children.set(level, (next = this.#newNode()));
      }
      node = next;
      if (end === filter.length) {
        node.exact ??= new Set();
        return this.#insert(node.exact, value);
      }
      start = end + 1;
    }
  }

  /** Removes `value` from `filter`, pruning nodes left empty so memory follows live subscriptions. */
  remove(filter: string, value: T): boolean {
    if (validateTopicFilter(filter) !== null) return false;
    const path: TrieNode<T>[] = [];
    const levels: string[] = [];
    let node: TrieNode<T> | undefined = this.#root;
    let removed = false;
    let start = 0;
    while (node !== undefined) {
      const end = indexOfSlash(filter, start);
      const level = filter.slice(start, end);
      if (level === '#') {
        removed = node.hash?.delete(value) ?? false;
        if (node.hash?.size === 0) node.hash = undefined;
        break;
      }
      path.push(node);
      levels.push(level);
      node = level === '+' ? node.plus : node.children?.get(level);
      if (node !== undefined && end === filter.length) {
        removed = node.exact?.delete(value) ?? false;
        if (node.exact?.size === 0) node.exact = undefined;
        break;
      }
      start = end + 1;
    }
    if (!removed) return false;
    this.#size--;
    // Walk back up, unlinking children that no longer hold anything.
    for (let i = path.length - 1; i >= 0; i--) {
      const parent = path[i]!;
      const level = levels[i]!;
      const child = level === '+' ? parent.plus : parent.children?.get(level);
      if (child === undefined || !child.isEmpty()) break;
      this.#nodes--;
      if (level === '+') parent.plus = undefined;
      else {
        parent.children!.delete(level);
        if (parent.children!.size === 0) parent.children = undefined;
      }
    }
    return true;
  }

  /**
   * Calls `fn` for each value whose filter matches `topic`. `fn` must not add to or remove from this
   * tree; use match() when handlers may (un)subscribe. `topic` is assumed valid (validate at ingress):
   * an invalid one never matches wrongly, since literal `+`/`#` levels cannot reach wildcard nodes.
   */
  forEach(topic: string, fn: (value: T) => void): void {
    if (this.#size === 0) return;
    const levels = topic.split('/');
    // [MQTT-4.7.2-1] a filter starting with a wildcard must not match a topic starting with '$'.
    const dollar = topic.charCodeAt(0) === DOLLAR;
    this.#walk(levels, dollar, fn);
  }

  /** The values whose filters match `topic`, as a snapshot that later changes to the tree do not affect. */
  match(topic: string): T[] {
    const out: T[] = [];
    this.forEach(topic, (v) => out.push(v));
    return out;
  }

  /** True when at least one filter matches `topic`. */
  hasMatch(topic: string): boolean {
    if (this.#size === 0) return false;
    let found = false;
    this.#walk(topic.split('/'), topic.charCodeAt(0) === DOLLAR, undefined, () => (found = true));
    return found;
  }

  /**
   * Depth-first over the nodes that `levels` can reach: the literal child, then the `+` child, as the
   * recursive walk did, so values come in the same order. Iterative on an explicit stack, so a topic of
   * any depth (65,535 levels fit in a topic name) cannot overflow the call stack. The stack is kept
   * between calls (no allocation per publish); a call made from `fn` (a read, which is allowed) works
   * above the entries of the call it interrupts. `stop`, when given, ends the walk at the first value.
   */
  #walk(levels: string[], dollar: boolean, fn: ((value: T) => void) | undefined, stop?: () => void): void {
    const nodes = this.#stackNodes;
    const depths = this.#stackDepths;
    const base = nodes.length;
    const n = levels.length;
    let node = this.#root;
    let i = 0;
    try {
      while (true) {
        // Down the literal levels without the stack: only a `+` branch waits on it for later, so the
        // common tree (few wildcards) costs no push or pop per level.
        while (true) {
          const wild = !(dollar && i === 0);
          // `#` matches the remaining levels, including none: `a/#` matches `a` (§4.7.1.2).
          if (wild && node.hash !== undefined) {
            if (stop !== undefined) return stop();
            emit(node.hash, fn!);
          }
          if (i === n) {
            if (node.exact !== undefined) {
              if (stop !== undefined) return stop();
              emit(node.exact, fn!);
            }
            break;
          }
          // Taken after the literal level's whole subtree: `+` matches exactly one level, maybe empty.
          if (wild && node.plus !== undefined) {
            nodes.push(node.plus);
            depths.push(i + 1);
          }
          const child = node.children?.get(levels[i]!);
          if (child === undefined) break;
          node = child;
          i++;
        }
        if (nodes.length === base) return;
        node = nodes.pop()!;
        i = depths.pop()!;
      }
    } finally {
      // Left early (stop, or fn threw): drop this walk's entries, keeping those of a walk it interrupted.
      if (nodes.length !== base) {
        nodes.length = base;
        depths.length = base;
      }
    }
  }

  #newNode(): TrieNode<T> {
    this.#nodes++;
    return new TrieNode();
  }

  #insert(set: Set<T>, value: T): boolean {
    if (set.has(value)) return false;
    set.add(value);
    this.#size++;
    return true;
  }
}

function indexOfSlash(s: string, from: number): number {
  const i = s.indexOf('/', from);
  return i === -1 ? s.length : i;
}

function emit<T>(set: Set<T> | undefined, fn: (value: T) => void): void {
  if (set !== undefined) for (const v of set) fn(v);
}
