/**
 * The protocol state machine of one connection (EMQX's emqx_channel): packets in, packets out through
 * ChannelIO; no socket in sight. Each packet type is handled in handlers/; this file holds the state
 * they share, the timers (CONNECT timeout, keep alive) and the way a connection ends.
 */
import type { Packet, QoS } from 'mqtt-packet';
import { encode, PROTOCOL_MAX_PACKET_BYTES } from './codec.js';
import type { BrokerContext } from './context.js';
import type { DeadlineHolder } from './deadlines.js';
import { MqttError } from './errors.js';
import type { PendingConnect } from './handlers/connack.js';
import { HANDLERS } from './handlers/index.js';
import type { Transport } from './hooks.js';
import { remainingExpiryS, type Message } from './message.js';
import type { Outgoing, OutboxTarget } from './outbox.js';
import { encodePublish, publishSize, type DeliveryFields } from './publish-encoder.js';
import { RC } from './reason-codes.js';
import type { Session } from './session.js';
import type { TopicAliasesOut } from './topic-alias.js';

/** The I/O side of a connection, as the channel sees it (connection.ts implements it). */
export interface ChannelIO {
  write(bytes: Buffer): void;
  /** True while the transport is not draining what was written. */
  readonly congested: boolean;
  /** Flushes what was written, then closes the transport. */
  end(): void;
}

export interface ConnectionMeta {
  remoteAddress: string;
  transport: Transport;
}

export type ChannelState = 'new' | 'connecting' | 'authenticating' | 'connected' | 'closed';

export interface Will {
  /** The will as a message; its expiry is counted from when it is published. */
  message: Message;
  delayS: number;
  expiryS: number | undefined;
}

const CONNACK_UNACCEPTABLE_VERSION = Buffer.from([0x20, 0x02, 0x00, 0x01]);
const ACK_FIRST_BYTE = { puback: 0x40, pubrec: 0x50, pubcomp: 0x70 } as const;

export class Channel implements OutboxTarget, DeadlineHolder {
  state: ChannelState = 'new';
  version: 3 | 4 | 5 = 4;
  clientId = '';
  principal = '';
  /** What the client authenticated with, as the authenticate hook named it (Broker.disconnectCredential). */
  credential: string | undefined;
  username: string | undefined;
  session: Session | undefined;
  will: Will | undefined;
  keepaliveS = 0;
  // What the client told us in CONNECT (5.0 §3.1.2.11).
  clientReceiveMaximum = 65_535;
  clientMaxPacketBytes = PROTOCOL_MAX_PACKET_BYTES;
  problemInformation = true;
  /** Topic aliases the client defined for this connection ([MQTT-3.3.2-7]: they die with it); made on first use. */
  aliasesIn: Map<number, string> | undefined;
  aliasesOut: TopicAliasesOut | undefined;
  /** QoS 1 PUBLISHes not yet acknowledged by us, and QoS 2 not yet completed: counted against our Receive Maximum. */
  incomingInflight = 0;
  /** QoS 2 packet ids received on this connection and not yet completed; made on first use. */
  qos2Here: Set<number> | undefined;
  /** The CONNECT being processed, until CONNACK. */
  pending: PendingConnect | undefined;
  /** Session Expiry Interval the CONNECT asked for (5.0 [MQTT-3.14.2-2] checks DISCONNECT against it). */
  requestedExpiryS = 0;
  /** Authentication Method of an enhanced authentication that succeeded, for re-authentication. */
  authMethod: string | undefined;
  /** Set when a newer connection took the session over: the session is handed on, not ended. */
  takenOver = false;
  /** State of an MQTT 5 enhanced authentication in progress (handlers/auth.ts). */
  auth: { method: string; step: number; state: unknown } | undefined;
  // DeadlineHolder (deadlines.ts): the CONNECT timeout, then the keep alive.
  deadlineAt = 0;
  deadlineIndex = -1;
  #lastPacketAt: number;
  /** 1.5 times the keep alive, in ms; 0 = none (or CONNECT not accepted yet). */
  #keepaliveLimitMs = 0;
  #ackChain: Promise<void> | undefined;
  #acksPending = 0;

