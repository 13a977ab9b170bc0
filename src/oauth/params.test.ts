import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Params } from './params.js';

describe('OAuth request parameters', () => {
  it('treats a parameter without a value as omitted and reports repeated ones (RFC 6749 §3.1)', () => {
    const p = new Params('a=1&b=&c=x+y&a=2&d=%26');
    assert.equal(p.get('a'), '1');
    assert.equal(p.get('b'), undefined);
    assert.equal(p.get('c'), 'x y');
    assert.equal(p.get('d'), '&');
    assert.deepEqual(p.duplicates, ['a']);
  });

  it('reads the query of a URL', () => {
    assert.equal(Params.ofUrl('/v1/oauth/authorize?client_id=oc_1').get('client_id'), 'oc_1');
    assert.equal(Params.ofUrl('/v1/oauth/authorize').get('client_id'), undefined);
  });
});
