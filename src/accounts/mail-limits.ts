/**
 * The bounds on mail caused by devices, shared by registration mails (registration.ts) and device
 * claim mails (device-claims.ts), all counted from the Store (so they hold across restarts): one mail
 * per address per `resendMs`, `maxPerAddressPerDay` per address, `maxPerDevicePerDay` per device (a
 * rogue device cycling addresses) and `maxPerHour` for the whole hub.
 */
import type { Store } from '../store/store.js';

export interface MailLimits {
  resendMs: number;
  maxPerHour: number;
  maxPerAddressPerDay: number;
  maxPerDevicePerDay: number;
}

/** Why a mail was not sent. */
export type HeldBack = 'sent recently' | 'address daily limit' | 'device daily limit' | 'hub hourly limit';

export const HOUR_MS = 3_600_000;
export const DAY_MS = 24 * HOUR_MS;

/** The limit a new mail to `email` (caused by `deviceId`) would pass, if any. */
export async function mailHeldBack(store: Store, o: MailLimits, email: string, deviceId: string | null, now: number): Promise<HeldBack | undefined> {
  if (o.resendMs > 0 && (await store.countConfirmations({ since: now - o.resendMs + 1, email })) > 0) return 'sent recently';
  if ((await store.countConfirmations({ since: now - DAY_MS, email })) >= o.maxPerAddressPerDay) return 'address daily limit';
  if (deviceId !== null && (await store.countConfirmations({ since: now - DAY_MS, deviceId })) >= o.maxPerDevicePerDay) return 'device daily limit';
  if ((await store.countConfirmations({ since: now - HOUR_MS })) >= o.maxPerHour) return 'hub hourly limit';
  return undefined;
}
