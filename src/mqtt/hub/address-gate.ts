/**
 * The per-address cap on MQTT connections (--mqtt-max-connections-per-address), shared by the TCP, TLS
 * and WebSocket listeners: a socket is counted from accept (TLS: before the handshake; WebSocket: at
 * the upgrade), before any MQTT byte, so one past the cap is closed at once and costs no CONNECT
 * timeout, no decoder, no session. Refusals are counted for metrics and logged through the hub's
 * LogLimiter (one line per address per interval, then a summary), never one warning each.
 */
import type { Duplex } from 'node:stream';
import { AddressConnections } from '../../core/address-connections.js';
import type { LogLimiter } from '../../core/log-limiter.js';
import type { Transport } from '../hooks.js';

/** Each admitted socket carries its address key, so one close listener serves every socket (no closure each). */
const ADDRESS_KEY = Symbol('mqtt.addressKey');
type Counted = Duplex & { [ADDRESS_KEY]: string };

export class MqttAddressGate {
  readonly counts: AddressConnections;
  readonly #onClose: (this: Counted) => void;

  /** @param max connections per address (IPv6: per /64); 0 = no limit. */
  constructor(max: number, private readonly refusals: LogLimiter) {
    const counts = (this.counts = new AddressConnections(max));
    this.#onClose = function (this: Counted) {
      counts.release(this[ADDRESS_KEY]);
    };
  }

  /**
   * Counts `socket` against `remoteAddress` until it closes; false when the address is at the cap (the
   * caller then closes it without a word: there is no CONNECT to answer yet).
   */
  admit(socket: Duplex, remoteAddress: string, transport: Transport): boolean {
    const key = this.counts.keyOf(remoteAddress);
    if (!this.counts.acquire(key)) {
      this.refusals.warn('mqtt-address-cap', remoteAddress, { remoteAddress: key, transport, limit: this.counts.max }, 'mqtt connection refused: too many from this address (--mqtt-max-connections-per-address)');
      return false;
    }
    (socket as Counted)[ADDRESS_KEY] = key;
    socket.once('close', this.#onClose);
    return true;
  }
}
