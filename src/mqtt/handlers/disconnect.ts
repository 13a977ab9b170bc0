/**
 * DISCONNECT from a client (3.1.1 §3.14, 5.0 §3.14). The will is discarded ([MQTT-3.14.4-3]) unless a v5
 * client asks for it with 0x04; a v5 client may change the Session Expiry Interval on the way out.
 */
import type { IDisconnectPacket } from 'mqtt-packet';
import type { Channel } from '../channel.js';
import { RC } from '../reason-codes.js';

export function handleDisconnect(ch: Channel, p: IDisconnectPacket): void {
  if (ch.version !== 5 || ch.state !== 'connected') return ch.close(false);
  const session = ch.session!;
  const expiry = p.properties?.sessionExpiryInterval;
  if (expiry !== undefined) {
    // [MQTT-3.14.2-2] from 0 in CONNECT to non-zero here is a Protocol Error.
    if (ch.requestedExpiryS === 0 && expiry !== 0) return ch.disconnect(RC.PROTOCOL_ERROR, 'Session Expiry Interval was 0 in CONNECT');
    session.expiryIntervalS = Math.min(expiry, ch.ctx.options.maxSessionExpiryS);
  }
  // [MQTT-3.14.4-?] the server sends no DISCONNECT back; it closes.
  ch.close(p.reasonCode === RC.DISCONNECT_WITH_WILL);
}
