/**
 * The packets a busy connection is made of, decoded without mqtt-packet's parser: PUBLISH, the QoS
 * acknowledgements and PINGREQ in their common forms. mqtt-packet copies every packet into a buffer
 * list, allocates a packet object with every field and logs through `debug` at each state; at tens of
 * thousands of messages a second that was a third of the broker's time.
 *
 * Each function returns the packet mqtt-packet would have produced (the fields the handlers read), or
 * undefined for anything out of the ordinary (MQTT 5 properties, a reason code, a truncated or invalid
 * field), which then goes through mqtt-packet and its checks as before, so errors are reported the same.
 * The packet is `bytes[start, end)` (a read's chunk may hold several); `body` is where its variable
 * header starts.
 */
import { isUtf8 } from 'node:buffer';
import type { Packet } from 'mqtt-packet';

const ACKS = ['', '', '', '', 'puback', 'pubrec', 'pubrel', 'pubcomp'] as const;
/** First byte of each acknowledgement: PUBREL has the reserved flags 0010 ([MQTT-3.6.1-1]), the others 0000. */
const ACK_FIRST_BYTE = [0, 0, 0, 0, 0x40, 0x50, 0x62, 0x70];

export function fastDecode(bytes: Buffer, start: number, body: number, end: number, version: number): Packet | undefined {
  const first = bytes[start]!;
  const type = first >> 4;
  const length = end - body;
  if (type === 3) return fastPublish(bytes, first, body, end, version);
  if (type >= 4 && type <= 7) {
    // 3.1.1 §3.4-3.7: exactly the packet id; 5.0 §3.4.2.1: no reason code means 0 (Success).
    if (first !== ACK_FIRST_BYTE[type] || length !== 2) return undefined;
    // The reserved flags read as mqtt-packet reads them: PUBREL's 0010 is QoS 1.
    const packet = { cmd: ACKS[type], retain: false, qos: type === 6 ? 1 : 0, dup: false, messageId: bytes.readUInt16BE(body), length } as Packet & { reasonCode?: number };
    if (version === 5) packet.reasonCode = 0;
    return packet;
  }
  if (first === 0xc0 && length === 0) return { cmd: 'pingreq', length } as Packet;
  return undefined;
}

/** PUBLISH (3.1.1 §3.3, 5.0 §3.3), in 5.0 only without properties. */
function fastPublish(bytes: Buffer, first: number, body: number, end: number, version: number): Packet | undefined {
  const qos = (first >> 1) & 3;
  if (qos === 3 || body + 2 > end) return undefined;
  const topicStart = body + 2;
  const topicEnd = topicStart + bytes.readUInt16BE(body);
  if (topicEnd > end || !wellFormedTopic(bytes, topicStart, topicEnd)) return undefined;
  let pos = topicEnd;
  let messageId: number | undefined;
  if (qos > 0) {
    if (pos + 2 > end) return undefined;
    messageId = bytes.readUInt16BE(pos);
    pos += 2;
  }
  if (version === 5) {
    // A property length of 0; anything else is left to mqtt-packet.
    if (pos >= end || bytes[pos] !== 0) return undefined;
    pos++;
  }
  return {
    cmd: 'publish',
    retain: (first & 1) !== 0,
    qos,
    dup: (first & 8) !== 0,
    length: end - body,
    topic: bytes.toString('utf8', topicStart, topicEnd),
    payload: bytes.subarray(pos, end),
    messageId,
  } as Packet;
}

/** [MQTT-1.5.3-1/2] 3.1.1, [MQTT-1.5.4-1/2] 5.0: well-formed UTF-8 without U+0000. ASCII is checked inline. */
function wellFormedTopic(bytes: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const b = bytes[i]!;
    if (b === 0) return false;
    if (b >= 0x80) return isUtf8(bytes.subarray(start, end)) && !bytes.subarray(start, end).includes(0);
  }
  return true;
}
