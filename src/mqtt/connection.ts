/**
 * The I/O of one client connection, and nothing else: bytes from the stream go through the decoder to
 * the channel; bytes from the channel go to the stream. Backpressure both ways: reading stops while the
 * channel works on a packet asynchronously (CONNECT) and while the stream is not draining what we
 * wrote; writes made in one tick go out in one batch (cork/uncork).
 */
import type { Duplex } from 'node:stream';
import type { Packet } from 'mqtt-packet';
import { Channel, type ChannelIO, type ConnectionMeta } from './channel.js';
import { PacketDecoder } from './codec.js';
import type { BrokerContext } from './context.js';
import type { MqttError } from './errors.js';

/** How long a closing connection may take to flush before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;

/** Sends what a connection wrote during one tick (one callback per tick, shared, no closure). */
function uncorkAfterTick(c: Connection): void {
  c.uncork();
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
  #corked = false;
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
    const stream = this.#stream;
    if (!this.#corked) {
      this.#corked = true;
      stream.cork();
      process.nextTick(uncorkAfterTick, this);
    }
    if (!stream.write(bytes) && !this.#congested) {
      this.#congested = true;
      this.#flow();
      stream.once('drain', () => {
        this.#congested = false;
        this.#flow();
        this.channel.drained();
      });
    }
  }

  /** Sends what was written during this tick, in one write. */
  uncork(): void {
    this.#corked = false;
    this.#stream.uncork();
  }

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const stream = this.#stream;
    stream.end();
    // A peer that does not read must not hold the socket open.
    setTimeout(() => stream.destroy(), CLOSE_GRACE_MS).unref();
  }

  /** Bytes from the stream. */
  received(chunk: Buffer): void {
    this.#ctx.stats.wireBytesIn += chunk.length;
    const { packets, error } = this.#decoder.push(chunk);
    if (error !== null) this.#decodeError = error;
    if (this.#backlog === undefined) {
      if (packets.length === 0 && error === null) return;
      this.#backlog = packets;
      this.#next = 0;
    } else {
      for (const p of packets) this.#backlog.push(p);
    }
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
        return;
      }
      const r = this.channel.receive(backlog[this.#next++]!);
      if (r !== undefined) {
        this.#busy = true;
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
