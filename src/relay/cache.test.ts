import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  cacheKey, entrySize, hitHeaders, MemoryResponseCache, normalizeTarget, notModifiedHeaders, revalidationHeaders,
  type CachedResponse,
} from './cache.js';
import {
  createEntry, freshen, freshnessLifetime, headerValue, invalidatingMethod, isCacheableResponse, lookup,
  parseCacheControl, parseHttpDate,
} from './cache-policy.js';
import type { HeaderList } from './protocol/heads.js';

const T0 = Date.UTC(2024, 0, 15, 12, 0, 0);
const DATE = new Date(T0).toUTCString();
const LATER = new Date(T0 + 3_600_000).toUTCString();

/** A header list from `name: value` lines. */
function h(...lines: string[]): HeaderList {
  return lines.map((l) => {
    const i = l.indexOf(':');
    return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
  });
}

/** The entry for a GET 200 with these headers, forwarded at `at` and answered 10 ms later. */
function stored(headers: HeaderList, body = 'state', requestHeaders: HeaderList = [], at = T0): CachedResponse {
  const entry = createEntry({ requestHeaders, status: 200, headers, body: Buffer.from(body), requestTime: at, responseTime: at + 10 });
  assert.ok(entry);
  return entry;
}

describe('MemoryResponseCache', () => {
  const small = (body: string) => stored(h('cache-control: max-age=60'), body);

  test('the byte budget evicts the least recently used entries', () => {
    const body = 'x'.repeat(800);
    const maxBytes = 3 * entrySize(cacheKey('d', '/1'), small(body)) + 100;
    const cache = new MemoryResponseCache({ maxBytes, maxEntryBytes: maxBytes });
    for (const t of ['/1', '/2', '/3']) cache.set('d', t, small(body), cache.get('d', t).fillToken);
    assert.equal(cache.entries, 3);
    cache.get('d', '/1'); // now the most recently used
    cache.set('d', '/4', small(body), cache.get('d', '/4').fillToken);
    assert.equal(cache.entries, 3);
    assert.ok(cache.bytes <= maxBytes);
    assert.ok(cache.get('d', '/1').entry);
    assert.equal(cache.get('d', '/2').entry, undefined);
    assert.ok(cache.get('d', '/4').entry);
  });

  test('an entry over maxEntryBytes is not stored, and the older one for its key goes', () => {
    const cache = new MemoryResponseCache({ maxBytes: 1 << 20, maxEntryBytes: 2048 });
    assert.equal(cache.set('d', '/big', small('old'), cache.get('d', '/big').fillToken), true);
    assert.equal(cache.set('d', '/big', small('x'.repeat(4096)), cache.get('d', '/big').fillToken), false);
    assert.equal(cache.get('d', '/big').entry, undefined);
    assert.equal(cache.entries, 0);
  });

  test('maxBytes 0 disables the cache', () => {
    const cache = new MemoryResponseCache({ maxBytes: 0, maxEntryBytes: 1024 });
    assert.equal(cache.set('d', '/a', small('s'), cache.get('d', '/a').fillToken), false);
    assert.equal(cache.get('d', '/a').entry, undefined);
  });

  test('evicted entries leave the per-device index too', () => {
    const cache = new MemoryResponseCache({ maxBytes: 2000, maxEntryBytes: 2000 });
    for (let i = 0; i < 50; i++) cache.set(`d${i}`, '/p?q', small('x'.repeat(500)), cache.get(`d${i}`, '/p?q').fillToken);
    assert.equal(cache.devices, cache.entries);
    cache.invalidateDevice('d49');
    cache.delete('d48', '/p?q');
    assert.equal(cache.devices, cache.entries);
    assert.ok(cache.entries < 2);
  });

  test('a fill slower than the fill window is refused once an invalidation has been forgotten', () => {
    let now = T0;
    const cache = new MemoryResponseCache({ maxBytes: 1 << 20, maxEntryBytes: 1 << 16, fillWindowMs: 1000, now: () => now });
    const slow = cache.get('d1', '/a').fillToken;
    cache.invalidateDevice('d2');
    now += 5000;
    cache.invalidateDevice('d3'); // forgets d2's mark
    assert.equal(cache.set('d1', '/a', small('s'), slow), false);
    assert.equal(cache.set('d1', '/a', small('s'), cache.get('d1', '/a').fillToken), true);
  });
});

