/**
 * A user's browser for OAuth tests, played by curl (a real HTTP client nobody here wrote): it keeps
 * cookies in a jar file, follows redirects when asked (303 after a POST turns into a GET, as browsers
 * do), and submits the hub's consent form with the fields the page holds.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { curl } from './procs.js';

export interface Page {
  status: number;
  /** The URL of the last response (after redirects). */
  url: string;
  /** Headers of the last response, lower-cased names. */
  headers: Record<string, string>;
  body: string;
}

export interface Form {
  action: string;
  fields: Record<string, string>;
}

const MARK = '\n@@curl@@';

function unescapeHtml(s: string): string {
  return s.replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n))).replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

/** The first form of a page with its hidden fields (what a browser would post along). */
export function formOf(page: Page): Form {
  const m = /<form method="post" action="([^"]+)">/.exec(page.body);
  if (!m) throw new Error(`no form on ${page.url} (${page.status}):\n${page.body.slice(0, 500)}`);
  const fields: Record<string, string> = {};
  for (const f of page.body.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) fields[f[1]!] = unescapeHtml(f[2]!);
  return { action: new URL(unescapeHtml(m[1]!), page.url).href, fields };
}

export class CurlBrowser {
  readonly #dir = mkdtempSync(join(tmpdir(), 'cloudrest-browser-'));
  readonly jar = join(this.#dir, 'cookies.txt');

  async get(url: string, follow = true): Promise<Page> {
    return this.#run([...(follow ? ['-L'] : []), url]);
  }

  /** Posts the form with its hidden fields, `fill` added or replacing them. */
  async submit(form: Form, fill: Record<string, string>, opts: { follow?: boolean; sendCookies?: boolean } = {}): Promise<Page> {
    const data = Object.entries({ ...form.fields, ...fill }).flatMap(([k, v]) => ['--data-urlencode', `${k}=${v}`]);
    return this.#run([...(opts.follow === false ? [] : ['-L']), ...data, form.action], opts.sendCookies !== false);
  }

  async #run(args: string[], cookies = true): Promise<Page> {
    const headerFile = join(this.#dir, `headers-${Date.now()}-${Math.random()}`);
    const jar = cookies ? ['-b', this.jar, '-c', this.jar] : [];
    const { stdout } = await curl([...jar, '-D', headerFile, '-w', `${MARK}%{http_code} %{url_effective}`, ...args]);
    const at = stdout.lastIndexOf(MARK);
    const [status, url] = stdout.slice(at + MARK.length).split(' ') as [string, string];
    // With -L the file holds every response's head; the last block is the final response.
    const blocks = readFileSync(headerFile, 'utf8').split(/\r\n\r\n/).filter((b) => b.trim() !== '');
    rmSync(headerFile, { force: true });
    const headers: Record<string, string> = {};
    for (const line of (blocks.at(-1) ?? '').split('\r\n').slice(1)) {
      const c = line.indexOf(':');
      if (c > 0) headers[line.slice(0, c).trim().toLowerCase()] = line.slice(c + 1).trim();
    }
    return { status: Number(status), url, headers, body: stdout.slice(0, at) };
  }

  close(): void {
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
