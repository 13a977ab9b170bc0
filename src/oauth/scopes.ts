/**
 * The scopes a third-party client may ask for, what each lets it do (shown on the consent page), and
 * the scope parameter's syntax (RFC 6749 §3.3: space-delimited, case-sensitive).
 */
export const SCOPES = {
  'devices:read': 'See your devices, their details and whether they are online',
  'devices:control': "Use your devices' own REST APIs: read and change what they do",
  'events:read': "Receive your devices' notifications and when they go online or offline",
} as const;

export type Scope = keyof typeof SCOPES;

/** In this order everywhere scopes are written out, so equal sets read the same. */
const ORDER = Object.keys(SCOPES) as Scope[];

/** The longest scope parameter accepted; every known scope together is far shorter. */
export const MAX_SCOPE_CHARS = 256;

export function isScope(s: string): s is Scope {
  return Object.hasOwn(SCOPES, s);
}

/**
 * The scopes of a scope parameter, de-duplicated in canonical order; undefined if it is too long,
 * empty, or names a scope this hub does not have.
 */
export function parseScope(text: string): Scope[] | undefined {
  if (text.length > MAX_SCOPE_CHARS) return undefined;
  const parts = text.split(' ').filter((p) => p !== '');
  if (parts.length === 0 || !parts.every(isScope)) return undefined;
  const set = new Set(parts);
  return ORDER.filter((s) => set.has(s));
}

export function formatScope(scopes: Iterable<Scope>): string {
  const set = new Set(scopes);
  return ORDER.filter((s) => set.has(s)).join(' ');
}

/** `a` ∪ `b`, in canonical order. */
export function unionScope(a: Iterable<Scope>, b: Iterable<Scope>): Scope[] {
  const set = new Set([...a, ...b]);
  return ORDER.filter((s) => set.has(s));
}
