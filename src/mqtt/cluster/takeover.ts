/**
 * The take-over messages between nodes, on the bus topic `mqtt-sessions/<nodeId>` of the node they are
 * for: a request ("hand over client id X", with clean start and the asking node) and its
 * acknowledgement ("written to the database", or "refused: another principal's session is here").
 * Bytes: a type, an 8-byte request id, then the fields.
 */
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
