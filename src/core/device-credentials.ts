/**
 * Device credentials, one check for every protocol a device speaks: the agent tunnel's HELLO and the
 * MQTT CONNECT (user name = device id, password = device secret).
 */
import type { DeviceRecord, Store } from '../store/store.js';
import { safeEqualHex, sha256Hex } from './secrets.js';

export const MAX_DEVICE_ID_CHARS = 128;
export const MAX_DEVICE_SECRET_CHARS = 512;

/** True when `secret` is the device's secret (compared as SHA-256 digests, in constant time). */
export function deviceSecretMatches(device: DeviceRecord | undefined, secret: string): device is DeviceRecord {
  return device !== undefined && safeEqualHex(sha256Hex(secret), device.secretHash);
}

/**
 * The device whose id and secret these are; 'revoked' when they are right but the device is revoked
 * (`cloudrest devices revoke`); undefined for an unknown id, a wrong secret or oversized input.
 */
export async function verifyDevice(store: Store, deviceId: string, secret: string): Promise<DeviceRecord | 'revoked' | undefined> {
  if (deviceId.length === 0 || deviceId.length > MAX_DEVICE_ID_CHARS || secret.length > MAX_DEVICE_SECRET_CHARS) return undefined;
  const device = await store.getDevice(deviceId);
  if (!deviceSecretMatches(device, secret)) return undefined;
  return device.revokedAt === null ? device : 'revoked';
}
