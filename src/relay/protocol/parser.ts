import { HEADER_BYTES, ErrorCode, FRAME_TYPE_NAMES, ProtocolError, type Frame } from './frames.js';

/**
 * Streaming frame parser: feed it chunks as they arrive, get whole frames out. Memory is bounded by
 * `maxFrameBytes`: a header announcing a larger payload is rejected before any of it is buffered.
 */
export class FrameParser {
  #chunks: Buffer[] = [];
  #buffered = 0;

  constructor(private maxFrameBytes: number) {}

  setMaxFrameBytes(n: number): void {
    this.maxFrameBytes = n;
  }

  /** Calls `onFrame` for every complete frame in the data seen so far. Throws ProtocolError. */
  push(chunk: Buffer, onFrame: (frame: Frame) => void): void {
    let buf: Buffer;
    if (this.#buffered === 0) {
      buf = chunk;
    } else {
      this.#chunks.push(chunk);
      buf = Buffer.concat(this.#chunks, this.#buffered + chunk.length);
      this.#chunks = [];
      this.#buffered = 0;
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
    if (off < buf.length) {
      // Keep the tail; a frame's payload is never larger than maxFrameBytes, so neither is this.
      const rest = buf.subarray(off);
      if (rest.length >= HEADER_BYTES) {
        const length = rest.readUInt32BE(1);
        if (length > this.maxFrameBytes) throw new ProtocolError(`frame of ${length} bytes exceeds the limit`, ErrorCode.FRAME_TOO_LARGE);
      }
      // Copy so a large socket chunk is not pinned by a small tail.
      this.#chunks.push(Buffer.from(rest));
      this.#buffered = rest.length;
    }
  }

  /** Bytes of an incomplete frame held; nonzero when the peer stopped mid-frame. */
  get pending(): number {
    return this.#buffered;
  }
}
