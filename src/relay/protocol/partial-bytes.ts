/** Reads smaller than this are copied into a block; larger ones are kept as they are (no copy). */
const SMALL_READ_BYTES = 4096;
/** First capacity of a block; it doubles up to SMALL_READ_BYTES. */
const FIRST_BLOCK_BYTES = 64;

/**
 * The bytes of an incomplete frame or packet, held across socket reads until it is whole (the tunnel's
 * FrameParser, the MQTT PacketDecoder).
 *
 * Holding each read as its own Buffer made a peer that trickles a frame one byte per read cost about
 * 130 bytes of heap per byte held (a Buffer object and its backing store for every read): a 1 MB MQTT
 * packet sent a byte at a time held 140 MB. Small reads are therefore copied into blocks that grow to
 * 4 KiB, so what is held stays within twice its length plus a block; large reads are kept as they are,
 * and a small tail is never a view pinning a large read.
 */
export class PartialBytes {
  #parts: Buffer[] = [];
  /** The block small reads are copied into (the last part, not yet in #parts). */
  #block: Buffer | undefined;
  #blockUsed = 0;
  #length = 0;

  /** Bytes held. */
  get length(): number {
    return this.#length;
  }

  append(piece: Buffer): void {
    const n = piece.length;
    if (n === 0) return;
    this.#length += n;
    if (n >= SMALL_READ_BYTES) {
      this.#seal();
      this.#parts.push(piece);
      return;
    }
    let block = this.#block;
    if (block === undefined || this.#blockUsed + n > block.length) {
      if (block !== undefined && this.#blockUsed + n <= SMALL_READ_BYTES) {
        // Grow: what the block holds moves to one twice as large (amortised, as an array's storage).
        const grown = Buffer.allocUnsafe(Math.min(SMALL_READ_BYTES, Math.max(block.length * 2, this.#blockUsed + n)));
        block.copy(grown, 0, 0, this.#blockUsed);
        block = grown;
      } else {
        // A full block is kept as it is; the next one starts at full size, the peer is trickling.
        const size = block === undefined ? Math.max(FIRST_BLOCK_BYTES, n) : SMALL_READ_BYTES;
        this.#seal();
        block = Buffer.allocUnsafe(size);
      }
      this.#block = block;
    }
    piece.copy(block, this.#blockUsed);
    this.#blockUsed += n;
  }

  /**
   * The first `n` bytes held (n <= length), without consuming them: a view where they are contiguous,
   * else everything held is joined once (a header split over reads is not joined again on every read).
   */
  peek(n: number): Buffer {
    const first = this.#parts[0] ?? this.#block?.subarray(0, this.#blockUsed) ?? Buffer.alloc(0);
    if (first.length >= n) return first.subarray(0, n);
    const joined = this.take();
    this.#parts = [joined];
    this.#length = joined.length;
    return joined.subarray(0, n);
  }

  /** Everything held, followed by `last`, as one Buffer; the holder is left empty. */
  take(last?: Buffer): Buffer {
    this.#seal();
    const parts = this.#parts;
    let length = this.#length;
    if (last !== undefined && last.length > 0) {
      parts.push(last);
      length += last.length;
    }
    this.clear();
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, length);
  }

  clear(): void {
    this.#parts = [];
    this.#block = undefined;
    this.#blockUsed = 0;
    this.#length = 0;
  }

  #seal(): void {
    if (this.#block !== undefined) {
      this.#parts.push(this.#block.subarray(0, this.#blockUsed));
      this.#block = undefined;
      this.#blockUsed = 0;
    }
  }
}
