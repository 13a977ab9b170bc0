import { NodeLink, type NodeLinkOptions } from './node-link.js';

export interface NodeLinkPoolOptions extends NodeLinkOptions {
  /** Links kept to each edge (opened as they are needed, used round-robin). */
  linksPerNode: number;
  /** First reconnect delay after a failed connect; doubles per failure up to `maxBackoffMs`, with ±50% jitter. */
  backoffMs: number;
  maxBackoffMs: number;
}

/** Why no link to an edge could be had (connect failed, or the last failure is too recent to try again). */
export class NodeUnreachableError extends Error {
  override readonly name = 'NodeUnreachableError';
}

/**
 * The links from this front to one edge (one internal URL): at most `linksPerNode`, opened lazily,
 * used round-robin. After a failed connect the next attempt waits out a growing, jittered backoff;
 * meanwhile requests fail fast rather than pile up behind a dead edge.
 */
class EdgeLinks {
  readonly #links: NodeLink[] = [];
  #connecting: Promise<NodeLink> | undefined;
  #next = 0;
  #failures = 0;
  #retryAt = 0;
  #closed = false;

  constructor(private readonly url: string, private readonly opts: NodeLinkPoolOptions) {}

  /** A usable link: at once when one is up, else once one connects. */
  get(): NodeLink | Promise<NodeLink> {
    for (let i = this.#links.length - 1; i >= 0; i--) if (!this.#links[i]!.usable) this.#links.splice(i, 1);
    if (this.#links.length < this.opts.linksPerNode && this.#connecting === undefined && Date.now() >= this.#retryAt) {
      const connecting = this.#connect();
      // Grow the pool in the background once one link carries traffic; the caller waits only for the first.
      if (this.#links.length === 0) return connecting;
      connecting.catch(() => undefined);
    }
    if (this.#links.length > 0) return this.#links[this.#next++ % this.#links.length]!;
    if (this.#connecting) return this.#connecting;
    return Promise.reject(new NodeUnreachableError(`node ${this.url} is unreachable; retrying in ${this.#retryAt - Date.now()} ms`));
  }

  #connect(): Promise<NodeLink> {
    const connecting = NodeLink.connect(this.url, this.opts).then(
      (link) => {
        this.#connecting = undefined;
        this.#failures = 0;
        if (this.#closed) {
          link.close();
          throw new NodeUnreachableError('the pool is closed');
        }
        this.#links.push(link);
        return link;
      },
      (err: unknown) => {
        this.#connecting = undefined;
        this.#failures++;
        const base = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** (this.#failures - 1));
        this.#retryAt = Date.now() + base * (0.5 + Math.random());
        throw new NodeUnreachableError(`cannot reach node ${this.url}: ${(err as Error).message}`, { cause: err });
      },
    );
    this.#connecting = connecting;
    return connecting;
  }

  close(): void {
    this.#closed = true;
    for (const l of this.#links.splice(0)) l.close();
  }
}

/** Every edge this front talks to, by internal URL. */
export class NodeLinkPool {
  readonly #edges = new Map<string, EdgeLinks>();

  constructor(private readonly opts: NodeLinkPoolOptions) {}

  link(url: string): NodeLink | Promise<NodeLink> {
    let edge = this.#edges.get(url);
    if (edge === undefined) {
      edge = new EdgeLinks(url, this.opts);
      this.#edges.set(url, edge);
    }
    return edge.get();
  }

  close(): void {
    for (const e of this.#edges.values()) e.close();
    this.#edges.clear();
  }
}
