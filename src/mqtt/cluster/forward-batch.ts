/**
 * The envelope of the forwards one node sends another in one Redis PUBLISH, and the confirmation that
 * comes back (docs/mqtt.md "Cluster"), in bytes (no JSON):
 *
 *   batch, on `mqtt:fwd:<to>`:        u8 version (2) | u8 from length | from (node id, UTF-8)
 *                                     | u32 epoch | u32 batch id (0: no confirmation wanted)
 *                                     | { u32 frame length | frame (forward-codec.ts) }*
 *   confirmation, on `mqtt:fwd-ack:<from>`: u8 version (1) | u32 epoch | { u32 batch id }*
 *
 * A batch with a QoS 1/2 message asks for a confirmation: the receiving node sends it once every
 * message of the batch is stored for its persistent sessions (or handed to its connected ones), so
 * the sending node may acknowledge the publisher. The epoch is drawn at random by each run of the
 * sending node, so that a late confirmation meant for a previous run confirms nothing.
 */

const BATCH_VERSION = 2;
const CONFIRM_VERSION = 1;

export interface BatchHeader {
  readonly from: string;
  readonly epoch: number;
  /** 0: the sender waits for no confirmation (QoS 0 only). */
  readonly id: number;
}

export function encodeBatchHeader(h: BatchHeader): Buffer {
  const from = Buffer.from(h.from);
  if (from.length > 255) throw new RangeError('node id over 255 bytes');
  const out = Buffer.allocUnsafe(2 + from.length + 8);
  out[0] = BATCH_VERSION;
  out[1] = from.length;
  from.copy(out, 2);
  out.writeUInt32BE(h.epoch >>> 0, 2 + from.length);
  out.writeUInt32BE(h.id >>> 0, 6 + from.length);
  return out;
}

/**
 * The header of a batch received, and where its frames start. Throws RangeError on a truncated one or
 * another version (a node not upgraded yet: the forward format changed with confirmations).
 */
export function decodeBatchHeader(b: Buffer): BatchHeader & { readonly framesAt: number } {
  if (b.length < 2 || b[0] !== BATCH_VERSION) throw new RangeError('not a forward batch of this version (every node must run the same release)');
  const n = b[1]!;
  if (b.length < 2 + n + 8) throw new RangeError('truncated forward batch header');
  return { from: b.toString('utf8', 2, 2 + n), epoch: b.readUInt32BE(2 + n), id: b.readUInt32BE(6 + n), framesAt: 10 + n };
}

/** A frame with its u32 length before it, as it goes in a batch. */
export function framed(frame: Buffer): Buffer {
  const length = Buffer.allocUnsafe(4);
  length.writeUInt32BE(frame.length, 0);
  return Buffer.concat([length, frame]);
}

/** Calls `fn` with each frame of a batch received, from `at`; throws RangeError on a truncated one. */
export function eachFramed(batch: Buffer, fn: (frame: Buffer) => void, at = 0): void {
  while (at < batch.length) {
    if (at + 4 > batch.length) throw new RangeError('truncated forward batch');
    const end = at + 4 + batch.readUInt32BE(at);
    if (end > batch.length) throw new RangeError('truncated forward batch');
    fn(batch.subarray(at + 4, end));
    at = end;
  }
}

export function encodeConfirmation(epoch: number, ids: readonly number[]): Buffer {
  const out = Buffer.allocUnsafe(5 + 4 * ids.length);
  out[0] = CONFIRM_VERSION;
  out.writeUInt32BE(epoch >>> 0, 1);
  for (let i = 0; i < ids.length; i++) out.writeUInt32BE(ids[i]! >>> 0, 5 + 4 * i);
  return out;
}

export function decodeConfirmation(b: Buffer): { epoch: number; ids: number[] } {
  if (b.length < 5 || b[0] !== CONFIRM_VERSION || (b.length - 5) % 4 !== 0) throw new RangeError('not a forward confirmation');
  const ids: number[] = [];
  for (let at = 5; at < b.length; at += 4) ids.push(b.readUInt32BE(at));
  return { epoch: b.readUInt32BE(1), ids };
}
