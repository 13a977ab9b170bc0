import { REASON_NAMES, RC } from './reason-codes.js';

/**
 * A violation of the MQTT protocol by the peer. `reasonCode` is what goes on the wire (DISCONNECT in
 * v5; v3.1.1 has no reason codes, so the connection is just closed, [MQTT-4.8.0-1] 3.1.1).
 */
export class MqttError extends Error {
  override readonly name = 'MqttError';
  constructor(
    readonly reasonCode: number,
    message?: string,
    options?: { cause?: unknown },
  ) {
    super(message ?? REASON_NAMES[reasonCode] ?? `reason code 0x${reasonCode.toString(16)}`, options);
  }
}

export const malformed = (message: string): MqttError => new MqttError(RC.MALFORMED_PACKET, message);
export const protocolError = (message: string): MqttError => new MqttError(RC.PROTOCOL_ERROR, message);
