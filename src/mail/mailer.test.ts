import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { simpleParser } from 'mailparser';
import { pino } from 'pino';
import { tempDir } from '../../test/support/procs.js';
import { startSmtpSink } from '../../test/support/smtp-sink.js';
import { Mailer, checkSmtpUrl, redactedSmtpUrl, type MailEvent, type MailResult } from './mailer.js';

const log = pino({ level: 'silent' });
const mail = (to: string) => ({ to, subject: 'Confirm your email', text: `Hello ${to}, follow https://hub.example.com/v1/confirmation?confirmationId=${'x'.repeat(60)}` });

function result(): { done: (r: MailResult) => void; promise: Promise<MailResult> } {
  let done!: (r: MailResult) => void;
  const promise = new Promise<MailResult>((r) => (done = r));
  return { done, promise };
}

describe('mailer', () => {
  const dirs: Array<{ remove(): void }> = [];
  after(() => dirs.forEach((d) => d.remove()));

  it('writes each mail to the outbox as an .eml file only its owner can read', async () => {
    const dir = tempDir();
    dirs.push(dir);
    const outbox = join(dir.path, 'outbox');
    const m = new Mailer({ outbox, from: 'cloudrest <noreply@hub.example.com>', retries: 0, retryMs: 10 }, log);
    const r = result();
    assert.equal(m.send(mail('ada@example.com'), r.done), true);
    const outcome = await r.promise;
    assert.equal(outcome.ok, true);
    const files = readdirSync(outbox);
    assert.equal(files.length, 1);
    assert.match(files[0]!, /\.eml$/);
    assert.equal(outcome.ok && outcome.file, join(outbox, files[0]!));
    assert.equal(statSync(join(outbox, files[0]!)).mode & 0o777, 0o600);
    assert.equal(statSync(outbox).mode & 0o777, 0o700);
    const parsed = await simpleParser(readFileSync(join(outbox, files[0]!)));
    assert.equal(parsed.subject, 'Confirm your email');
    assert.equal(parsed.from?.text, '"cloudrest" <noreply@hub.example.com>');
    assert.match(parsed.text ?? '', new RegExp(`confirmationId=${'x'.repeat(60)}`));
    await m.close();
  });

  it('delivers through a real SMTP server', async () => {
    const sink = await startSmtpSink();
    const m = new Mailer({ smtpUrl: sink.url, outbox: '/nonexistent', from: 'noreply@hub.example.com', retries: 0, retryMs: 10 }, log);
    try {
      const r = result();
      m.send(mail('bob@example.com'), r.done);
      assert.deepEqual(await r.promise, { ok: true });
      const [got] = await sink.waitFor(1);
      assert.deepEqual(got!.envelopeTo, ['bob@example.com']);
      assert.equal(got!.parsed.subject, 'Confirm your email');
    } finally {
      await m.close();
      await sink.close();
    }
  });

  it('retries a temporary SMTP failure with backoff and then delivers', async () => {
    const sink = await startSmtpSink();
    const events: MailEvent[] = [];
    const m = new Mailer({ smtpUrl: sink.url, outbox: '/nonexistent', from: 'noreply@hub.example.com', retries: 3, retryMs: 20 }, log, (e) => events.push(e));
    try {
      sink.rejectNext(2, 451);
      const r = result();
      const started = Date.now();
      m.send(mail('carol@example.com'), r.done);
      assert.deepEqual(await r.promise, { ok: true });
      assert.ok(Date.now() - started >= 20 + 40, 'waited 20 ms, then 40 ms');
      assert.equal(sink.attempts, 3);
      assert.deepEqual(events, ['retried', 'retried', 'sent']);
    } finally {
      await m.close();
      await sink.close();
    }
  });

  it('gives up after its retries and says so', async () => {
    const sink = await startSmtpSink();
    const events: MailEvent[] = [];
    const m = new Mailer({ smtpUrl: sink.url, outbox: '/nonexistent', from: 'noreply@hub.example.com', retries: 2, retryMs: 5 }, log, (e) => events.push(e));
    try {
      sink.rejectNext(100, 550);
      const r = result();
      m.send(mail('dave@example.com'), r.done);
      const outcome = await r.promise;
      assert.equal(outcome.ok, false);
      assert.match(!outcome.ok ? outcome.error : '', /550/);
      assert.equal(sink.attempts, 3, 'one attempt and two retries');
      assert.deepEqual(events, ['retried', 'retried', 'failed']);
      assert.equal(m.pending, 0);
    } finally {
      await m.close();
      await sink.close();
    }
  });

  it('retries when no SMTP server answers, without throwing', async () => {
    const sink = await startSmtpSink();
    const url = sink.url;
    await sink.close(); // nothing listens there now
    const m = new Mailer({ smtpUrl: url, outbox: '/nonexistent', from: 'noreply@hub.example.com', retries: 1, retryMs: 5 }, log);
    const r = result();
    m.send(mail('erin@example.com'), r.done);
    const outcome = await r.promise;
    assert.equal(outcome.ok, false);
    assert.match(!outcome.ok ? outcome.error : '', /ECONNREFUSED/);
    await m.close();
  });

  it('refuses mail beyond its queue bound instead of buffering it', async () => {
    const sink = await startSmtpSink();
    sink.delayMs = 300;
    const events: MailEvent[] = [];
    const m = new Mailer({ smtpUrl: sink.url, outbox: '/nonexistent', from: 'noreply@hub.example.com', retries: 0, retryMs: 5, maxQueued: 2, concurrency: 1 }, log, (e) => events.push(e));
    try {
      const accepted = ['a', 'b', 'c', 'd'].map((n) => m.send(mail(`${n}@example.com`)));
      assert.deepEqual(accepted, [true, true, true, false], 'one in progress, two queued, the fourth refused');
      await m.idle();
      assert.equal(sink.received.length, 3);
      assert.deepEqual(events.sort(), ['dropped', 'sent', 'sent', 'sent']);
    } finally {
      await m.close();
      await sink.close();
    }
  });

  it('checks SMTP URLs at start and hides their password in logs', () => {
    assert.equal(checkSmtpUrl('smtp://mail.example.com:587'), undefined);
    assert.equal(checkSmtpUrl('smtps://u:p@mail.example.com'), undefined);
    assert.match(checkSmtpUrl('http://mail.example.com') ?? '', /smtp:\/\/ or smtps:\/\//);
    assert.match(checkSmtpUrl('not a url') ?? '', /not a URL/);
    assert.equal(redactedSmtpUrl('smtp://user:secret@mail.example.com:587'), 'smtp://user:***@mail.example.com:587');
  });
});
