/**
 * The take-over between nodes (sessions.ts), on the bus topic `mqtt-sessions/<nodeId>` of the node a
 * message is for: a request ("hand over client id X", with clean start and the asking node) and its
 * acknowledgement ("written to the database", or "refused: another principal's session is here"),
 * and TakeoverExchange, which asks and answers. Bytes: a type, an 8-byte request id, then the fields.
 */
import { randomBytes } from 'node:crypto';
import type { Bus } from '../../core/bus.js';

export const REQUEST = 1;
export const ACK = 2;

export interface TakeoverRequest {
  type: typeof REQUEST;
  id: Buffer;
  cleanStart: boolean;
  from: string;
  /** Who connects: a session of another principal is not handed over. */
  principal: string;
  clientId: string;
}

export interface TakeoverAck {
  type: typeof ACK;
  id: Buffer;
  /** The holder keeps the session: it is another principal's (the asking node refuses the CONNECT). */
  refused: boolean;
}

export function takeoverTopic(nodeId: string): string {
  return `mqtt-sessions/${nodeId}`;
}

export function encodeRequest(r: Omit<TakeoverRequest, 'type'>): Buffer {
  const from = Buffer.from(r.from);
  if (from.length > 255) throw new RangeError('node id too long');
  const principal = Buffer.from(r.principal);
  const plen = Buffer.alloc(2);
  plen.writeUInt16BE(principal.length, 0);
  return Buffer.concat([Buffer.from([REQUEST]), r.id, Buffer.from([r.cleanStart ? 1 : 0, from.length]), from, plen, principal, Buffer.from(r.clientId)]);
}

export function encodeAck(id: Buffer, refused: boolean): Buffer {
  return Buffer.concat([Buffer.from([ACK]), id, Buffer.from([refused ? 1 : 0])]);
}

export function decodeTakeover(b: Buffer): TakeoverRequest | TakeoverAck | undefined {
  if (b.length < 9) return undefined;
  const id = Buffer.from(b.subarray(1, 9));
  // An acknowledgement of the previous release has no refusal byte: it never refused.
  if (b[0] === ACK) return { type: ACK, id, refused: b[9] === 1 };
  if (b[0] !== REQUEST || b.length < 11) return undefined;
  const fromLen = b[10]!;
  if (b.length < 11 + fromLen) return undefined;
  let o = 11 + fromLen;
  if (b.length < o + 2) return undefined;
  const plen = b.readUInt16BE(o);
  o += 2;
  if (b.length < o + plen) return undefined;
  return { type: REQUEST, id, cleanStart: b[9] === 1, from: b.toString('utf8', 11, 11 + fromLen), principal: b.toString('utf8', o, o + plen), clientId: b.toString('utf8', o + plen) };
}

/** Take-overs waiting for their answer at once; more wait for the timeout instead. */
const MAX_PENDING = 10_000;

export interface TakeoverExchangeOptions {
  bus: Bus;
  nodeId: string;
  /** How long an asking node waits for the holder's answer before it resumes from the database. */
  timeoutMs: number;
  /** This node hands a session over when asked (SessionHost.handOver): true when it refused. */
  handOver: (clientId: string, principal: string, cleanStart: boolean) => Promise<boolean>;
  onError: (err: unknown, context: string) => void;
  onInfo: (message: string, details: Record<string, unknown>) => void;
}

/** Both ends of the take-over on this node's bus topic: asking another node, and answering those that ask. */
export class TakeoverExchange {
  readonly #o: TakeoverExchangeOptions;
  /** Requests waiting for their answer, by id: called with whether the holder refused. */
  readonly #pending = new Map<string, (refused: boolean) => void>();
  readonly #unsubscribe: () => void;
  #closed = false;

  constructor(options: TakeoverExchangeOptions) {
    this.#o = options;
    this.#unsubscribe = options.bus.subscribe(takeoverTopic(options.nodeId), (_t, payload) => this.#onMessage(payload));
  }

  /** Asks `holder` to hand the session over; true when it refused (another principal's session). */
  ask(holder: string, clientId: string, principal: string, cleanStart: boolean): Promise<boolean> {
    const { timeoutMs } = this.#o;
    if (this.#pending.size >= MAX_PENDING) return new Promise((r) => setTimeout(() => r(false), timeoutMs).unref());
    const id = randomBytes(8);
    const key = id.toString('hex');
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(key);
        this.#o.onInfo('mqtt take-over: no answer from the holding node, resuming from the database', { clientId, node: holder });
        resolve(false);
      }, timeoutMs).unref();
      this.#pending.set(key, (refused) => {
        clearTimeout(timer);
        this.#pending.delete(key);
        resolve(refused);
      });
      this.#o.bus.publish(takeoverTopic(holder), encodeRequest({ id, cleanStart, from: this.#o.nodeId, principal, clientId }));
    });
  }

  /** Every waiting request resolves now, as if unanswered (this node is fenced off or closing). */
  abandon(): void {
    for (const done of this.#pending.values()) done(false);
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe();
    this.abandon();
  }

  #onMessage(payload: Buffer): void {
    const m = decodeTakeover(payload);
    if (m === undefined) return;
    if (m.type === ACK) return this.#pending.get(m.id.toString('hex'))?.(m.refused);
    void this.#answer(m);
  }

  async #answer(m: TakeoverRequest): Promise<void> {
    let refused = false;
    try {
      refused = await this.#o.handOver(m.clientId, m.principal, m.cleanStart);
    } catch (err) {
      this.#o.onError(err, `hand over the session of ${JSON.stringify(m.clientId)}`);
    }
    if (!this.#closed) this.#o.bus.publish(takeoverTopic(m.from), encodeAck(m.id, refused));
  }
}
