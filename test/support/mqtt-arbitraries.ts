/**
 * fast-check arbitraries for the packets an MQTT client sends (3.1, 3.1.1 and 5.0, properties
 * included), for the decoder fuzz tests (test/fuzz-mqtt-*.test.ts). Each packet is valid for its
 * protocol level, in the shape mqtt-packet parses it into, so that a round trip can compare fields.
 */
import fc from 'fast-check';
import { generate, type Packet } from 'mqtt-packet';

export type Version = 3 | 4 | 5;

/** Well-formed UTF-8 without U+0000 ([MQTT-1.5.3-1/2], [MQTT-1.5.4-1/2]). */
const text = (maxLength: number, minLength = 0): fc.Arbitrary<string> =>
  fc.string({ unit: 'grapheme', minLength, maxLength }).filter((s) => !s.includes('\u0000') && Buffer.byteLength(s) <= 0xffff);
const bytes = (maxLength: number): fc.Arbitrary<Buffer> => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));
const level = fc.string({ unit: fc.constantFrom('a', 'b', 'z', '0', '-', 'é', ' ', '$'), maxLength: 6 });
/** A topic name: no wildcards, at least one character. */
const topicName = fc.array(level, { minLength: 1, maxLength: 4 }).map((l) => l.join('/')).filter((t) => t.length > 0);
/** A topic filter: levels, `+` for any level, `#` only last. */
const topicFilter = fc.tuple(fc.array(fc.oneof(level.filter((l) => l.length > 0), fc.constant('+')), { minLength: 1, maxLength: 4 }), fc.boolean())
  .map(([l, hash]) => [...l, ...(hash ? ['#'] : [])].join('/'));
const u16 = fc.integer({ min: 1, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const qos = fc.constantFrom(0, 1, 2) as fc.Arbitrary<0 | 1 | 2>;

/** fc.record with only some keys required (others absent, not undefined), with a plain prototype. */
function partial<T extends object>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }, required: Array<keyof T> = []): fc.Arbitrary<Partial<T>> {
  return fc.record(model, { requiredKeys: required, noNullPrototype: true }) as fc.Arbitrary<Partial<T>>;
}
/** Properties, or none at all (an empty set is not sent, so it would not come back as `{}`). */
function props<T extends object>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<Partial<T> | undefined> {
  return fc.option(partial(model).filter((p) => Object.keys(p).length > 0), { nil: undefined, freq: 2 });
}
const userProperties = fc.dictionary(text(8, 1), text(12), { minKeys: 1, maxKeys: 3, noNullPrototype: true });
const reasonString = text(20);

/** Drops keys whose value is undefined, so the packet compares with what the parser builds. */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export function connectArb(version: Version): fc.Arbitrary<Packet> {
  const willProps = version === 5
    ? props({ willDelayInterval: u32, payloadFormatIndicator: fc.boolean(), messageExpiryInterval: u32, contentType: text(10), responseTopic: topicName, correlationData: bytes(8), userProperties })
    : fc.constant(undefined);
  const will = fc.option(fc.record({ topic: topicName, payload: bytes(40), qos, retain: fc.boolean(), properties: willProps }, { noNullPrototype: true }).map(defined), { nil: undefined });
  const connectProps = version === 5
    ? props({
      sessionExpiryInterval: u32, receiveMaximum: u16, maximumPacketSize: fc.integer({ min: 1, max: 0xffffffff }), topicAliasMaximum: fc.integer({ min: 0, max: 0xffff }),
      requestResponseInformation: fc.boolean(), requestProblemInformation: fc.boolean(), userProperties, authenticationMethod: text(10, 1), authenticationData: bytes(16),
    })
    : fc.constant(undefined);
  return fc.record({
    clientId: text(23, version === 3 ? 1 : 0),
    keepalive: fc.integer({ min: 0, max: 0xffff }),
    clean: fc.boolean(),
    username: fc.option(text(16), { nil: undefined }),
    password: fc.option(bytes(16), { nil: undefined }),
    will,
    properties: connectProps,
  }, { noNullPrototype: true }).map((c) => defined({
    cmd: 'connect' as const,
    protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
    protocolVersion: version,
    ...c,
    // [MQTT-3.1.3-7]: an empty client id needs a clean session.
    clean: c.clientId === '' || c.clean,
    // 3.1.1 [MQTT-3.1.2-22]: a password needs a user name (5.0 lifts this, mqtt-packet's encoder does not).
    password: c.username === undefined ? undefined : c.password,
  }) as Packet);
}

function publishArb(version: Version): fc.Arbitrary<Packet> {
  const publishProps = version === 5
    ? props({ payloadFormatIndicator: fc.boolean(), messageExpiryInterval: u32, contentType: text(10), responseTopic: topicName, correlationData: bytes(8), userProperties })
    : fc.constant(undefined);
  return fc.record({ topic: topicName, payload: bytes(64), qos, retain: fc.boolean(), dup: fc.boolean(), messageId: u16, properties: publishProps }, { noNullPrototype: true })
    // [MQTT-3.3.1-2]: DUP is 0 at QoS 0, and only QoS 1 and 2 carry a packet identifier.
    .map((p) => defined({ cmd: 'publish' as const, ...p, dup: p.qos > 0 && p.dup, messageId: p.qos > 0 ? p.messageId : undefined }) as Packet);
}