  constructor(
    readonly ctx: BrokerContext,
    readonly io: ChannelIO,
    readonly meta: ConnectionMeta,
  ) {
    this.#lastPacketAt = ctx.now();
    // 5.0 §3.1.4: a server closes a connection that does not complete CONNECT (authentication
    // included) in reasonable time; the keep alive replaces this deadline at CONNACK.
    ctx.deadlines.schedule(this, this.#lastPacketAt + ctx.options.connectTimeoutMs);
  }

  /** Read through a getter so that TypeScript does not narrow it across an await. */
  get closed(): boolean {
    return this.state === 'closed';
  }

  get canWrite(): boolean {
    return !this.io.congested;
  }

  get sendWindow(): number {
    return Math.min(this.clientReceiveMaximum, this.ctx.options.maxInflightPerClient);
  }

  /** Handles one packet; a returned promise means "give me no other packet until it settles". */
  receive(packet: Packet): void | Promise<void> {
    if (this.state === 'closed') return;
    this.#lastPacketAt = this.ctx.now();
    // [MQTT-3.1.0-1] the first packet must be CONNECT; until it is, nothing else is processed.
    if (this.state === 'new' && packet.cmd !== 'connect') return this.close(false);
    if (this.state === 'authenticating' && packet.cmd !== 'auth' && packet.cmd !== 'disconnect') {
      return this.fail(new MqttError(RC.PROTOCOL_ERROR, `${packet.cmd.toUpperCase()} during authentication`));
    }
    try {
      const r = HANDLERS[packet.cmd](this, packet as never);
      if (r !== undefined) return r.catch((err: unknown) => this.fail(err));
    } catch (err) {
      this.fail(err);
    }
  }

  /** Ends the connection for a protocol violation or an internal failure, with its reason code. */
  fail(err: unknown): void {
    if (err instanceof MqttError) return this.disconnect(err.reasonCode, err.message);
    this.ctx.hooks.onError(err, `client ${JSON.stringify(this.clientId)}`);
    this.disconnect(RC.IMPLEMENTATION_SPECIFIC_ERROR);
  }

  /** Server-side DISCONNECT (5.0 §3.14; 3.1.1 has no server DISCONNECT, just the close), then close. */
  disconnect(reasonCode: number, reasonString?: string, sendWill = true): void {
    if (this.state === 'closed') return;
    if (this.version === 5 && this.state !== 'new') {
      this.send({ cmd: 'disconnect', reasonCode, ...(reasonString !== undefined ? { properties: { reasonString } } : {}) });
    }
    this.close(sendWill);
  }

  /** Closes the transport after what was written; the session and will are dealt with now, once. */
  close(sendWill = true): void {
    if (this.state === 'closed') return;
    const wasConnected = this.state === 'connected';
    this.state = 'closed';
    if (this.credential !== undefined) this.ctx.forgetCredential(this);
    this.ctx.deadlines.cancel(this);
    this.io.end();
    if (wasConnected) this.ctx.channelClosed(this, sendWill);
  }

  /** The codec found the input invalid: the packets before it were handled, now the connection ends. */
  decodeFailed(err: MqttError): void {
    if (this.state === 'new' && err.reasonCode === RC.UNSUPPORTED_PROTOCOL_VERSION) {
      // [MQTT-3.1.2-2] 3.1.1: CONNACK 0x01 in the 3.1.1 format, which every version can read.
      this.io.write(CONNACK_UNACCEPTABLE_VERSION);
      return this.close(false);
    }
    if (this.state === 'new') return this.close(false);
    this.fail(err);
  }

  /** The transport closed under us (peer gone, error): an abnormal end unless DISCONNECT came first. */
  transportClosed(): void {
    this.close(true);
  }

  /** Encodes and writes a non-PUBLISH packet, leaving out what the client said it does not want. */
  send(packet: Packet): void {
    if (this.state === 'closed' && packet.cmd !== 'disconnect') return;
    const props = (packet as { properties?: Record<string, unknown> }).properties;
    // [MQTT-3.1.2-29] no Reason String or User Property except on PUBLISH, CONNACK and DISCONNECT.
    if (props !== undefined && !this.problemInformation && packet.cmd !== 'connack' && packet.cmd !== 'disconnect') {
      delete props.reasonString;
      delete props.userProperties;
    }
    let bytes = encode(packet, this.version);
    if (bytes.length > this.clientMaxPacketBytes && props !== undefined) {
      // [MQTT-3.1.2-25] drop the Reason String and User Properties rather than exceed the client's maximum.
      delete props.reasonString;
      delete props.userProperties;
      bytes = encode(packet, this.version);
    }
    this.ctx.stats.wireBytesOut += bytes.length;
    this.io.write(bytes);
  }

  /** True when an acknowledgement given now would go out at once (none is waiting for the store). */
  get acksInOrder(): boolean {
    return this.#ackChain === undefined;
  }

  /**
   * PUBACK / PUBREC / PUBCOMP with reason code 0 (or any 3.1.1 one) in four bytes, without a packet
   * object; other reason codes in 5.0 take send(). For acknowledgements that wait for nothing.
   */
  writeAck(cmd: 'puback' | 'pubrec' | 'pubcomp', packetId: number, reasonCode: number): void {
    if (this.state === 'closed') return;
    if (this.version === 5 && reasonCode !== 0) return this.send({ cmd, messageId: packetId, reasonCode });
    const b = Buffer.allocUnsafe(4);
    b[0] = ACK_FIRST_BYTE[cmd];
    b[1] = 2;
    b.writeUInt16BE(packetId, 2);
    this.ctx.stats.wireBytesOut += 4;
    this.io.write(b);
  }

  /**
   * Sends `make()` once `stored` has settled (an acknowledged message is a stored message), then runs
   * `after`. Acknowledgements keep the order of the packets they answer.
   */
  ackAfter(stored: Promise<void> | undefined, make: () => Packet, after?: () => void): void {
    if (stored === undefined && this.#ackChain === undefined) {
      this.send(make());
      after?.();
      return;
    }
    this.#acksPending++;
    this.#ackChain = (this.#ackChain ?? Promise.resolve())
      .then(() => stored)
      .then(() => {
        if (this.state === 'closed') return;
        this.send(make());
        after?.();
      })
      .finally(() => {
        if (--this.#acksPending === 0) this.#ackChain = undefined;
      });
  }

  /** OutboxTarget: does the encoded PUBLISH fit the client's Maximum Packet Size ([MQTT-3.1.2-24])? */
  fits(o: Outgoing): boolean {
    if (this.clientMaxPacketBytes === PROTOCOL_MAX_PACKET_BYTES) return true;
    return publishSize(o.message, this.#fields(o, false, false), this.version) <= this.clientMaxPacketBytes;
  }

  writePublish(o: Outgoing, dup: boolean): void {
    const bytes = encodePublish(o.message, this.#fields(o, dup, true), this.version);
    const stats = this.ctx.stats;
    stats.messagesOut[o.qos]++;
    stats.bytesOut[o.qos] += o.message.payload.length;
    stats.wireBytesOut += bytes.length;
    this.io.write(bytes);
  }

  writePubrel(packetId: number, reasonCode?: number): void {
    this.send({ cmd: 'pubrel', messageId: packetId, ...(reasonCode !== undefined && this.version === 5 ? { reasonCode } : {}) });
  }

  /** Keep alive (3.1.1 §3.1.2.10, 5.0 §3.1.2.10): no packet for 1.5 times it closes the connection. */
  startKeepalive(seconds: number): void {
    this.#keepaliveLimitMs = seconds * 1500;
    // The first check comes a whole period after CONNACK, however long authentication took.
    if (seconds === 0) this.ctx.deadlines.cancel(this);
    else this.ctx.deadlines.schedule(this, this.ctx.now() + this.#keepaliveLimitMs);
  }

  /** DeadlineHolder: the CONNECT timeout passed, or the keep alive may have. */
  onDeadline(now: number): void {
    if (this.state !== 'connected') return this.close(false);
    const idleMs = now - this.#lastPacketAt;
    // [MQTT-3.1.2-24] 3.1.1 / [MQTT-3.1.2-22] 5.0.
    if (idleMs >= this.#keepaliveLimitMs) return this.disconnect(RC.KEEP_ALIVE_TIMEOUT, 'keep alive timeout');
    this.ctx.deadlines.schedule(this, this.#lastPacketAt + this.#keepaliveLimitMs);
  }

  /** The transport drained: send what waited for it. */
  drained(): void {
    if (this.state === 'connected') this.session?.outbox.pump(this);
  }

  #fields(o: Outgoing, dup: boolean, assignAlias: boolean): DeliveryFields {
    const v5 = this.version === 5;
    let topicAlias = 0;
    let omitTopic = false;
    if (v5 && this.aliasesOut !== undefined) {
      const a = assignAlias ? this.aliasesOut.assign(o.message.topic) : this.aliasesOut.peek(o.message.topic);
      topicAlias = a.alias;
      omitTopic = a.known;
    }
    return {
      qos: o.qos as QoS,
      retain: o.retain,
      dup,
      packetId: o.packetId,
      topicAlias,
      omitTopic,
      subscriptionIds: v5 ? o.subscriptionIds : undefined,
      expiryS: v5 ? remainingExpiryS(o.message, this.ctx.now()) : undefined,
    };
  }
}
