import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, it, type TestContext } from 'node:test';
import { simpleParser } from 'mailparser';
import { pino } from 'pino';
import { tempDir } from '../../test/support/procs.js';
import { Mailer } from '../mail/mailer.js';
import { SqliteStore } from '../store/sqlite/sqlite-store.js';
import { Registration, type RegistrationOptions } from './registration.js';

const DEFAULTS: RegistrationOptions = { confirmationTtlMs: 3_600_000, resendMs: 3_600_000, maxPerHour: 100, maxPerAddressPerDay: 5, maxPerDevicePerDay: 5 };

interface Rig {
  reg: Registration;
  /** Moves the registration's clock forward. */
  advance(ms: number): void;
  store: SqliteStore;
  mailer: Mailer;
  outbox: string;
  /** The next 'queued' or 'held back' log line, after `fn` ran. */
  outcome(fn: () => void): Promise<Record<string, unknown>>;
  mails(): Promise<Array<{ to: string; link: string }>>;
}

const dirs: Array<{ remove(): void }> = [];
after(() => dirs.forEach((d) => d.remove()));

async function rig(t: TestContext, opts: Partial<RegistrationOptions> = {}): Promise<Rig> {
  const dir = tempDir();
  dirs.push(dir);
  const outbox = join(dir.path, 'outbox');
  const lines: Array<Record<string, unknown>> = [];
  const waiters: Array<(l: Record<string, unknown>) => boolean> = [];
  const log = pino({ level: 'info' }, new Writable({
    write(chunk: Buffer, _enc, cb) {
      const l = JSON.parse(chunk.toString()) as Record<string, unknown>;
      lines.push(l);
      for (const w of [...waiters]) if (w(l)) waiters.splice(waiters.indexOf(w), 1);
      cb();
    },
  }));
  const store = SqliteStore.open(':memory:');
  await store.migrate();
  const mailer = new Mailer({ outbox, from: 'noreply@hub.example.com', retries: 0, retryMs: 10 }, log);
  let skew = 0;
  const reg = new Registration({ ...DEFAULTS, ...opts }, { store, mailer, log, publicUrl: () => 'https://hub.example.com/', clock: () => Date.now() + skew });
  t.after(async () => {
    await mailer.close();
    await store.close();
  });
  return {
    reg, store, mailer, outbox,
    advance: (ms) => {
      skew += ms;
    },
    outcome(fn) {
      const p = new Promise<Record<string, unknown>>((resolve) => waiters.push((l) => {
        if (l.msg !== 'confirmation mail queued' && l.msg !== 'confirmation mail held back') return false;
        setImmediate(() => resolve(l)); // once the look-up has finished, not just logged
        return true;
      }));
      fn();
      return p;
    },
    async mails() {
      await mailer.idle();
      const files = (() => {
        try {
          return readdirSync(outbox).sort();
        } catch {
          return [];
        }
      })();
      return Promise.all(files.map(async (f) => {
        const m = await simpleParser(readFileSync(join(outbox, f)));
        return { to: m.to && !Array.isArray(m.to) ? m.to.text : '', link: /https:\/\/\S+\/v1\/confirmation\S+/.exec(m.text ?? '')![0] };
      }));
    },
  };
}

const idOf = (link: string) => new URL(link).searchParams.get('confirmationId')!;