/** Reason codes each acknowledgement may carry (5.0 §3.4.2.1, §3.5.2.1, §3.6.2.1, §3.7.2.1). */
const ACK_REASONS = {
  puback: [0, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
  pubrec: [0, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99],
  pubrel: [0, 0x92],
  pubcomp: [0, 0x92],
} as const;

function ackArb(version: Version): fc.Arbitrary<Packet> {
  const cmd = fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp') as fc.Arbitrary<keyof typeof ACK_REASONS>;
  return cmd.chain((c) => fc.record({
    cmd: fc.constant(c),
    messageId: u16,
    reasonCode: version === 5 ? fc.constantFrom(...ACK_REASONS[c]) : fc.constant(undefined),
    properties: version === 5 ? props({ reasonString, userProperties }) : fc.constant(undefined),
  }, { noNullPrototype: true })).map((p) => defined(p) as Packet);
}

function subscribeArb(version: Version): fc.Arbitrary<Packet> {
  const subscription = version === 5
    ? fc.record({ topic: topicFilter, qos, nl: fc.boolean(), rap: fc.boolean(), rh: fc.constantFrom(0, 1, 2) }, { noNullPrototype: true })
    : fc.record({ topic: topicFilter, qos }, { noNullPrototype: true });
  return fc.record({
    messageId: u16,
    subscriptions: fc.array(subscription, { minLength: 1, maxLength: 4 }),
    properties: version === 5 ? props({ subscriptionIdentifier: fc.integer({ min: 1, max: 268_435_455 }), userProperties }) : fc.constant(undefined),
  }, { noNullPrototype: true }).map((p) => defined({ cmd: 'subscribe' as const, ...p }) as Packet);
}

function unsubscribeArb(version: Version): fc.Arbitrary<Packet> {
  return fc.record({
    messageId: u16,
    unsubscriptions: fc.array(topicFilter, { minLength: 1, maxLength: 4 }),
    properties: version === 5 ? props({ userProperties }) : fc.constant(undefined),
  }, { noNullPrototype: true }).map((p) => defined({ cmd: 'unsubscribe' as const, ...p }) as Packet);
}

function disconnectArb(version: Version): fc.Arbitrary<Packet> {
  if (version !== 5) return fc.constant({ cmd: 'disconnect' } as Packet);
  return fc.record({
    reasonCode: fc.constantFrom(0, 4, 0x80, 0x81),
    properties: props({ sessionExpiryInterval: u32, reasonString, userProperties }),
  }, { noNullPrototype: true }).map((p) => defined({ cmd: 'disconnect' as const, ...p }) as Packet);
}

function authArb(): fc.Arbitrary<Packet> {
  return fc.record({
    reasonCode: fc.constantFrom(0x18, 0x19),
    properties: partial({ authenticationMethod: text(10, 1), authenticationData: bytes(16), reasonString, userProperties }, ['authenticationMethod']),
  }, { noNullPrototype: true }).map((p) => ({ cmd: 'auth' as const, ...p }) as Packet);
}

/** Any packet a client may send after CONNECT at this level (DISCONNECT last, if at all, is up to the caller). */
export function clientPacketArb(version: Version): fc.Arbitrary<Packet> {
  const arbs = [publishArb(version), ackArb(version), subscribeArb(version), unsubscribeArb(version), fc.constant({ cmd: 'pingreq' } as Packet), disconnectArb(version)];
  if (version === 5) arbs.push(authArb());
  return fc.oneof(...arbs);
}

/** A connection's first packets: a CONNECT, then what follows it, each with its encoding. */
export interface Session {
  version: Version;
  packets: Packet[];
  bytes: Buffer;
}

export function sessionArb(version: Version, maxPackets = 6): fc.Arbitrary<Session> {
  return fc.tuple(connectArb(version), fc.array(clientPacketArb(version), { maxLength: maxPackets })).map(([connect, rest]) => {
    const packets = [connect, ...rest];
    return { version, packets, bytes: Buffer.concat(packets.map((p) => generate(p, { protocolVersion: version }))) };
  });
}

export const anyVersionSessionArb = (maxPackets?: number): fc.Arbitrary<Session> =>
  fc.constantFrom<Version>(3, 4, 5).chain((v) => sessionArb(v, maxPackets));

/** `v` with plain objects for the parser's null-prototype ones (user properties), Buffers kept. */
function plain(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(plain);
  if (v === null || typeof v !== 'object' || Buffer.isBuffer(v)) return v;
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
}

/** The fields of `decoded` that `sent` sets, so a round trip compares what the client put on the wire. */
export function sentFields(decoded: Packet, sent: Packet): Record<string, unknown> {
  const d = decoded as unknown as Record<string, unknown>;
  return Object.fromEntries(Object.keys(sent).map((k) => [k, plain(d[k])]));
}
