/** PINGREQ (3.1.1 §3.12, 5.0 §3.12): [MQTT-3.12.4-1] answered with PINGRESP. */
import type { IPingreqPacket } from 'mqtt-packet';
import type { Channel } from '../channel.js';

const PINGRESP = Buffer.from([0xd0, 0x00]);

export function handlePingreq(ch: Channel, _p: IPingreqPacket): void {
  ch.ctx.stats.wireBytesOut += PINGRESP.length;
  ch.io.write(PINGRESP);
}
