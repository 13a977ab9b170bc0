import type { AddressInfo } from 'node:net';
import { simpleParser, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';

/** A message the sink accepted, parsed by mailparser (a real MIME parser, not ours). */
export interface ReceivedMail {
  envelopeTo: string[];
  parsed: ParsedMail;
}

/**
 * A real SMTP server (the smtp-server library) on 127.0.0.1 that keeps what it receives. It can be
 * told to answer the next DATA commands with an error (451 temporary, 550 permanent) or to be slow.
 */
export interface SmtpSink {
  url: string;
  port: number;
  received: ReceivedMail[];
  /** DATA commands that reached the sink, accepted or not. */
  attempts: number;
  /** Reject the next `n` messages with this SMTP code. */
  rejectNext(n: number, code: number): void;
  /** Hold every message this long before answering. */
  delayMs: number;
  /** Resolves when `count` messages have been accepted. */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMail[]>;
  close(): Promise<void>;
}

export async function startSmtpSink(): Promise<SmtpSink> {
  let rejections = 0;
  let rejectCode = 451;
  const waiters: Array<() => void> = [];
  const sink: SmtpSink = {
    url: '',
    port: 0,
    received: [],
    attempts: 0,
    delayMs: 0,
    rejectNext(n, code) {
      rejections = n;
      rejectCode = code;
    },
    waitFor(count, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (sink.received.length >= count) {
            clearTimeout(t);
            resolve(sink.received);
            return true;
          }
          return false;
        };
        const t = setTimeout(() => reject(new Error(`SMTP sink: ${sink.received.length} of ${count} mails within ${timeoutMs} ms`)), timeoutMs);
        if (!check()) waiters.push(() => void check());
      });
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      sink.attempts++;
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        setTimeout(() => {
          if (rejections > 0) {
            rejections--;
            callback(Object.assign(new Error(rejectCode >= 500 ? 'mailbox unavailable' : 'try again later'), { responseCode: rejectCode }));
            return;
          }
          simpleParser(Buffer.concat(chunks)).then((parsed) => {
            sink.received.push({ envelopeTo: session.envelope.rcptTo.map((r) => r.address), parsed });
            callback();
            for (const w of waiters.splice(0)) w();
          }, (err: Error) => callback(err));
        }, sink.delayMs);
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  sink.port = (server.server.address() as AddressInfo).port;
  sink.url = `smtp://127.0.0.1:${sink.port}`;
  return sink;
}
