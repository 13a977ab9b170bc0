/**
 * The I/O of one client connection, and nothing else: bytes from the stream go through the decoder to
 * the channel; bytes from the channel go to the stream. Backpressure both ways: reading stops while the
 * channel works on a packet asynchronously (CONNECT) and while the stream is not draining what we
 * wrote; what a connection is given during one tick goes out in one write at the end of it.
 */
import type { Duplex } from 'node:stream';
import type { Packet } from 'mqtt-packet';
import { Channel, type ChannelIO, type ConnectionMeta } from './channel.js';
import { PacketDecoder } from './codec.js';
import type { BrokerContext } from './context.js';
import type { MqttError } from './errors.js';

/** How long a closing connection may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;
/**
 * Bytes a connection may hold for the end of the tick; more are written at once, so that the stream's
 * own high-water mark (and with it `congested`, which the outbox obeys) sees them without delay.
 */
const HOLD_BYTES = 16_384;

/**
 * Connections holding bytes for the end of this tick, written by one callback for all of them: one
 * `process.nextTick` per tick instead of one per connection, and no cork/uncork (which makes Node's
 * Writable keep a record per write and go through writev).
 */
const holding: Connection[] = [];
let flushQueued = false;

function flushHolding(): void {
  flushQueued = false;
  // A flush may hand bytes to another connection (never to itself): they join the list and go out too.
  for (let i = 0; i < holding.length; i++) holding[i]!.flush();
  // pop(), not `length = 0`, which would drop the array's storage and make it allocate again next tick.
  while (holding.length > 0) holding.pop();
}

/**
 * The packets of the read being handed to a channel, one array shared by every connection: nearly
 * every read is handled synchronously to the end, and then allocates no array. A connection that has to
 * wait (an asynchronous CONNECT) keeps what is left in its own. Emptied with pop(), like `holding`.
 */
const decoded: Packet[] = [];
let decodedInUse = false;

function takeDecoded(): Packet[] {
  if (decodedInUse) return [];
  decodedInUse = true;
  return decoded;
}

function releaseDecoded(packets: Packet[]): void {
  if (packets !== decoded) return;
  while (decoded.length > 0) decoded.pop();
  decodedInUse = false;
}

/** Who keeps the list of open connections (the Broker): told once a connection's transport closed. */
export interface ConnectionOwner {
  connectionClosed(c: Connection): void;
}

/**
 * Each stream carries its Connection under this key, so that the stream's listeners are four functions
 * shared by every connection rather than four closures (and their contexts) per connection.
 */
const CONNECTION = Symbol('mqtt.connection');
type Carrier = Duplex & { [CONNECTION]: Connection };

function onStreamData(this: Carrier, chunk: Buffer): void {
  this[CONNECTION].received(chunk);
}

function onStreamEnd(this: Carrier): void {
  this[CONNECTION].end();
}

function onStreamError(this: Duplex): void {
  this.destroy();
}

function onStreamClose(this: Carrier): void {
  this[CONNECTION].closed();
}

export class Connection implements ChannelIO {
  readonly channel: Channel;
  readonly #stream: Duplex;
  readonly #ctx: BrokerContext;
  readonly #decoder: PacketDecoder;
  readonly #owner: ConnectionOwner;
  /** Packets decoded and not yet handed to the channel; undefined when there are none. */
  #backlog: Packet[] | undefined;
  #next = 0;
  #decodeError: MqttError | null = null;
  #busy = false;
  #congested = false;
  /** Bytes held for the end of the tick: the first buffer, then any more (see `holding`). */
  #held: Buffer | undefined;
  #heldMore: Buffer[] | undefined;
  #heldBytes = 0;
  #ended = false;
  #paused = false;

  constructor(ctx: BrokerContext, stream: Duplex, meta: ConnectionMeta, owner: ConnectionOwner) {
    this.#ctx = ctx;
    this.#stream = stream;
    this.#owner = owner;
    this.#decoder = new PacketDecoder(ctx.options.maxPacketBytes);
    this.channel = new Channel(ctx, this, meta);
    (stream as Carrier)[CONNECTION] = this;
    stream.on('data', onStreamData);
    stream.on('end', onStreamEnd);
    stream.on('error', onStreamError);
    stream.on('close', onStreamClose);
  }

