import type { CachedResponse } from './cached-response.js';
import type { HeaderList } from './protocol/heads.js';

/**
 * HTTP caching rules for the relay's shared response cache, as pure functions: headers and clock
 * values in, decisions and entries out. The relay handler does the I/O; a `ResponseCache` (cache.ts)
 * stores the entries. References: RFC 9111 (HTTP Caching) and RFC 9110 (HTTP Semantics).
 *
 * Times are milliseconds since the epoch (`Date.now()`); header names are lower-case.
 */

/**
 * What to do with a request, given the stored entry:
 * - `fresh`: answer 200 from the entry (`hitHeaders` in cache.ts), no trip to the device;
 * - `not-modified`: answer 304 from the entry (`notModifiedHeaders` in cache.ts);
 * - `revalidate`: forward with `revalidationHeaders` (cache.ts); a 304 from the device means `freshen` the entry;
 * - `miss`: forward the request as it is and store the answer if `isCacheableResponse`;
 * - `bypass`: forward the request as it is and store nothing.
 */
export type CacheDecision = 'fresh' | 'not-modified' | 'revalidate' | 'miss' | 'bypass';

/** RFC 9111 §3.1 (hop-by-hop and proxy fields), plus fields the cache owns or must not share. */
const NOT_STORED = new Set([
  'connection', 'proxy-connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade',
  'proxy-authenticate', 'proxy-authentication-info', 'proxy-authorization',
  'set-cookie', 'age', 'x-cache',
]);
/** Request fields whose semantics the cache does not implement: the device answers those itself. */
const BYPASS_FIELDS = new Set(['range', 'if-range', 'if-match', 'if-unmodified-since']);
const INVALIDATING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** RFC 9111 §1.2.2: the largest delta-seconds value a cache must handle. */
export const MAX_DELTA_SECONDS = 2 ** 31;

/** RFC 9111 §4.4: a write through the cache invalidates the target URI. */
export function invalidatingMethod(method: string): boolean {
  return INVALIDATING.has(method.toUpperCase());
}

/** All values of a field, joined as one list (RFC 9110 §5.3); undefined when absent. */
export function headerValue(headers: HeaderList, name: string): string | undefined {
  let value: string | undefined;
  for (const [k, v] of headers) if (k === name) value = value === undefined ? v : `${value}, ${v}`;
  return value;
}

export type CacheDirectives = ReadonlyMap<string, string | true>;

/** The directives of an absent Cache-Control, shared: most responses have none, and this runs on each. */
const NO_DIRECTIVES: CacheDirectives = new Map();

/**
 * Cache-Control directives (RFC 9111 §5.2): lower-case names, `true` for a directive without a value.
 * Only the first occurrence of a directive counts (RFC 9111 §4.2.1).
 */
export function parseCacheControl(value: string | undefined): CacheDirectives {
  if (value === undefined) return NO_DIRECTIVES;
  const out = new Map<string, string | true>();
  const re = /([!#$%&'*+\-.^_`|~0-9A-Za-z]+)(?:\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*)))?/g;
  for (const m of value.matchAll(re)) {
    const name = m[1]!.toLowerCase();
    if (out.has(name)) continue;
    out.set(name, m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] ?? true));
  }
  return out;
}

