import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { redirectUriProblem, withParams } from './redirect-uri.js';

describe('redirect URIs', () => {
  it('registers https, loopback http and reverse-domain app schemes', () => {
    for (const ok of ['https://ifttt.example/cb', 'https://x.example:8443/a/b?tenant=1', 'http://127.0.0.1:9000/cb', 'http://[::1]/cb', 'http://localhost:3000/cb', 'com.example.app:/oauth']) {
      assert.equal(redirectUriProblem(ok), undefined, ok);
    }
  });

  it('refuses what could leak a code: plain http elsewhere, fragments, user info, odd schemes, relative URIs', () => {
    const cases: Array<[string, RegExp]> = [
      ['http://ifttt.example/cb', /only for 127\.0\.0\.1/],
      ['https://a.example/cb#frag', /fragment/],
      ['https://user:pw@a.example/cb', /user information/],
      ['javascript:alert(1)', /scheme javascript/],
      ['data:text/html,hi', /scheme data/],
      ['/relative/cb', /absolute/],
      ['https://a.example/c b', /spaces/],
      ['https://a.example/\u0001', /control/],
      [`https://a.example/${'x'.repeat(2000)}`, /longer than 2000/],
    ];
    for (const [uri, why] of cases) assert.match(redirectUriProblem(uri) ?? 'accepted', why, uri);
  });

  it('adds response parameters and keeps the query the client registered (RFC 6749 §3.1.2)', () => {
    const u = new URL(withParams('https://a.example/cb?tenant=7', { code: 'c&1', state: 's p', error: undefined }));
    assert.equal(u.searchParams.get('tenant'), '7');
    assert.equal(u.searchParams.get('code'), 'c&1');
    assert.equal(u.searchParams.get('state'), 's p');
    assert.equal(u.searchParams.has('error'), false);
    assert.equal(u.origin + u.pathname, 'https://a.example/cb');
  });
});
