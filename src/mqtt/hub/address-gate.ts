/**
 * The per-address cap on MQTT connections (--mqtt-max-connections-per-address), shared by the TCP, TLS
 * and WebSocket listeners: a socket is counted from accept (TLS: before the handshake; WebSocket: at
 * the upgrade), before any MQTT byte, so one past the cap is closed at once and costs no CONNECT
 * timeout, no decoder, no session. Refusals are counted for metrics and logged with a summary per
 * interval per address (refusal-log.ts), never one warning each.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { AddressConnections } from '../../core/address-connections.js';
import type { Transport } from '../hooks.js';
import { RefusalLog } from './refusal-log.js';

/** Each admitted socket carries its address key, so one close listener serves every socket (no closure each). */
const ADDRESS_KEY = Symbol('mqtt.addressKey');
type Counted = Duplex & { [ADDRESS_KEY]: string };

export class MqttAddressGate {
  readonly counts: AddressConnections;
  readonly #log: RefusalLog;
  readonly #onClose: (this: Counted) => void;

  /** @param max connections per address (IPv6: per /64); 0 = no limit. */
  constructor(max: number, log: Logger, logIntervalMs?: number) {
    const counts = (this.counts = new AddressConnections(max));
    this.#onClose = function (this: Counted) {
      counts.release(this[ADDRESS_KEY]);
    };
    this.#log = new RefusalLog(log, 'mqtt connections refused: too many from this address (--mqtt-max-connections-per-address)', logIntervalMs);
  }

  /**
   * Counts `socket` against `remoteAddress` until it closes; false when the address is at the cap (the
   * caller then closes it without a word: there is no CONNECT to answer yet).
   */
  admit(socket: Duplex, remoteAddress: string, transport: Transport): boolean {
    const key = this.counts.keyOf(remoteAddress);
    if (!this.counts.acquire(key)) {
      this.#log.refused(key, { transport, limit: this.counts.max });
      return false;
    }
    (socket as Counted)[ADDRESS_KEY] = key;
    socket.once('close', this.#onClose);
    return true;
  }

  stop(): void {
    this.#log.stop();
  }
}
