/**
 * Outgoing mail. Through an SMTP server (nodemailer) when `--smtp-url` is set; otherwise, the embedded
 * default, each message is written as an RFC 5322 `.eml` file to the outbox folder, so a hub with no
 * mail server still works (an operator or a test reads the file).
 *
 * send() only queues: delivery runs in the background, a few at a time, with bounded retries and
 * exponential backoff, so no caller (the tunnel handshake above all) ever waits for a mail server.
 * The queue is bounded; a full queue refuses the mail and says so.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import type { Transporter } from 'nodemailer';
import type { Logger } from 'pino';

export interface Mail {
  to: string;
  subject: string;
  text: string;
  html?: string;
}

export interface MailerOptions {
  /** `smtp://[user:pass@]host[:port]` (STARTTLS when offered) or `smtps://...` (TLS from the start). */
  smtpUrl?: string | undefined;
  /** Folder for `.eml` files when there is no SMTP server. */
  outbox: string;
  /** The From: header, e.g. `cloudrest <noreply@hub.example.com>`. */
  from: string;
  /** Further attempts after the first failed one. */
  retries: number;
  /** Wait before the first retry; doubles each time. */
  retryMs: number;
  /** Mails waiting (for a first attempt or a retry) at most. */
  maxQueued?: number;
  /** Deliveries in progress at once. */
  concurrency?: number;
}

export type MailResult = { ok: true; file?: string } | { ok: false; error: string };
export type MailEvent = 'sent' | 'retried' | 'failed' | 'dropped';

interface Job {
  mail: Mail;
  attempt: number;
  done: ((r: MailResult) => void) | undefined;
}

/** Validates an SMTP URL early (at start-up), with a message naming the option. */
export function checkSmtpUrl(url: string): string | undefined {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `--smtp-url: not a URL: ${url}`;
  }
  if (u.protocol !== 'smtp:' && u.protocol !== 'smtps:') return '--smtp-url: must start with smtp:// or smtps://';
  if (u.hostname === '') return '--smtp-url: needs a host name';
  return undefined;
}

/** The SMTP URL with its password hidden, for logs. */
export function redactedSmtpUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(invalid URL)';
  }
}

export class Mailer {
  readonly kind: 'smtp' | 'outbox';
  readonly #transport: Transporter;
  readonly #queue: Job[] = [];
  readonly #retryTimers = new Set<NodeJS.Timeout>();
  readonly #maxQueued: number;
  readonly #concurrency: number;
  #active = 0;
  #closed = false;
  #outboxReady: Promise<void> | undefined;
  readonly #idle = new Set<() => void>();

  constructor(
    private readonly opts: MailerOptions,
    private readonly log: Logger,
    private readonly onEvent: (e: MailEvent) => void = () => {},
  ) {
    this.#maxQueued = opts.maxQueued ?? 1000;
    this.#concurrency = opts.concurrency ?? 2;
    if (opts.smtpUrl) {
      this.kind = 'smtp';
      // Short timeouts: a dead mail server costs a retry, not minutes of a delivery slot.
      this.#transport = nodemailer.createTransport({ url: opts.smtpUrl, connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 30_000 });
    } else {
      this.kind = 'outbox';
      this.#transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
    }
  }

  /** Mails queued or waiting for a retry. */
  get pending(): number {
    return this.#queue.length + this.#retryTimers.size + this.#active;
  }

  /**
   * Queues a mail; `done` is told how it ended (after the last retry, if it comes to that). Returns
   * false, and queues nothing, when the queue is full or the mailer is closed.
   */
  send(mail: Mail, done?: (r: MailResult) => void): boolean {
    if (this.#closed || this.#queue.length + this.#retryTimers.size >= this.#maxQueued) {
      this.onEvent('dropped');
      this.log.error({ to: mail.to, queued: this.pending }, this.#closed ? 'mail not sent: the hub is stopping' : 'mail not sent: the mail queue is full');
      return false;
    }
    this.#queue.push({ mail, attempt: 0, done });
    this.#pump();
    return true;
  }

  /** Resolves when nothing is queued, retrying or in progress (tests, shutdown). */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.add(resolve));
  }

  /**
   * Stops: queued mails and pending retries are abandoned (their `done` is told); deliveries in
   * progress get up to `graceMs` to finish, so a stuck mail server cannot hold up a shutdown.
   */
  async close(graceMs = 5000): Promise<void> {
    this.#closed = true;
    for (const t of this.#retryTimers) clearTimeout(t);
    this.#retryTimers.clear();
    for (const job of this.#queue.splice(0)) job.done?.({ ok: false, error: 'the hub stopped before the mail was sent' });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.idle(), new Promise<void>((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    this.#transport.close();
  }

  #pump(): void {
    while (this.#active < this.#concurrency && this.#queue.length > 0 && !this.#closed) {
      const job = this.#queue.shift()!;
      this.#active++;
      this.#deliver(job.mail).then(
        (file) => {
          this.#active--;
          this.onEvent('sent');
          this.log.info({ to: job.mail.to, subject: job.mail.subject, ...(file ? { file } : {}), attempt: job.attempt + 1 }, this.kind === 'smtp' ? 'mail sent' : 'mail written to the outbox');
          job.done?.({ ok: true, ...(file ? { file } : {}) });
          this.#next();
        },
        (err: unknown) => {
          this.#active--;
          this.#failed(job, err instanceof Error ? err.message : String(err));
          this.#next();
        },
      );
    }
  }

  #next(): void {
    this.#pump();
    if (this.pending === 0) for (const resolve of this.#idle) resolve();
    if (this.pending === 0) this.#idle.clear();
  }

  #failed(job: Job, error: string): void {
    if (job.attempt < this.opts.retries && !this.#closed) {
      const delay = this.opts.retryMs * 2 ** job.attempt;
      this.onEvent('retried');
      this.log.warn({ to: job.mail.to, attempt: job.attempt + 1, retryInMs: delay, err: error }, 'mail delivery failed; will retry');
      const t = setTimeout(() => {
        this.#retryTimers.delete(t);
        this.#queue.push({ ...job, attempt: job.attempt + 1 });
        this.#pump();
      }, delay);
      this.#retryTimers.add(t); // close() clears it: a pending retry does not hold the hub open

      return;
    }
    this.onEvent('failed');
    this.log.error({ to: job.mail.to, attempts: job.attempt + 1, err: error }, 'mail delivery failed; giving up');
    job.done?.({ ok: false, error });
  }

  /** One attempt; resolves with the .eml file written (outbox) or undefined (SMTP). */
  async #deliver(mail: Mail): Promise<string | undefined> {
    const message = { from: this.opts.from, to: mail.to, subject: mail.subject, text: mail.text, ...(mail.html ? { html: mail.html } : {}) };
    const info = (await this.#transport.sendMail(message)) as { message?: Buffer };
    if (this.kind === 'smtp') return undefined;
    this.#outboxReady ??= mkdir(this.opts.outbox, { recursive: true, mode: 0o700 }).then(() => undefined);
    await this.#outboxReady;
    const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(4).toString('hex')}.eml`;
    const file = join(this.opts.outbox, name);
    // Written aside and renamed, so a reader of the folder never sees half a message. 0600: the
    // message holds a confirmation link, as good as a password until it is used.
    await writeFile(`${file}.tmp`, info.message ?? Buffer.alloc(0), { mode: 0o600 });
    await rename(`${file}.tmp`, file);
    return file;
  }
}
