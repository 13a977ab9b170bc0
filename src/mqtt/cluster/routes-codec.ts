/**
 * Route deltas between nodes, in bytes (no JSON): one frame per batch of changes of one node.
 *
 *   u8 version (1) | u8 node id length | node id (UTF-8) | { u8 op (1 add, 0 remove) | u16 key length | key }*
 *
 * A key is a topic filter as a client subscribed to it, `$share/group/` included.
 */

export interface RouteDelta {
  readonly add: boolean;
  readonly key: string;
}

export interface RouteFrame {
  readonly nodeId: string;
  readonly deltas: RouteDelta[];
}

const VERSION = 1;
/** A node id fits in one length byte. */
const MAX_NODE_ID_BYTES = 255;

export function encodeRouteFrame(nodeId: string, deltas: readonly RouteDelta[]): Buffer {
  const id = Buffer.from(nodeId);
  if (id.length > MAX_NODE_ID_BYTES) throw new RangeError('node id over 255 bytes');
  let size = 2 + id.length;
  const keys = deltas.map((d) => Buffer.from(d.key));
  for (const k of keys) size += 3 + k.length;
  const out = Buffer.allocUnsafe(size);
  out[0] = VERSION;
  out[1] = id.length;
  id.copy(out, 2);
  let at = 2 + id.length;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    // A key is an MQTT topic filter: at most 65,535 bytes, so its length fits 16 bits.
    out[at] = deltas[i]!.add ? 1 : 0;
    out.writeUInt16BE(k.length, at + 1);
    k.copy(out, at + 3);
    at += 3 + k.length;
  }
  return out;
}

/** The frame in `b`; throws RangeError when it is truncated or of another version. */
export function decodeRouteFrame(b: Buffer): RouteFrame {
  if (b.length < 2 || b[0] !== VERSION) throw new RangeError('not a route frame');
  const idLength = b[1]!;
  let at = 2 + idLength;
  if (at > b.length) throw new RangeError('truncated route frame');
  const nodeId = b.toString('utf8', 2, at);
  const deltas: RouteDelta[] = [];
  while (at < b.length) {
    if (at + 3 > b.length) throw new RangeError('truncated route frame');
    const op = b[at]!;
    const length = b.readUInt16BE(at + 1);
    const end = at + 3 + length;
    if (end > b.length || op > 1) throw new RangeError('truncated route frame');
    deltas.push({ add: op === 1, key: b.toString('utf8', at + 3, end) });
    at = end;
  }
  return { nodeId, deltas };
}