describe('cacheability (RFC 9111 §3)', () => {
  const ok = (res: HeaderList, req: HeaderList = [], method = 'GET', status = 200) => isCacheableResponse(method, status, res, req, T0);

  test('a GET 200 with max-age or a validator is cacheable; other methods and statuses are not', () => {
    assert.equal(ok(h('cache-control: max-age=5')), true);
    assert.equal(ok(h('etag: "v1"')), true);
    assert.equal(ok(h(`last-modified: ${DATE}`)), true);
    assert.equal(ok(h('cache-control: max-age=5'), [], 'POST'), false);
    assert.equal(ok(h('cache-control: max-age=5'), [], 'GET', 404), false);
    assert.equal(ok(h('cache-control: max-age=5'), [], 'GET', 206), false);
  });

  test('no-store, private and Vary: * responses are never stored', () => {
    assert.equal(ok(h('cache-control: no-store, max-age=60')), false);
    assert.equal(ok(h('cache-control: private, max-age=60')), false);
    assert.equal(ok(h('cache-control: max-age=60', 'vary: Accept, *')), false);
    assert.equal(ok(h('cache-control: max-age=60'), h('cache-control: no-store')), false);
  });

  test('a response with no freshness and no validator is not stored', () => {
    assert.equal(ok(h('content-type: application/json')), false);
    assert.equal(ok(h('cache-control: max-age=0')), false);
    assert.equal(ok(h('cache-control: max-age=10', 'age: 30')), false);
    assert.equal(ok(h(`date: ${DATE}`, 'expires: 0')), false);
  });

  test('Expires counts when there is no max-age; max-age wins over Expires', () => {
    assert.equal(freshnessLifetime(h(`date: ${DATE}`, `expires: ${LATER}`), T0), 3_600_000);
    assert.equal(freshnessLifetime(h(`date: ${DATE}`, `expires: ${LATER}`, 'cache-control: max-age=5'), T0), 5000);
    assert.equal(freshnessLifetime(h('cache-control: max-age=5, s-maxage=7'), T0), 7000);
    assert.equal(freshnessLifetime(h('cache-control: no-cache, max-age=5'), T0), 0);
  });

  test('an authorised request is stored only when the response allows shared reuse (§3.5)', () => {
    assert.equal(ok(h('cache-control: max-age=60'), h('authorization: Basic eA==')), false);
    assert.equal(ok(h('cache-control: public, max-age=60'), h('authorization: Basic eA==')), true);
  });

  test('a cut body (Content-Length mismatch) makes no entry', () => {
    const entry = createEntry({ requestHeaders: [], status: 200, headers: h('content-length: 10', 'etag: "a"'), body: Buffer.from('abc'), requestTime: T0, responseTime: T0 });
    assert.equal(entry, undefined);
  });

  test('hop-by-hop fields, set-cookie and age are not stored; date and content-length are', () => {
    const entry = stored(h('connection: x-trace', 'x-trace: 1', 'keep-alive: timeout=5', 'transfer-encoding: chunked', 'set-cookie: s=1', 'age: 3', 'etag: "a"', 'content-type: text/plain'));
    assert.deepEqual(entry.headers.map(([k]) => k).sort(), ['content-length', 'content-type', 'date', 'etag']);
    assert.equal(headerValue(entry.headers, 'content-length'), '5');
  });
});

