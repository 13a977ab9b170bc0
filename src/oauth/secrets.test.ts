import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { newId, newToken } from '../core/secrets.js';
import { PREFIX, isCodeVerifier, isOAuthAccessToken, isS256Challenge, newOAuthSecret, newRefreshToken, refreshTokenFamily, verifierMatches } from './secrets.js';

describe('OAuth secrets and PKCE', () => {
  it('matches the RFC 7636 Appendix B example: verifier to S256 challenge', () => {
    const verifier = 'dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk';
    const challenge = 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM';
    assert.equal(isCodeVerifier(verifier), true);
    assert.equal(isS256Challenge(challenge), true);
    assert.equal(verifierMatches(verifier, challenge), true);
    assert.equal(verifierMatches(`${verifier.slice(0, -1)}l`, challenge), false);
    assert.equal(verifierMatches(verifier, `${challenge.slice(0, -1)}d`), false);
  });

  it('accepts verifiers of 43 to 128 unreserved characters only (RFC 7636 §4.1)', () => {
    assert.equal(isCodeVerifier('a'.repeat(42)), false);
    assert.equal(isCodeVerifier('a'.repeat(43)), true);
    assert.equal(isCodeVerifier('A-._~z09'.repeat(16)), true);
    assert.equal(isCodeVerifier('a'.repeat(129)), false);
    assert.equal(isCodeVerifier(`${'a'.repeat(42)}+`), false);
    assert.equal(isCodeVerifier(`${'a'.repeat(42)}=`), false);
  });

  it('names each kind by a prefix a first-party token can never have', () => {
    for (let i = 0; i < 1000; i++) assert.equal(newToken().includes('.'), false);
    const access = newOAuthSecret('accessToken');
    assert.match(access, /^cro\.at\.[A-Za-z0-9_-]{43}$/);
    assert.equal(isOAuthAccessToken(access), true);
    assert.equal(isOAuthAccessToken(newRefreshToken(newId('of_'))), false);
    assert.equal(isOAuthAccessToken(newToken()), false);
    assert.deepEqual(new Set(Object.values(PREFIX)).size, 4);
    assert.notEqual(newOAuthSecret('code'), newOAuthSecret('code'));
  });

  it('names the token family in a refresh token, and nothing for a token of another shape', () => {
    const family = newId('of_');
    const token = newRefreshToken(family);
    assert.equal(token.length <= 128, true);
    assert.equal(refreshTokenFamily(token), family);
    assert.equal(refreshTokenFamily(`${token}x`), undefined);
    assert.equal(refreshTokenFamily(newOAuthSecret('accessToken')), undefined);
    assert.equal(refreshTokenFamily(`cro.rt.${family}.short`), undefined);
  });
});
