import { HEADER_BYTES, ErrorCode, FRAME_TYPE_NAMES, ProtocolError, type Frame } from './frames.js';
import { PartialBytes } from './partial-bytes.js';

/**
 * Streaming frame parser: feed it chunks as they arrive, get whole frames out. Memory is bounded by
 * `maxFrameBytes`: a header announcing a larger payload is rejected before any of it is buffered.
 */
export class FrameParser {
  /** The start of a frame whose end has not arrived yet. */
  readonly #held = new PartialBytes();

  constructor(private maxFrameBytes: number) {}

  setMaxFrameBytes(n: number): void {
    this.maxFrameBytes = n;
  }

  /** Calls `onFrame` for every complete frame in the data seen so far. Throws ProtocolError. */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    let buf: Buffer;
    if (this.#held.length === 0) {
      buf = chunk;
    } else {
      // Hold chunks until the frame they start is complete, then join once: a large frame split over
      // many socket reads is copied once, not once per read.
      this.#held.append(chunk);
      if (this.#held.length < this.#need()) return;
      buf = this.#held.take();
    }
    let off = 0;
    while (buf.length - off >= HEADER_BYTES) {
      const type = buf[off]!;
      const length = buf.readUInt32BE(off + 1);
      if (!(type in FRAME_TYPE_NAMES)) throw new ProtocolError(`unknown frame type 0x${type.toString(16)}`);
      if (length > this.maxFrameBytes) {
        throw new ProtocolError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`, ErrorCode.FRAME_TOO_LARGE);
      }
      if (buf.length - off < HEADER_BYTES + length) break;
      const flags = buf[off + 5]!;
      const stream = buf.readUInt32BE(off + 6);
      const payload = buf.subarray(off + HEADER_BYTES, off + HEADER_BYTES + length);
      off += HEADER_BYTES + length;
      onFrame({ type, flags, stream, payload });
    }
    // A small tail is copied (it does not pin a large socket chunk); a large one is kept as it is.
    if (off < buf.length) this.#held.append(buf.subarray(off));
  }

  /** Bytes needed to complete the frame whose start is buffered (header size until the header is in). */
  #need(): number {
    if (this.#held.length < HEADER_BYTES) return HEADER_BYTES;
    // peek() joins a header split over chunks once, keeping the result: joining it afresh on every
    // call would copy everything held on every read again.
    const head = this.#held.peek(HEADER_BYTES);
    if (!(head[0]! in FRAME_TYPE_NAMES)) return 0; // let push() report it
    const length = head.readUInt32BE(1);
    if (length > this.maxFrameBytes) return 0;
    return HEADER_BYTES + length;
  }

  /** Bytes of an incomplete frame held; nonzero when the peer stopped mid-frame. */
  get pending(): number {
    return this.#held.length;
  }
}
