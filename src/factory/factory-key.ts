/**
 * Factory keys and the device secrets they obtain (seed 002 "Device Factory Provisioning").
 *
 * A factory key is a 256-bit random value, shown once and stored as its SHA-256 (like access tokens).
 * The device secret a factory gets for a device is HMAC-SHA256(derivation key of that factory key,
 * key id + device id): the hub keeps only the secret's hash with the device, yet can give the same
 * secret again when the factory re-provisions the same device (a station that crashed after the hub
 * answered). Rotating a key changes its value, not its id or derivation key, so re-provisioning a
 * device after a rotation still answers the secret it already has.
 */
import { createHmac, randomBytes } from 'node:crypto';

/** Makes keys recognisable (in logs, in secret scanners) and never start with '-' on a command line. */
export const FACTORY_KEY_PREFIX = 'crfk_';
/** Longest Authorization value examined; real keys are 48 characters. */
export const MAX_FACTORY_KEY_CHARS = 256;

export function newFactoryKey(): string {
  return `${FACTORY_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/** The per-key HMAC key: 32 random bytes, base64url. */
export function newDerivationKey(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The secret of a device provisioned by a factory key: 64 hex characters (hex, so it never starts with
 * '-' where a command line would read an option). NUL separators keep (key, device) pairs distinct.
 */
export function deriveDeviceSecret(derivationKey: string, factoryKeyId: string, deviceId: string): string {
  return createHmac('sha256', Buffer.from(derivationKey, 'base64url'))
    .update(`cloudrest device secret\0${factoryKeyId}\0${deviceId}`, 'utf8')
    .digest('hex');
}
