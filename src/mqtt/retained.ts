/**
 * Retained messages (3.1.1 §3.3.1.3, 5.0 §3.3.1.3): at most one per topic, kept in a trie of topic
 * levels so that a new subscription finds the ones its filter matches by walking the filter, not by
 * testing every retained topic.
 */
import { isExpired, type Message } from './message.js';

class Level {
  children: Map<string, Level> | undefined;
  message: Message | undefined;
}

export class RetainedStore {
  readonly #root = new Level();
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** Stores `m` as its topic's retained message; an empty payload clears it instead ([MQTT-3.3.1-10/11] 3.1.1, [MQTT-3.3.1-6/7] 5.0). */
  set(m: Message): void {
    if (m.payload.length === 0) {
      this.delete(m.topic);
      return;
    }
    let node = this.#root;
    for (const level of m.topic.split('/')) {
      node.children ??= new Map();
      let next = node.children.get(level);
      if (next === undefined) node.children.set(level, (next = new Level()));
      node = next;
    }
    if (node.message === undefined) this.#size++;
    node.message = m;
  }

  get(topic: string): Message | undefined {
    let node: Level | undefined = this.#root;
    for (const level of topic.split('/')) {
      node = node.children?.get(level);
      if (node === undefined) return undefined;
    }
    return node.message;
  }

  delete(topic: string): boolean {
    const path: Level[] = [];
    const levels = topic.split('/');
    let node: Level | undefined = this.#root;
    for (const level of levels) {
      path.push(node);
      node = node.children?.get(level);
      if (node === undefined) return false;
    }
    if (node.message === undefined) return false;
    node.message = undefined;
    this.#size--;
    // Prune levels left with neither a message nor children.
    for (let i = levels.length - 1; i >= 0; i--) {
      const child = path[i]!.children!.get(levels[i]!)!;
      if (child.message !== undefined || (child.children?.size ?? 0) > 0) break;
      path[i]!.children!.delete(levels[i]!);
      if (path[i]!.children!.size === 0) path[i]!.children = undefined;
    }
    return true;
  }

  /** Retained messages whose topic matches `filter` (a valid filter, without any `$share/` prefix). Expired ones are removed. */
  match(filter: string, now: number): Message[] {
    const out: Message[] = [];
    walk(this.#root, filter.split('/'), 0, out);
    const live = out.filter((m) => !isExpired(m, now));
    if (live.length !== out.length) for (const m of out) if (isExpired(m, now)) this.delete(m.topic);
    return live;
  }

  /** Every retained message, for persistence or inspection. */
  all(): Message[] {
    const out: Message[] = [];
    collect(this.#root, out, false);
    return out;
  }
}

function walk(node: Level, levels: string[], i: number, out: Message[]): void {
  if (i === levels.length) {
    if (node.message !== undefined) out.push(node.message);
    return;
  }
  const level = levels[i]!;
  // [MQTT-4.7.2-1] filters starting with a wildcard do not match topics starting with '$'.
  const skipDollar = i === 0;
  if (level === '#') {
    // `a/#` also matches `a` itself (§4.7.1.2).
    if (i > 0 && node.message !== undefined) out.push(node.message);
    collect(node, out, skipDollar);
    return;
  }
  if (level === '+') {
    if (node.children === undefined) return;
    for (const [name, child] of node.children) {
      if (skipDollar && name.startsWith('$')) continue;
      walk(child, levels, i + 1, out);
    }
    return;
  }
  const child = node.children?.get(level);
  if (child !== undefined) walk(child, levels, i + 1, out);
}

/** Every message below `node` (not `node`'s own). */
function collect(node: Level, out: Message[], skipDollar: boolean): void {
  if (node.children === undefined) return;
  for (const [name, child] of node.children) {
    if (skipDollar && name.startsWith('$')) continue;
    if (child.message !== undefined) out.push(child.message);
    collect(child, out, false);
  }
}
