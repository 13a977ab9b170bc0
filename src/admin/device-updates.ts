/**
 * What a running hub does when told (through the admin socket, or scaled out on the Bus) that a device changed in the database:
 * it re-reads the device rather than trusting the message, and if the device is revoked or gone it
 * closes the device's tunnel at once (GOAWAY REVOKED) and its MQTT connections (DISCONNECT 0x98).
 */
import type { Logger } from 'pino';
import type { Bus } from '../core/bus.js';
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

/**
 * Scaled out, `cloudrest devices revoke --redis` publishes the device id here (no hub beside the CLI):
 * a channel without wildcards, so Redis counts one receiver per node.
 */
export const DEVICE_UPDATED_TOPIC = 'cluster/device-updated';

/**
 * Every node acts on a published device update with its own tunnels only: the node holding the
 * device's tunnel closes it, and every node drops what it cached about the device.
 */
export function followDeviceUpdates(bus: Bus, deps: DeviceUpdateDeps & { forgetCached(id: string): void }): () => void {
  return bus.subscribe(DEVICE_UPDATED_TOPIC, (_topic, payload) => {
    const id = payload.toString('utf8');
    deps.forgetCached(id);
    applyDeviceUpdate(deps, id).catch((err: unknown) => deps.log.error({ err, deviceId: id }, 'a published device update failed'));
  });
}