describe('lookup', () => {
  const maxAge60 = stored(h('cache-control: max-age=60', 'etag: W/"v1"', `last-modified: ${DATE}`));

  test('a max-age response is served from cache until it expires, then revalidated', () => {
    assert.equal(lookup(maxAge60, [], T0 + 1000), 'fresh');
    assert.equal(lookup(maxAge60, [], T0 + 59_000), 'fresh');
    assert.equal(lookup(maxAge60, [], T0 + 60_000), 'revalidate');
  });

  test('a stale response without validators is a miss', () => {
    const entry = stored(h('cache-control: max-age=1'));
    assert.equal(lookup(entry, [], T0 + 500), 'fresh');
    assert.equal(lookup(entry, [], T0 + 2000), 'miss');
  });

  test('Age from the device shortens the time an entry stays fresh', () => {
    const entry = stored(h('cache-control: max-age=60', 'age: 50'));
    assert.equal(lookup(entry, [], T0 + 5000), 'fresh');
    assert.equal(lookup(entry, [], T0 + 11_000), 'miss');
  });

  test('a device whose clock says 1970 still gets its max-age honoured', () => {
    const entry = stored(h('cache-control: max-age=60', 'date: Thu, 01 Jan 1970 00:00:10 GMT'));
    assert.equal(lookup(entry, [], T0 + 1000), 'fresh');
  });

  test('request no-cache or max-age=0 forces revalidation; no-store bypasses the cache', () => {
    assert.equal(lookup(maxAge60, h('cache-control: no-cache'), T0 + 1000), 'revalidate');
    assert.equal(lookup(maxAge60, h('cache-control: max-age=0'), T0 + 1000), 'revalidate');
    assert.equal(lookup(maxAge60, h('cache-control: max-age=30'), T0 + 1000), 'fresh');
    assert.equal(lookup(maxAge60, h('cache-control: min-fresh=59'), T0 + 2000), 'revalidate');
    assert.equal(lookup(maxAge60, h('cache-control: no-store'), T0 + 1000), 'bypass');
    assert.equal(lookup(undefined, h('cache-control: no-store'), T0), 'bypass');
    assert.equal(lookup(undefined, [], T0), 'miss');
  });

  test('range and precondition requests go to the device untouched', () => {
    assert.equal(lookup(maxAge60, h('range: bytes=0-9'), T0 + 1000), 'bypass');
    assert.equal(lookup(maxAge60, h('if-match: "v1"'), T0 + 1000), 'bypass');
  });

  test('If-None-Match with a matching weak ETag gets 304', () => {
    assert.equal(lookup(maxAge60, h('if-none-match: "v1"'), T0 + 1000), 'not-modified');
    assert.equal(lookup(maxAge60, h('if-none-match: "v0", W/"v1"'), T0 + 1000), 'not-modified');
    assert.equal(lookup(maxAge60, h('if-none-match: *'), T0 + 1000), 'not-modified');
    assert.equal(lookup(maxAge60, h('if-none-match: "v2"'), T0 + 1000), 'fresh');
  });

  test('If-Modified-Since at or after Last-Modified gets 304, unless If-None-Match is present', () => {
    assert.equal(lookup(maxAge60, h(`if-modified-since: ${DATE}`), T0 + 1000), 'not-modified');
    assert.equal(lookup(maxAge60, h(`if-modified-since: ${LATER}`), T0 + 1000), 'not-modified');
    assert.equal(lookup(maxAge60, h('if-modified-since: Sun, 01 Jan 2023 00:00:00 GMT'), T0 + 1000), 'fresh');
    assert.equal(lookup(maxAge60, h(`if-modified-since: ${DATE}`, 'if-none-match: "v2"'), T0 + 1000), 'fresh');
    assert.equal(lookup(maxAge60, h('if-modified-since: yesterday'), T0 + 1000), 'fresh');
  });

  test('a request with different Vary-selected headers is a miss', () => {
    const entry = stored(h('cache-control: max-age=60', 'vary: Accept-Language'), 'hallo', h('accept-language: de'));
    assert.equal(lookup(entry, h('accept-language: de'), T0 + 1000), 'fresh');
    assert.equal(lookup(entry, h('accept-language: fr'), T0 + 1000), 'miss');
    assert.equal(lookup(entry, [], T0 + 1000), 'miss');
  });
});

