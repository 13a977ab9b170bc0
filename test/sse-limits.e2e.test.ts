import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { addUser, login } from './support/procs.js';
import { startWorld, type World } from './support/world.js';

interface Opened {
  status: number;
  retryAfter: string | null;
  code: string | undefined;
  close(): void;
}

/** Opens an event stream; a refusal's body is read, an accepted stream stays open until close(). */
async function openStream(url: string, token: string): Promise<Opened> {
  const ac = new AbortController();
  const r = await fetch(url, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` }, signal: ac.signal });
  const code = r.status === 200 ? undefined : ((await r.json()) as { error: { code: string } }).error.code;
  return { status: r.status, retryAfter: r.headers.get('retry-after'), code, close: () => ac.abort() };
}

describe('event streams: one user cannot take every stream slot', () => {
  let w: World;
  let other: string;
  const streams: Opened[] = [];
  before(async () => {
    // 20 slots in the hub, 5 per user, shared by the three SSE routes.
    w = await startWorld({ hubArgs: ['--max-sse-clients', '20', '--max-sse-clients-per-user', '5'] });
    await addUser(w.data.path, 'other@example.com', 'another long password');
    other = await login(w.hub.url, 'other@example.com', 'another long password');
  });
  after(async () => {
    for (const s of streams) s.close();
    await w?.stop();
  });

  it('refuses a user past their limit over /v1/events, /v1/devices/{id}/events and /v1/topics/events with 429 CR_ERR_TOO_MANY_STREAMS, and another user still gets a stream', async () => {
    const routes = [
      `${w.hub.url}/v1/events`,
      `${w.hub.url}/v1/devices/${w.deviceId}/events`,
      `${w.hub.url}/v1/topics/events?filter=${encodeURIComponent(`devices/${w.deviceId}/events`)}`,
    ];
    // The first user asks for more streams than the whole hub holds.
    const mine: Opened[] = [];
    for (let i = 0; i < 25; i++) mine.push(await openStream(routes[i % 3]!, w.token));
    streams.push(...mine);
    const accepted = mine.filter((s) => s.status === 200).length;
    process.stdout.write(`# one user asking for 25 streams: ${accepted} accepted\n`);
    assert.equal(accepted, 5, `statuses ${mine.map((s) => s.status).join(',')}`);
    const refused = mine.filter((s) => s.status !== 200);
    assert.ok(refused.every((s) => s.status === 429 && s.code === 'CR_ERR_TOO_MANY_STREAMS' && s.retryAfter === '5'), JSON.stringify(refused.slice(0, 3)));
    assert.deepEqual(new Set(refused.map((_, i) => i % 3)).size, 3);
    // Before the per-user limit the first user held all 20 slots and this was 429.
    const theirs = await openStream(routes[0]!, other);
    streams.push(theirs);
    assert.equal(theirs.status, 200, `the second user gets a stream: ${theirs.code}`);
    // A stream that closes gives its slot back.
    mine.find((s) => s.status === 200)!.close();
    let again: Opened | undefined;
    for (let i = 0; i < 40 && again?.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 50));
      again = await openStream(routes[0]!, w.token);
      streams.push(again);
    }
    assert.equal(again?.status, 200);
  });
});
