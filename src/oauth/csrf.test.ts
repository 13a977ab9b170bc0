import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CONSENT_FORM_TTL_MS, ConsentCsrf, readCookie } from './csrf.js';

describe('consent form CSRF token', () => {
  const fields = ['oc_1', 'https://a.example/cb', 'devices:read', 'state-1', ''];

  it('verifies with the same cookie and the same request fields', () => {
    const csrf = new ConsentCsrf();
    const cookie = csrf.newCookie();
    assert.equal(csrf.verify(cookie, fields, csrf.token(cookie, fields)), true);
  });

  it('fails for another cookie, an altered field, another hub key, or no token', () => {
    const csrf = new ConsentCsrf();
    const cookie = csrf.newCookie();
    const token = csrf.token(cookie, fields);
    assert.equal(csrf.verify(csrf.newCookie(), fields, token), false);
    assert.equal(csrf.verify(undefined, fields, token), false);
    for (let i = 0; i < fields.length; i++) {
      const altered = fields.map((f, j) => (j === i ? `${f}x` : f));
      assert.equal(csrf.verify(cookie, altered, token), false, `field ${i}`);
    }
    assert.equal(new ConsentCsrf().verify(cookie, fields, token), false);
    assert.equal(csrf.verify(cookie, fields, undefined), false);
    assert.equal(csrf.verify(cookie, fields, 'garbage'), false);
    assert.equal(csrf.verify(cookie, fields, `${token}x`), false);
  });

  it('expires with the form', () => {
    const csrf = new ConsentCsrf();
    const cookie = csrf.newCookie();
    const t0 = 1_800_000_000_000;
    const token = csrf.token(cookie, fields, t0);
    assert.equal(csrf.verify(cookie, fields, token, t0 + CONSENT_FORM_TTL_MS - 1000), true);
    assert.equal(csrf.verify(cookie, fields, token, t0 + CONSENT_FORM_TTL_MS + 1000), false);
  });

  it('reads one cookie out of a Cookie header', () => {
    assert.equal(readCookie('a=1; cr_oauth_csrf=abc; b=2', 'cr_oauth_csrf'), 'abc');
    assert.equal(readCookie('xcr_oauth_csrf=abc', 'cr_oauth_csrf'), undefined);
    assert.equal(readCookie(undefined, 'cr_oauth_csrf'), undefined);
  });
});
