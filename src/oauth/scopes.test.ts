import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { formatScope, parseScope, unionScope } from './scopes.js';

describe('OAuth scopes', () => {
  it('parses a space-delimited scope into known scopes, de-duplicated, in a fixed order', () => {
    assert.deepEqual(parseScope('events:read devices:read'), ['devices:read', 'events:read']);
    assert.deepEqual(parseScope('devices:control  devices:control'), ['devices:control']);
    assert.equal(formatScope(['events:read', 'devices:read', 'devices:read']), 'devices:read events:read');
  });

  it('refuses unknown, empty, differently cased or oversized scopes', () => {
    for (const bad of ['', '   ', 'admin', 'devices:read admin', 'Devices:Read', 'devices:*', 'devices:read '.repeat(30)]) {
      assert.equal(parseScope(bad), undefined, JSON.stringify(bad));
    }
  });

  it('merges granted scopes', () => {
    assert.deepEqual(unionScope(['events:read'], ['devices:read', 'events:read']), ['devices:read', 'events:read']);
  });
});
