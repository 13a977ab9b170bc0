/**
 * What mqtt-packet's parser leaves to the application: packet direction, fixed lengths, repeated
 * properties, and CONNECT flags it does not check.
 */
import type { Packet } from 'mqtt-packet';
import { MqttError, malformed, protocolError } from './errors.js';
import { RC } from './reason-codes.js';

/** Properties that may appear more than once in a packet (5.0 §2.2.2.2); any other repeated is a Protocol Error. */
const REPEATABLE = new Set(['userProperties', 'subscriptionIdentifier']);

/** Checks mqtt-packet leaves to the application: packet direction, fixed lengths, repeated properties. */
export function checkPacket(packet: Packet, version: number): MqttError | null {
  const length = packet.length ?? 0;
  switch (packet.cmd) {
    case 'connack':
    case 'suback':
    case 'unsuback':
    case 'pingresp':
      return protocolError(`${packet.cmd.toUpperCase()} is sent by servers only`);
    case 'pingreq':
      if (length !== 0) return malformed('PINGREQ with a payload');
      break;
    case 'disconnect':
      if (version < 5 && length !== 0) return malformed('DISCONNECT with a payload');
      break;
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      if (version < 5 && length !== 2) return malformed(`${packet.cmd.toUpperCase()} must have a remaining length of 2`);
      break;
    case 'connect':
      if (packet.will !== undefined && (packet.will.qos ?? 0) > 2) return malformed('Will QoS 3'); // [MQTT-3.1.2-14]
      // 3.1.1 [MQTT-3.1.2-22]: a password needs a user name (5.0 lifts this).
      if (packet.protocolVersion !== 5 && packet.password !== undefined && packet.username === undefined) return malformed('password without user name');
      if (packet.protocolId === 'MQIsdp' && packet.protocolVersion !== 3) return new MqttError(RC.UNSUPPORTED_PROTOCOL_VERSION, 'MQIsdp is protocol level 3');
      if (packet.protocolId === 'MQTT' && packet.protocolVersion === 3) return new MqttError(RC.UNSUPPORTED_PROTOCOL_VERSION, 'protocol level 3 is MQIsdp');
      if (packet.will?.properties !== undefined && hasRepeated(packet.will.properties)) return protocolError('a will property appears twice');
      break;
    default:
      break;
  }
  const props = (packet as { properties?: Record<string, unknown> }).properties;
  if (props !== undefined && hasRepeated(props)) return protocolError('a property appears twice');
  return null;
}

function hasRepeated(props: object): boolean {
  for (const [k, v] of Object.entries(props)) if (Array.isArray(v) && !REPEATABLE.has(k)) return true;
  return false;
}