describe('registration from the device', () => {
  it('mails a confirmation link to an email no user has, and records it only as a hash', async (t) => {
    const r = await rig(t);
    const queued = await r.outcome(() => r.reg.deviceConnected('d_1', { email: ' New@Example.com ', name: 'Living room' }));
    assert.equal(queued.msg, 'confirmation mail queued');
    assert.equal(queued.email, 'new@example.com');
    const [mail] = await r.mails();
    assert.equal(mail!.to, 'new@example.com');
    assert.match(mail!.link, /^https:\/\/hub\.example\.com\/v1\/confirmation\?confirmationId=[A-Za-z0-9_-]{43}$/);
    assert.equal(queued.link, mail!.link, 'with no mail server, the link is logged');
    const state = await r.reg.inspect(idOf(mail!.link));
    assert.equal(state.status, 'valid');
    assert.equal(await r.store.getConfirmation(idOf(mail!.link)), undefined, 'the id itself is not stored');
  });

  it('sends nothing for an email that already has a user, or for one that is not an address', async (t) => {
    const r = await rig(t);
    await r.store.createUser({ id: 'u_1', email: 'ada@example.com', passwordHash: 'h' });
    r.reg.deviceConnected('d_1', { email: 'ADA@example.com' });
    r.reg.deviceConnected('d_2', { email: 'not an address' });
    r.reg.deviceConnected('d_3', { email: 'x@y\r\nBcc: victim@example.com' });
    r.reg.deviceConnected('d_4', { name: 'no email at all' });
    // A later device with a new email proves the earlier ones were looked at and sent nothing.
    await r.outcome(() => r.reg.deviceConnected('d_5', { email: 'late@example.com' }));
    assert.deepEqual((await r.mails()).map((m) => m.to), ['late@example.com']);
  });

  it('does not mail again when the device reconnects within the resend interval', async (t) => {
    const r = await rig(t);
    await r.outcome(() => r.reg.deviceConnected('d_1', { email: 'new@example.com' }));
    for (let i = 0; i < 3; i++) {
      const held = await r.outcome(() => r.reg.deviceConnected('d_1', { email: 'new@example.com' }));
      assert.equal(held.reason, 'sent recently');
    }
    assert.equal((await r.mails()).length, 1);
  });

  it('bounds mail per address per day, per device per day and per hub per hour', async (t) => {
    const perAddress = await rig(t, { resendMs: 0, maxPerAddressPerDay: 2 });
    const reasons = [];
    for (let i = 0; i < 3; i++) reasons.push((await perAddress.outcome(() => perAddress.reg.deviceConnected(`d_${i}`, { email: 'a@example.com' }))).reason);
    assert.deepEqual(reasons, [undefined, undefined, 'address daily limit']);

    const rogue = await rig(t, { maxPerDevicePerDay: 2 });
    const rogueReasons = [];
    for (let i = 0; i < 4; i++) rogueReasons.push((await rogue.outcome(() => rogue.reg.deviceConnected('d_rogue', { email: `victim${i}@example.com` }))).reason);
    assert.deepEqual(rogueReasons, [undefined, undefined, 'device daily limit', 'device daily limit']);
    assert.equal((await rogue.mails()).length, 2);

    const hub = await rig(t, { maxPerHour: 2 });
    const hubReasons = [];
    for (let i = 0; i < 3; i++) hubReasons.push((await hub.outcome(() => hub.reg.deviceConnected(`d_${i}`, { email: `user${i}@example.com` }))).reason);
    assert.deepEqual(hubReasons, [undefined, undefined, 'hub hourly limit']);
  });

  it('confirms once with a password, creating the user; the link then reads as used', async (t) => {
    const r = await rig(t);
    await r.outcome(() => r.reg.deviceConnected('d_1', { email: 'new@example.com' }));
    const id = idOf((await r.mails())[0]!.link);
    assert.deepEqual(await r.reg.confirm('A'.repeat(43), 'a good password', '127.0.0.1'), { status: 'unknown' });
    assert.deepEqual(await r.reg.confirm('bad id!', 'a good password', '127.0.0.1'), { status: 'unknown' });
    const ok = await r.reg.confirm(id, 'a good password', '127.0.0.1');
    assert.equal(ok.status, 'confirmed');
    const user = await r.store.getUserByEmail('new@example.com');
    assert.equal(user?.id, ok.status === 'confirmed' ? ok.user.id : '');
    assert.match(user!.passwordHash, /^scrypt\$/);
    assert.deepEqual(await r.reg.confirm(id, 'another password', '127.0.0.1'), { status: 'used', email: 'new@example.com' });
    assert.equal((await r.store.getUserByEmail('new@example.com'))?.passwordHash, user!.passwordHash);
  });

  it('treats an expired link as expired, and mails a new one on request', async (t) => {
    const r = await rig(t, { confirmationTtlMs: 60_000, resendMs: 10 });
    await r.outcome(() => r.reg.deviceConnected('d_1', { email: 'late@example.com', name: 'Kitchen' }));
    const id = idOf((await r.mails())[0]!.link);
    r.advance(60_000);
    assert.deepEqual(await r.reg.inspect(id), { status: 'expired', email: 'late@example.com' });
    assert.deepEqual(await r.reg.confirm(id, 'a good password', '127.0.0.1'), { status: 'expired', email: 'late@example.com' });
    assert.equal(await r.store.getUserByEmail('late@example.com'), undefined);
    assert.deepEqual(await r.reg.resend(id), { status: 'sent', email: 'late@example.com' });
    const mails = await r.mails();
    assert.equal(mails.length, 2);
    const fresh = idOf(mails[1]!.link);
    assert.notEqual(fresh, id);
    assert.equal((await r.reg.confirm(fresh, 'a good password', '127.0.0.1')).status, 'confirmed');
    assert.deepEqual(await r.reg.resend(fresh), { status: 'used', email: 'late@example.com' });
  });

  it('leaves a user added meanwhile (cloudrest users add) untouched', async (t) => {
    const r = await rig(t);
    await r.outcome(() => r.reg.deviceConnected('d_1', { email: 'new@example.com' }));
    const id = idOf((await r.mails())[0]!.link);
    await r.store.createUser({ id: 'u_cli', email: 'new@example.com', passwordHash: 'set by the operator' });
    assert.deepEqual(await r.reg.inspect(id), { status: 'registered', email: 'new@example.com' });
    assert.deepEqual(await r.reg.confirm(id, 'a good password', '127.0.0.1'), { status: 'registered', email: 'new@example.com' });
    assert.equal((await r.store.getUserByEmail('new@example.com'))?.passwordHash, 'set by the operator');
  });

  it('forgets confirmations once they matter neither as links nor for the limits', async (t) => {
    const r = await rig(t);
    await r.outcome(() => r.reg.deviceConnected('d_1', { email: 'new@example.com' }));
    assert.equal(await r.reg.sweep(), 0);
    r.advance(26 * 3_600_000);
    assert.equal(await r.reg.sweep(), 1);
  });
});
