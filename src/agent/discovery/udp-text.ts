/**
 * The text of the seed's UDP discovery (seed 002, "Local Discovery Service"): a client broadcasts any
 * short message to port 15800; each device answers to port 15900 of the sender with
 *
 *   CloudREST || <MAC address> || <device name> || <REST API URL>
 */
export const ANSWER_PREFIX = 'CloudREST || ';
const SEPARATOR = ' || ';
/** The query `cloudrest discover` sends; any other short text is a query too (the seed's "dummy message"). */
export const QUERY_TEXT = 'CloudREST discover';
/** Longest datagram taken as a query: a discovery query carries nothing, so anything long is junk. */
export const MAX_QUERY_BYTES = 256;
/** Longest answer `cloudrest discover` accepts. */
export const MAX_ANSWER_BYTES = 1024;
const MAX_NAME_CHARS = 64;

export interface DiscoveryAnswer {
  mac: string;
  name: string;
  url: string;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i;

/** True for a datagram that is a discovery query: short, printable text, and not itself an answer. */
export function isQuery(msg: Buffer): boolean {
  if (msg.length > MAX_QUERY_BYTES) return false;
  for (const b of msg) if ((b < 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d) || b === 0x7f) return false;
  return !msg.toString('latin1').startsWith(ANSWER_PREFIX.trimEnd());
}

/**
 * A device name as it may appear in an answer: no separators, no control characters, bounded, and as
 * parseAnswer reads it back (trimmed, whole characters).
 */
function cleanName(name: string): string {
  // A run of bars becomes one: joining the pieces of split('||') with '|' turned "|||" back into "||",
  // and a name like "a ||| b" then broke its own answer into five fields.
  // eslint-disable-next-line no-control-regex
  const text = name.replace(/[\u0000-\u001f\u007f]/g, ' ').replace(/\|{2,}/g, '|').trim();
  // Cut at a character boundary (a lone surrogate would go out as U+FFFD), then trim what the cut exposed.
  let end = Math.min(text.length, MAX_NAME_CHARS);
  if (end < text.length && /[\ud800-\udbff]/.test(text[end - 1]!)) end--;
  return text.slice(0, end).trimEnd() || 'cloudrest device';
}

export function formatAnswer(a: DiscoveryAnswer): string {
  return `${ANSWER_PREFIX}${a.mac}${SEPARATOR}${cleanName(a.name)}${SEPARATOR}${a.url}`;
}

/** An answer's fields, or undefined for anything else (checked as untrusted input). */
export function parseAnswer(msg: Buffer): DiscoveryAnswer | undefined {
  if (msg.length > MAX_ANSWER_BYTES) return undefined;
  const text = msg.toString('utf8');
  if (!text.startsWith(ANSWER_PREFIX)) return undefined;
  const parts = text.slice(ANSWER_PREFIX.length).split(SEPARATOR);
  if (parts.length !== 3) return undefined;
  const [mac, name, url] = parts.map((p) => p.trim()) as [string, string, string];
  if (!MAC.test(mac)) return undefined;
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
  } catch {
    return undefined;
  }
  return { mac: mac.toLowerCase(), name, url };
}
