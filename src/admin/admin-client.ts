/** The CLI's side of the hub's admin socket (admin-socket.ts): one request, one answer line. */
import { connect } from 'node:net';
import { join } from 'node:path';
import { ADMIN_SOCKET_NAME } from './admin-socket.js';

export type HubAnswer =
  | { reached: true; answer: Record<string, unknown> }
  /** No hub listens on this data folder (or it did not answer in time); `why` says which. */
  | { reached: false; why: string };

/** Sends `request` to the hub running on `dataDir`, if any. Never throws. */
export function askHub(dataDir: string, request: Record<string, unknown>, timeoutMs = 5000): Promise<HubAnswer> {
  const path = join(dataDir, ADMIN_SOCKET_NAME);
  return new Promise((resolve) => {
    const s = connect(path);
    let buffered = '';
    let done = false;
    const finish = (r: HubAnswer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish({ reached: false, why: `no answer from ${path} within ${timeoutMs} ms` }), timeoutMs);
    s.setEncoding('utf8');
    s.once('connect', () => s.write(`${JSON.stringify(request)}\n`));
    s.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      try {
        finish({ reached: true, answer: JSON.parse(buffered.slice(0, nl)) as Record<string, unknown> });
      } catch {
        finish({ reached: false, why: 'the hub answered something that is not JSON' });
      }
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ENOENT' || err.code === 'ECONNREFUSED' ? `no hub is running on ${dataDir}` : `${path}: ${err.message}`;
      finish({ reached: false, why });
    });
    s.once('close', () => finish({ reached: false, why: 'the hub closed the admin connection without answering' }));
  });
}