/** delta-seconds (RFC 9111 §1.2.2) in ms; an invalid value counts as 0, i.e. stale (RFC 9111 §4.2.1). */
function deltaMs(cc: CacheDirectives, name: string): number | undefined {
  const v = cc.get(name);
  if (v === undefined) return undefined;
  if (v === true || !/^\d+$/.test(v)) return 0;
  return Math.min(Number(v), MAX_DELTA_SECONDS) * 1000;
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const TIME = '(?<h>\\d{2}):(?<mi>\\d{2}):(?<s>\\d{2})';
const DATE_FORMATS = [
  new RegExp(`^[a-z]{3}, (?<d>\\d{2}) (?<mon>[a-z]{3}) (?<y>\\d{4}) ${TIME} GMT$`, 'i'), // IMF-fixdate
  new RegExp(`^[a-z]{6,9}, (?<d>\\d{2})-(?<mon>[a-z]{3})-(?<y>\\d{2}) ${TIME} GMT$`, 'i'), // rfc850-date
  new RegExp(`^[a-z]{3} (?<mon>[a-z]{3}) (?<d>[ \\d]\\d) ${TIME} (?<y>\\d{4})$`, 'i'), // asctime-date
];

/** HTTP-date in any of the three formats of RFC 9110 §5.6.7, all GMT; undefined when invalid. */
export function parseHttpDate(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const v = value.trim();
  for (const re of DATE_FORMATS) {
    const g = re.exec(v)?.groups;
    if (g === undefined) continue;
    const [day, hour, minute, second] = [g.d, g.h, g.mi, g.s].map(Number) as [number, number, number, number];
    let year = Number(g.y);
    if (g.y!.length === 2) year += year < 70 ? 2000 : 1900; // rfc850's two-digit year (RFC 9110 §5.6.7), roughly
    const month = MONTHS.indexOf(g.mon!.toLowerCase());
    if (month < 0 || hour > 23 || minute > 59 || second > 60) return undefined;
    const t = Date.UTC(year, month, day, hour, minute, second);
    return new Date(t).getUTCDate() === day ? t : undefined; // rejects 31 Feb
  }
  return undefined;
}

/** IMF-fixdate (RFC 9110 §5.6.7). */
function httpDate(time: number): string {
  return new Date(time).toUTCString();
}

/** The opaque-tags of an entity-tag list (RFC 9110 §8.8.3), W/ dropped for weak comparison. Unquoted tags are tolerated. */
function opaqueTags(value: string): string[] {
  return [...value.matchAll(/(?:W\/)?"([^"]*)"|[^,\s]+/g)].map((m) => m[1] ?? m[0]);
}

/** RFC 9110 §8.8.3.2 weak comparison of two entity-tags. */
function weakMatch(a: string, b: string): boolean {
  return opaqueTags(a)[0] === opaqueTags(b)[0];
}

/** Vary values are compared after combining lines and normalising list whitespace (RFC 9111 §4.1). */
function selectingValue(headers: HeaderList, name: string): string | null {
  return headerValue(headers, name)?.trim().replace(/\s*,\s*/g, ',') ?? null;
}

/** The field names of a list-valued field such as Vary or Connection, lower-cased. */
function fieldNames(list: string | undefined): string[] {
  return list === undefined ? [] : list.split(',').map((s) => s.trim().toLowerCase()).filter((s) => s !== '');
}

/**
 * Freshness lifetime of a response (RFC 9111 §4.2.1): s-maxage, then max-age, then Expires - Date.
 * No heuristic freshness (§4.2.2): a device's state changes without notice, so a response without
 * explicit freshness is only reused after revalidation. `no-cache` means exactly that (§5.2.2.4).
 */
export function freshnessLifetime(headers: HeaderList, responseTime: number): number {
  const cc = parseCacheControl(headerValue(headers, 'cache-control'));
  if (cc.has('no-cache')) return 0;
  const explicit = deltaMs(cc, 's-maxage') ?? deltaMs(cc, 'max-age');
  if (explicit !== undefined) return explicit;
  const expiresField = headerValue(headers, 'expires');
  if (expiresField === undefined) return 0;
  // RFC 9111 §5.3: an invalid Expires (such as "0") is a time in the past.
  const expires = parseHttpDate(expiresField);
  const date = parseHttpDate(headerValue(headers, 'date')) ?? responseTime;
  return expires === undefined ? 0 : Math.max(0, expires - date);
}

/**
 * May this response be stored (RFC 9111 §3)? Only GET 200. The cache is shared by every user of the
 * device, so `private` responses are never stored (§5.2.2.7), nor `no-store` ones (§5.2.1.5,
 * §5.2.2.5), nor `Vary: *` (§4.1). A stored response must be reusable: fresh for some time, or
 * carrying a validator so it can be revalidated. Call it on the response head, before buffering the
 * body; `now` is the response time.
 */
export function isCacheableResponse(method: string, status: number, responseHeaders: HeaderList, requestHeaders: HeaderList, now: number): boolean {
  if (method.toUpperCase() !== 'GET' || status !== 200) return false;
  if (parseCacheControl(headerValue(requestHeaders, 'cache-control')).has('no-store')) return false;
  const cc = parseCacheControl(headerValue(responseHeaders, 'cache-control'));
  if (cc.has('no-store') || cc.has('private')) return false;
  if (fieldNames(headerValue(responseHeaders, 'vary')).includes('*')) return false;
  // RFC 9111 §3.5: a shared cache stores answers to authorised requests only when told it may.
  if (headerValue(requestHeaders, 'authorization') !== undefined && !authorizedReuse(cc)) return false;
  return freshnessLifetime(responseHeaders, now) > ageMs(responseHeaders)
    || headerValue(responseHeaders, 'etag') !== undefined
    || parseHttpDate(headerValue(responseHeaders, 'last-modified')) !== undefined;
}

function authorizedReuse(cc: CacheDirectives): boolean {
  return cc.has('public') || cc.has('s-maxage') || cc.has('must-revalidate');
}

/** The Age field in ms (RFC 9111 §5.1): first member only; an invalid value is ignored. */
function ageMs(headers: HeaderList): number {
  const v = headerValue(headers, 'age')?.split(',')[0]?.trim();
  return v !== undefined && /^\d+$/.test(v) ? Math.min(Number(v), MAX_DELTA_SECONDS) * 1000 : 0;
}

export interface ResponseToStore {
  /** The request headers as forwarded to the device (for Vary and Authorization). */
  requestHeaders: HeaderList;
  status: number;
  headers: HeaderList;
  /** The complete body. */
  body: Buffer;
  requestTime: number;
  responseTime: number;
}

/**
 * Builds the entry for a response `isCacheableResponse` accepted, once its body has fully arrived.
 * Returns undefined when the body is shorter or longer than its Content-Length (a cut response).
 */
export function createEntry(r: ResponseToStore): CachedResponse | undefined {
  const declared = headerValue(r.headers, 'content-length');
  if (declared !== undefined && Number(declared) !== r.body.length) return undefined;
  const headers = storedHeaders(r.headers);
  // RFC 9110 §6.6.1: a recipient with a clock adds Date when the origin sent none.
  if (headerValue(headers, 'date') === undefined) headers.push(['date', httpDate(r.responseTime)]);
  headers.push(['content-length', String(r.body.length)]);
  return withValidators({
    status: r.status,
    headers,
    body: r.body,
    requestTime: r.requestTime,
    responseTime: r.responseTime,
    initialAgeMs: initialAge(r.headers, r.requestTime, r.responseTime),
    freshnessMs: freshnessLifetime(r.headers, r.responseTime),
    etag: null,
    lastModified: null,
    vary: fieldNames(headerValue(r.headers, 'vary')).map((name) => [name, selectingValue(r.requestHeaders, name)]),
    authorizedReuse: false,
  });
}

function withValidators(entry: CachedResponse): CachedResponse {
  entry.etag = headerValue(entry.headers, 'etag')?.trim() ?? null;
  entry.lastModified = parseHttpDate(headerValue(entry.headers, 'last-modified')) ?? null;
  entry.authorizedReuse = authorizedReuse(parseCacheControl(headerValue(entry.headers, 'cache-control')));
  return entry;
}

/** RFC 9111 §3.1: hop-by-hop fields, those named in Connection, and fields the cache must not share. */
function storedHeaders(headers: HeaderList): HeaderList {
  const named = new Set(fieldNames(headerValue(headers, 'connection')));
  return headers.filter(([k]) => !NOT_STORED.has(k) && !named.has(k) && k !== 'content-length');
}

/**
 * `corrected_initial_age` (RFC 9111 §4.2.3) without `apparent_age`: the device is the origin and is
 * reached directly, and devices often have no real-time clock (a Date in 1970 would make every
 * response stale on arrival), so the Date field is not trusted for age.
 */
function initialAge(headers: HeaderList, requestTime: number, responseTime: number): number {
  return ageMs(headers) + Math.max(0, responseTime - requestTime);
}

/** `current_age` (RFC 9111 §4.2.3) in ms. */
export function currentAge(entry: CachedResponse, now: number): number {
  return entry.initialAgeMs + Math.max(0, now - entry.responseTime);
}

/** Decides how to answer a GET (or HEAD) from `entry`, the stored response for its key, if any. */
export function lookup(entry: CachedResponse | undefined, requestHeaders: HeaderList, now: number): CacheDecision {
  // One pass over the fields: most relayed GETs carry neither Cache-Control nor a bypassing field.
  let ccValue: string | undefined;
  for (let i = 0; i < requestHeaders.length; i++) {
    const [name, value] = requestHeaders[i]!;
    if (name === 'cache-control') ccValue = ccValue === undefined ? value : `${ccValue}, ${value}`;
    else if (BYPASS_FIELDS.has(name)) return 'bypass';
  }
  const cc = parseCacheControl(ccValue);
  if (cc.has('no-store')) return 'bypass'; // RFC 9111 §5.2.1.5
  if (entry === undefined) return 'miss';
  // RFC 9111 §4.1: the request must select the same variant.
  if (entry.vary.some(([name, value]) => selectingValue(requestHeaders, name) !== value)) return 'miss';
  if (!entry.authorizedReuse && headerValue(requestHeaders, 'authorization') !== undefined) return 'miss'; // RFC 9111 §3.5
  const age = currentAge(entry, now);
  const maxAge = deltaMs(cc, 'max-age'); // RFC 9111 §5.2.1.1
  const minFresh = deltaMs(cc, 'min-fresh') ?? 0; // RFC 9111 §5.2.1.3
  const usable = entry.freshnessMs > age // RFC 9111 §4.2
    && !cc.has('no-cache') // RFC 9111 §5.2.1.4
    && (maxAge === undefined || age < maxAge)
    && entry.freshnessMs - age >= minFresh;
  if (usable) return isNotModified(entry, requestHeaders) ? 'not-modified' : 'fresh';
  return entry.etag !== null || entry.lastModified !== null ? 'revalidate' : 'miss';
}

/**
 * Evaluates the client's If-None-Match / If-Modified-Since against the entry: true means answer 304.
 * RFC 9110 §13.1.2 (weak comparison; `*` matches any stored representation), §13.1.3 (only without
 * If-None-Match; an invalid date or a list is ignored), §13.2.2 (precedence).
 */
export function isNotModified(entry: CachedResponse, requestHeaders: HeaderList): boolean {
  const inm = headerValue(requestHeaders, 'if-none-match');
  if (inm !== undefined) {
    if (inm.trim() === '*') return true;
    if (entry.etag === null) return false;
    const tag = opaqueTags(entry.etag)[0];
    return opaqueTags(inm).includes(tag!);
  }
  const ims = headerValue(requestHeaders, 'if-modified-since');
  if (ims === undefined || entry.lastModified === null) return false;
  const since = parseHttpDate(ims);
  return since !== undefined && entry.lastModified <= since;
}

/**
 * Applies the device's 304 to the entry (RFC 9111 §4.3.4, §3.2): its fields replace the stored ones
 * (except those never stored, and Content-Length), and age and freshness restart. Returns undefined
 * when the 304's validator does not select this entry: the handler then drops the entry and forwards
 * the request again without validators. Store the result only if `isCacheableResponse` accepts its headers.
 */
export function freshen(entry: CachedResponse, notModifiedHeaders: HeaderList, requestTime: number, responseTime: number): CachedResponse | undefined {
  const etag = headerValue(notModifiedHeaders, 'etag');
  if (etag !== undefined && (entry.etag === null || !weakMatch(etag, entry.etag))) return undefined;
  const lastModified = parseHttpDate(headerValue(notModifiedHeaders, 'last-modified'));
  if (etag === undefined && lastModified !== undefined && lastModified !== entry.lastModified) return undefined;
  const update = storedHeaders(notModifiedHeaders);
  if (headerValue(update, 'date') === undefined) update.push(['date', httpDate(responseTime)]);
  const replaced = new Set(update.map(([k]) => k));
  const headers = [...entry.headers.filter(([k]) => !replaced.has(k)), ...update];
  return withValidators({
    ...entry,
    headers,
    requestTime,
    responseTime,
    initialAgeMs: initialAge(notModifiedHeaders, requestTime, responseTime),
    freshnessMs: freshnessLifetime(headers, responseTime),
  });
}
