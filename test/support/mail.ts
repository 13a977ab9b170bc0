import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { simpleParser, type ParsedMail } from 'mailparser';

/** The .eml files in an outbox folder, oldest first (names start with an ISO timestamp). */
export function outboxFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.eml')).sort().map((f) => join(dir, f));
  } catch {
    return [];
  }
}

/** Waits until the outbox holds at least `count` messages; returns them parsed (by mailparser). */
export async function waitForOutbox(dir: string, count: number, timeoutMs = 15_000): Promise<Array<{ file: string; mail: ParsedMail }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const files = outboxFiles(dir);
    if (files.length >= count) return Promise.all(files.map(async (file) => ({ file, mail: await simpleParser(readFileSync(file)) })));
    if (Date.now() > deadline) throw new Error(`outbox ${dir}: ${files.length} of ${count} mails within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The confirmation link in a mail's text part. */
export function confirmationLink(mail: ParsedMail): string {
  const m = /https?:\/\/\S+\/v1\/confirmation\?confirmationId=[A-Za-z0-9_-]+/.exec(mail.text ?? '');
  if (!m) throw new Error(`no confirmation link in:\n${mail.text ?? ''}`);
  return m[0];
}
