/**
 * What a running hub does when told (through the admin socket) that a device changed in the database:
 * it re-reads the device rather than trusting the message, and if the device is revoked or gone it
 * closes the device's tunnel at once (GOAWAY REVOKED) and its MQTT connections (DISCONNECT 0x98).
 */
import type { Logger } from 'pino';
import type { Authenticator } from '../core/auth/authenticator.js';
import type { MqttService } from '../mqtt/hub/service.js';
import { DEVICE_REVOKED_REASON } from '../relay/edge/tunnel-server.js';
import { ErrorCode } from '../relay/protocol/frames.js';
import type { TunnelRouter } from '../relay/router.js';
import type { Store } from '../store/store.js';

export interface DeviceUpdateDeps {
  store: Store;
  auth: Authenticator;
  /** Reaches the device's tunnel wherever it is. */
  router: TunnelRouter;
  mqtt: MqttService | undefined;
  log: Logger;
}

export async function applyDeviceUpdate(deps: DeviceUpdateDeps, id: string): Promise<Record<string, unknown>> {
  const device = await deps.store.getDevice(id);
  deps.auth.forgetDevice(id);
  const refused = device === undefined || device.revokedAt !== null;
  if (!refused) return { id, revoked: false, tunnelClosed: false, mqttClosed: 0 };
  const reason = device === undefined ? 'device removed' : DEVICE_REVOKED_REASON;
  const tunnelClosed = await deps.router.closeTunnel(id, ErrorCode.REVOKED, reason);
  const mqttClosed = deps.mqtt?.disconnectDevice(id, reason) ?? 0;
  deps.log.info({ deviceId: id, reason, tunnelClosed, mqttClosed }, 'device refused from now on');
  return { id, revoked: true, tunnelClosed, mqttClosed };
}
