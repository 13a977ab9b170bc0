/**
 * The rules for the fields that name a device, shared by every way a device comes to exist: the
 * factory API, `cloudrest devices import`, and `cloudrest agent provision` (which checks an id read
 * from the device before it asks the hub). Pure functions on node built-ins only: the agent bundles this.
 */

/** URL-safe without escaping (ids appear in /v1/devices/{id}/... and MQTT topics). */
const DEVICE_ID = /^[A-Za-z0-9._~-]{1,128}$/;
const EMAIL = /^[^\s@]+@[^\s@]+$/;
// C0 and C1 controls (and DEL) would garble terminals and logs.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export const MAX_DEVICE_NAME_CHARS = 128;
export const MAX_EMAIL_CHARS = 254; // RFC 5321 §4.5.3.1.3: a path is at most 256 octets, brackets included

/** Why `id` is not a valid device id, or null. */
export function deviceIdProblem(id: string): string | null {
  return DEVICE_ID.test(id) ? null : 'a device id is 1-128 characters of A-Z a-z 0-9 . _ ~ -';
}

/** Why `name` is not a valid device name, or null. */
export function deviceNameProblem(name: string): string | null {
  if (name.trim() === '') return 'a device name must not be empty';
  if (name.length > MAX_DEVICE_NAME_CHARS) return `a device name has at most ${MAX_DEVICE_NAME_CHARS} characters`;
  if (CONTROL.test(name)) return 'a device name must not contain control characters';
  return null;
}

/** Why `email` (already trimmed and lower-cased) is not a valid owner email, or null. */
export function emailProblem(email: string): string | null {
  if (email.length > MAX_EMAIL_CHARS) return `an email address has at most ${MAX_EMAIL_CHARS} characters`;
  return EMAIL.test(email) ? null : `not an email address: ${email}`;
}

/** Trimmed and lower-cased, as the Store keeps it; '' becomes null (no owner yet). */
export function normalizeOwnerEmail(email: string | null | undefined): string | null {
  const e = email?.trim().toLowerCase() ?? '';
  return e === '' ? null : e;
}
