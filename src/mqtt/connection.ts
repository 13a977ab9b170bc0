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

export class Connection implements ChannelIO {
  readonly channel: Channel;
  readonly #stream: Duplex;
  readonly #ctx: BrokerContext;
  readonly #decoder: PacketDecoder;
  #backlog: Packet[] = [];
  #next = 0;
  #decodeError: MqttError | null = null;
  #busy = false;
  #congested = false;
  #corked = false;
  #ended = false;
  #paused = false;

  constructor(ctx: BrokerContext, stream: Duplex, meta: ConnectionMeta, onClose: () => void) {
    this.#ctx = ctx;
    this.#stream = stream;
    this.#decoder = new PacketDecoder(ctx.options.maxPacketBytes);
    this.channel = new Channel(ctx, this, meta);
    stream.on('data', (chunk: Buffer) => this.#onData(chunk));
    stream.on('end', () => this.end());
    stream.on('error', () => stream.destroy());
    stream.on('close', () => {
      this.#ended = true;
      this.channel.transportClosed();
      onClose();
    });
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
      process.nextTick(() => {
        this.#corked = false;
        stream.uncork();
      });
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

  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    const stream = this.#stream;
    stream.end();
    // A peer that does not read must not hold the socket open.
    setTimeout(() => stream.destroy(), CLOSE_GRACE_MS).unref();
  }

  #onData(chunk: Buffer): void {
    this.#ctx.stats.wireBytesIn += chunk.length;
    const { packets, error } = this.#decoder.push(chunk);
    if (error !== null) this.#decodeError = error;
    if (this.#next === this.#backlog.length) {
      this.#backlog = packets;
      this.#next = 0;
    } else {
      for (const p of packets) this.#backlog.push(p);
    }
    this.#process();
  }

  /** Hands packets to the channel one at a time; an asynchronous one holds back those after it. */
  #process(): void {
    const backlog = this.#backlog;
    while (!this.#busy && this.#next < backlog.length) {
      if (this.channel.state === 'closed') {
        this.#backlog = [];
        this.#next = 0;
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
    if (this.#decodeError !== null && this.#next === this.#backlog.length) {
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
