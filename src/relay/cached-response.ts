import type { HeaderList } from './protocol/heads.js';

// Its own file because both the store (cache.ts) and the rules (cache-policy.ts) use it, and neither
// should import the other for it.

/** One stored response. Plain data, so a Redis-backed cache can serialise it as it is. */
export interface CachedResponse {
  status: number;
  /** As stored: without hop-by-hop fields, set-cookie and age; with date and content-length. */
  headers: HeaderList;
  body: Buffer;
  /** When the request was forwarded to the device (`request_time`, RFC 9111 §4.2.3). */
  requestTime: number;
  /** When the response head arrived (`response_time`): the time the entry was stored or freshened. */
  responseTime: number;
  /** `corrected_initial_age` (RFC 9111 §4.2.3). */
  initialAgeMs: number;
  /** Freshness lifetime (RFC 9111 §4.2.1); 0 means every use needs revalidation. */
  freshnessMs: number;
  etag: string | null;
  lastModified: number | null;
  /** The request fields named by Vary and their values when stored (RFC 9111 §4.1). */
  vary: Array<[string, string | null]>;
  /** The response may answer requests that carry Authorization (RFC 9111 §3.5). */
  authorizedReuse: boolean;
}