  get congested(): boolean {
    return this.#congested;
  }

  write(bytes: Buffer): void {
    if (this.#ended) return;
    if (this.#held === undefined) {
      this.#held = bytes;
      this.#heldBytes = bytes.length;
      holding.push(this);
      if (!flushQueued) {
        flushQueued = true;
        process.nextTick(flushHolding);
      }
    } else {
      (this.#heldMore ??= []).push(bytes);
      this.#heldBytes += bytes.length;
    }
    if (this.#heldBytes >= HOLD_BYTES) this.flush();
  }

  /** Writes the bytes held for the end of the tick: one buffer, or the small ones joined into one. */
  flush(): void {
    const first = this.#held;
    if (first === undefined) return;
    const more = this.#heldMore;
    const total = this.#heldBytes;
    this.#held = undefined;
    this.#heldMore = undefined;
    this.#heldBytes = 0;
    const stream = this.#stream;
    // The stream closed under us: what was held has nowhere to go.
    if (stream.destroyed) return;
    let ok: boolean;
    if (more === undefined) ok = stream.write(first);
    else if (total < HOLD_BYTES) {
      more.unshift(first);
      ok = stream.write(Buffer.concat(more, total));
    } else {
      // Something large among them: no copy, one writev.
      stream.cork();
      stream.write(first);
      for (const b of more) stream.write(b);
      stream.uncork();
      ok = stream.writableLength < stream.writableHighWaterMark;
    }
    if (!ok && !this.#congested) {
      this.#congested = true;
      this.#flow();
      stream.once('drain', () => {
        this.#congested = false;
        this.#flow();
        this.channel.drained();
      });
    }
  }

  end(): void {
    if (this.#ended) return;
    this.flush();
    this.#ended = true;
    const stream = this.#stream;
    stream.end();
    // A peer that does not read must not hold the socket open.
    setTimeout(() => stream.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Bytes from the stream. */
  received(chunk: Buffer): void {
    this.#ctx.stats.wireBytesIn += chunk.length;
    let backlog = this.#backlog;
    if (backlog === undefined) {
      backlog = takeDecoded();
      this.#next = 0;
    }
    const error = this.#decoder.push(chunk, backlog);
    if (error !== null) this.#decodeError = error;
    if (this.#backlog === undefined && backlog.length === 0 && error === null) {
      releaseDecoded(backlog);
      return;
    }
    this.#backlog = backlog;
    this.#process();
  }

  /** The stream closed (either side, or an error). */
  closed(): void {
    this.#ended = true;
    this.#backlog = undefined;
    this.channel.transportClosed();
    this.#owner.connectionClosed(this);
  }

  /** Hands packets to the channel one at a time; an asynchronous one holds back those after it. */
  #process(): void {
    const backlog = this.#backlog ?? [];
    while (!this.#busy && this.#next < backlog.length) {
      if (this.channel.state === 'closed') {
        this.#backlog = undefined;
        releaseDecoded(backlog);
        return;
      }
      const r = this.channel.receive(backlog[this.#next++]!);
      if (r !== undefined) {
        this.#busy = true;
        if (backlog === decoded) {
          // The shared array is for this turn only: what waits is kept in one of our own.
          this.#backlog = backlog.slice(this.#next);
          this.#next = 0;
          releaseDecoded(backlog);
        }
        this.#flow();
        void r.finally(() => {
          this.#busy = false;
          this.#process();
        });
        return;
      }
    }
    if (this.#busy) return;
    // Everything handed over: an idle connection keeps no array of old packets (nor the CONNECT).
    this.#backlog = undefined;
    releaseDecoded(backlog);
    if (this.#decodeError !== null) {
      const err = this.#decodeError;
      this.#decodeError = null;
      this.channel.decodeFailed(err);
    }
    this.#flow();
  }

  /** Reads only while the channel is ready for more and the stream drains what we write. */
  #flow(): void {
    if (this.#ended) return;
    const pause = this.#busy || this.#congested;
    if (pause === this.#paused) return;
    this.#paused = pause;
    if (pause) this.#stream.pause();
    else this.#stream.resume();
  }
}
