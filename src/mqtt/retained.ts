/**
 * Retained messages (3.1.1 §3.3.1.3, 5.0 §3.3.1.3): at most one per topic, kept in a trie of topic
 * levels so that a new subscription finds the ones its filter matches by walking the filter, not by
 * testing every retained topic. Each entry says who it is charged to and how many bytes, for the
 * quotas (retained-usage.ts). A large entry may hold no message: its payload is read from persistence
 * when it is delivered (core.ts), so the heap does not grow with the bytes retained.
 *
 * Every walk is iterative: a topic may have up to 65,535 levels, far past the call stack's depth.
 */
import type { QoS } from 'mqtt-packet';
import type { Message } from './message.js';
import { RetainedUsage } from './retained-usage.js';

export interface RetainedEntry {
  readonly topic: string;
  /** The message itself, or undefined when only persistence holds its payload and properties. */
  readonly message: Message | undefined;
  readonly qos: QoS;
  /** Absolute expiry (ms since epoch); undefined = never. */
  readonly expiresAt: number | undefined;
  /** The principal charged for it; '' for the server's own messages. */
  readonly owner: string;
  /** What it is charged: topic, payload and properties (retainedBytes()). */
  readonly bytes: number;
}

class Level {
  children: Map<string, Level> | undefined;
  entry: RetainedEntry | undefined;
}

/** What a retained message is charged: its topic, payload and properties, roughly as stored. */
export function retainedBytes(m: Pick<Message, 'topic' | 'payload' | 'properties'>): number {
  let n = m.topic.length + m.payload.length;
  const p = m.properties;
  if (p !== undefined) {
    n += (p.contentType?.length ?? 0) + (p.responseTopic?.length ?? 0) + (p.correlationData?.length ?? 0);
    for (const [k, v] of Object.entries(p.userProperties ?? {})) {
      n += k.length;
      for (const s of Array.isArray(v) ? v : [v]) n += String(s).length;
    }
  }
  return n;
}

export class RetainedStore {
  readonly #root = new Level();
  readonly usage = new RetainedUsage();

  get size(): number {
    return this.usage.count;
  }

  /** Stores `entry` as its topic's retained message, replacing (and returning) the previous one. */
  set(entry: RetainedEntry): RetainedEntry | undefined {
    let node = this.#root;
    for (const level of entry.topic.split('/')) {
      node.children ??= new Map();
      let next = node.children.get(level);
      if (next === undefined) node.children.set(level, (next = new Level()));
      node = next;
    }
    const previous = node.entry;
    if (previous !== undefined) this.usage.remove(previous.owner, previous.bytes);
    this.usage.add(entry.owner, entry.bytes);
    node.entry = entry;
    return previous;
  }

  get(topic: string): RetainedEntry | undefined {
    let node: Level | undefined = this.#root;
    for (const level of topic.split('/')) {
      node = node.children?.get(level);
      if (node === undefined) return undefined;
    }
    return node.entry;
  }

  /** Removes the topic's retained message; returns it. */
  delete(topic: string): RetainedEntry | undefined {
    const path: Level[] = [];
    const levels = topic.split('/');
    let node: Level | undefined = this.#root;
    for (const level of levels) {
      path.push(node);
      node = node.children?.get(level);
      if (node === undefined) return undefined;
    }
    const removed = node.entry;
    if (removed === undefined) return undefined;
    node.entry = undefined;
    this.usage.remove(removed.owner, removed.bytes);
    // Prune levels left with neither a message nor children.
    for (let i = levels.length - 1; i >= 0; i--) {
      const child = path[i]!.children!.get(levels[i]!)!;
      if (child.entry !== undefined || (child.children?.size ?? 0) > 0) break;
      path[i]!.children!.delete(levels[i]!);
      if (path[i]!.children!.size === 0) path[i]!.children = undefined;
    }
    return removed;
  }

  /** Retained messages whose topic matches `filter` (a valid filter, without any `$share/` prefix). Expired ones are removed. */
  match(filter: string, now: number): RetainedEntry[] {
    const out = walk(this.#root, filter.split('/'));
    const live = out.filter((e) => !expired(e, now));
    if (live.length !== out.length) for (const e of out) if (expired(e, now)) this.delete(e.topic);
    return live;
  }

  /** Every retained message, for persistence or inspection. */
  all(): RetainedEntry[] {
    const out: RetainedEntry[] = [];
    collect(this.#root, out, false);
    return out;
  }
}

function expired(e: RetainedEntry, now: number): boolean {
  return e.expiresAt !== undefined && e.expiresAt <= now;
}

/** Depth-first, in the order the recursive walk had: a node's children in insertion order. */
function walk(root: Level, levels: string[]): RetainedEntry[] {
  const out: RetainedEntry[] = [];
  const nodes: Level[] = [root];
  const depths: number[] = [0];
  while (nodes.length > 0) {
    const node = nodes.pop()!;
    const i = depths.pop()!;
    if (i === levels.length) {
      if (node.entry !== undefined) out.push(node.entry);
      continue;
    }
    const level = levels[i]!;
    // [MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with '$'.
    const skipDollar = i === 0;
    if (level === '#') {
      // `a/#` also matches `a` itself (§4.7.1.2).
      if (i > 0 && node.entry !== undefined) out.push(node.entry);
      collect(node, out, skipDollar);
      continue;
    }
    if (level === '+') {
      if (node.children === undefined) continue;
      // Pushed in reverse so that they are popped, and matched, in order.
      const children = [...node.children];
      for (let k = children.length - 1; k >= 0; k--) {
        const [name, child] = children[k]!;
        if (skipDollar && name.startsWith('$')) continue;
        nodes.push(child);
        depths.push(i + 1);
      }
      continue;
    }
    const child = node.children?.get(level);
    if (child !== undefined) {
      nodes.push(child);
      depths.push(i + 1);
    }
  }
  return out;
}

/** Every entry below `node` (not `node`'s own), parents before children. */
function collect(node: Level, out: RetainedEntry[], skipDollar: boolean): void {
  const stack: Level[] = [];
  const pushChildren = (n: Level, skip: boolean): void => {
    if (n.children === undefined) return;
    const children = [...n.children];
    for (let k = children.length - 1; k >= 0; k--) {
      const [name, child] = children[k]!;
      if (!(skip && name.startsWith('$'))) stack.push(child);
    }
  };
  pushChildren(node, skipDollar);
  while (stack.length > 0) {
    const n = stack.pop()!;
    if (n.entry !== undefined) out.push(n.entry);
    pushChildren(n, false);
  }
}