describe('revalidation and answers from the cache', () => {
  const entry = stored(h('cache-control: max-age=10', 'etag: "v1"', `last-modified: ${DATE}`, 'content-type: application/json', 'vary: accept'));

  test('a revalidation carries the entry validators instead of the client ones', () => {
    const out = revalidationHeaders(entry, h('accept: */*', 'if-none-match: "old"'));
    assert.deepEqual(out, h('accept: */*', 'if-none-match: "v1"', `if-modified-since: ${DATE}`));
  });

  test('a 304 from the device freshens the entry: new headers, age restarts, body kept', () => {
    const later = T0 + 60_000;
    assert.equal(lookup(entry, [], later), 'revalidate');
    const updated = freshen(entry, h('etag: "v1"', 'cache-control: max-age=30', 'content-length: 0'), later, later + 5);
    assert.ok(updated);
    assert.equal(updated.body.toString(), 'state');
    assert.equal(headerValue(updated.headers, 'cache-control'), 'max-age=30');
    assert.equal(headerValue(updated.headers, 'content-length'), '5');
    assert.equal(lookup(updated, [], later + 20_000), 'fresh');
    assert.equal(lookup(updated, h('if-none-match: "v1"'), later + 20_000), 'not-modified');
  });

  test('a 304 with another ETag does not freshen the entry', () => {
    assert.equal(freshen(entry, h('etag: "v2"'), T0 + 60_000, T0 + 60_005), undefined);
  });

  test('a cache hit carries Age and X-Cache: HIT', () => {
    const headers = hitHeaders(entry, T0 + 4010);
    assert.equal(headerValue(headers, 'age'), '4');
    assert.equal(headerValue(headers, 'x-cache'), 'HIT');
    assert.equal(headerValue(headers, 'content-type'), 'application/json');
  });

  test('a 304 from the cache carries only the fields of RFC 9110 §15.4.5', () => {
    const headers = notModifiedHeaders(entry, T0 + 1010);
    assert.deepEqual(headers.map(([k]) => k).sort(), ['age', 'cache-control', 'date', 'etag', 'vary', 'x-cache']);
    const noEtag = stored(h('cache-control: max-age=10', `last-modified: ${DATE}`, 'content-type: text/plain'));
    assert.ok(headerValue(notModifiedHeaders(noEtag, T0), 'last-modified'));
  });
});

describe('fields and keys', () => {
  test('POST, PUT, PATCH and DELETE invalidate; GET, HEAD and OPTIONS do not', () => {
    assert.deepEqual(['POST', 'PUT', 'PATCH', 'DELETE', 'delete'].map(invalidatingMethod), [true, true, true, true, true]);
    assert.deepEqual(['GET', 'HEAD', 'OPTIONS'].map(invalidatingMethod), [false, false, false]);
  });

  test('Cache-Control directives parse with quoted values, first occurrence winning', () => {
    const cc = parseCacheControl('Max-Age=5, no-cache="set-cookie, x", max-age=9, public');
    assert.equal(cc.get('max-age'), '5');
    assert.equal(cc.get('no-cache'), 'set-cookie, x');
    assert.equal(cc.get('public'), true);
  });

  test('all three HTTP-date formats parse, and nonsense does not', () => {
    const t = Date.UTC(1994, 10, 6, 8, 49, 37);
    assert.equal(parseHttpDate('Sun, 06 Nov 1994 08:49:37 GMT'), t);
    assert.equal(parseHttpDate('Sunday, 06-Nov-94 08:49:37 GMT'), t);
    assert.equal(parseHttpDate('Sun Nov  6 08:49:37 1994'), t);
    assert.equal(parseHttpDate('0'), undefined);
    assert.equal(parseHttpDate('Sun, 31 Feb 1994 08:49:37 GMT'), undefined);
  });

  test('keys are unambiguous across device ids and normalise percent-encoding', () => {
    assert.notEqual(cacheKey('a', '/b/c'), cacheKey('a/b', '/c'));
    assert.equal(normalizeTarget('/a%7e%2Fb?q=%41'), '/a~%2Fb?q=A');
  });
});
