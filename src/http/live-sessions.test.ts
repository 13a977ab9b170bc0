import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { UserRecord } from '../store/store.js';
import type { Session } from '../core/auth/authenticator.js';
import { LiveSessions } from './live-sessions.js';

const user: UserRecord = { id: 'u_1', email: 'ada@example.com', passwordHash: 'x', createdAt: 0 };
const session = (tokenHash: string, oauth?: { clientId: string; familyId: string }): Session => ({
  user, expiresAt: Date.now() + 60_000, tokenHash, ...(oauth ? { oauth, scopes: new Set(['events:read']) } : {}),
});

describe('live sessions', () => {
  it('end the connections of a revoked token and no others, each once', () => {
    const live = new LiveSessions();
    const ended: string[] = [];
    live.hold(session('a'.repeat(64)), () => ended.push('a1'));
    live.hold(session('a'.repeat(64)), () => ended.push('a2'));
    live.hold(session('b'.repeat(64)), () => ended.push('b'));
    assert.equal(live.end({ tokenHashes: ['a'.repeat(64), 'c'.repeat(64)] }), 2);
    assert.deepEqual(ended.sort(), ['a1', 'a2']);
    assert.equal(live.end({ tokenHashes: ['a'.repeat(64)] }), 0, 'ended connections are let go');
    assert.equal(live.size, 1);
  });

  it('end the OAuth connections a revocation matches (client, grant or family), never first-party ones', () => {
    const live = new LiveSessions();
    const ended: string[] = [];
    live.hold(session('1'.repeat(64), { clientId: 'c1', familyId: 'f1' }), () => ended.push('f1'));
    live.hold(session('2'.repeat(64), { clientId: 'c1', familyId: 'f2' }), () => ended.push('f2'));
    live.hold(session('3'.repeat(64)), () => ended.push('first-party'));
    assert.equal(live.end({ match: (s) => s.oauth?.familyId === 'f2' }), 1);
    assert.equal(live.end({ match: () => true }), 1, 'a match runs over OAuth sessions only');
    assert.deepEqual(ended, ['f2', 'f1']);
    assert.equal(live.size, 1);
  });

  it('forget a connection once it closes, so the index holds only open ones', () => {
    const live = new LiveSessions();
    let ended = 0;
    const releases = Array.from({ length: 1000 }, (_, i) => live.hold(session(i.toString(16).padStart(64, '0'), { clientId: 'c', familyId: `f${i}` }), () => ended++));
    assert.equal(live.size, 1000);
    for (const release of releases) release();
    assert.equal(live.size, 0);
    assert.equal(live.end({ match: () => true }) + live.end({ tokenHashes: ['0'.repeat(64)] }), 0);
    assert.equal(ended, 0);
  });
});
