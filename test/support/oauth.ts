/** Helpers for the OAuth end-to-end tests. */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { cli } from './procs.js';
import { formOf, type CurlBrowser, type Page } from './curl-browser.js';

export interface Client {
  client_id: string;
  client_secret?: string;
}

/** Registers a client with the real CLI (`cloudrest oauth-clients add --json`). */
export async function registerClient(data: string, name: string, redirectUris: string[], confidential: boolean): Promise<Client> {
  const out = await cli(['oauth-clients', 'add', '--data', data, '--name', name, ...redirectUris.flatMap((u) => ['--redirect-uri', u]), ...(confidential ? ['--confidential'] : []), '--json']);
  return JSON.parse(out) as Client;
}

export function pkce(): { verifier: string; challenge: string } {
  const verifier = randomBytes(48).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export function authorizeUrl(hub: string, q: Record<string, string | undefined>): string {
  const u = new URL('/v1/oauth/authorize', hub);
  for (const [k, v] of Object.entries(q)) if (v !== undefined) u.searchParams.set(k, v);
  return u.href;
}

/** Loads the consent page, submits it with `fill`, and returns the 303's Location (not followed). */
export async function consent(browser: CurlBrowser, url: string, fill: Record<string, string>): Promise<URL> {
  const page = await browser.get(url, false);
  assert.equal(page.status, 200, page.body.slice(0, 400));
  const done = await browser.submit(formOf(page), fill, { follow: false });
  assert.equal(done.status, 303, done.body.slice(0, 400));
  return new URL(done.headers.location!);
}

export interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

/** A form POST to a hub OAuth endpoint; `basic` authenticates with HTTP Basic. */
export async function postForm(hub: string, path: string, fields: Record<string, string>, basic?: Client): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (basic) headers.authorization = `Basic ${Buffer.from(`${basic.client_id}:${basic.client_secret ?? ''}`).toString('base64')}`;
  const r = await fetch(`${hub}${path}`, { method: 'POST', headers, body: new URLSearchParams(fields).toString() });
  const text = await r.text();
  return { status: r.status, headers: r.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

export function errorPageCode(page: Page): string | undefined {
  return /<code>(CR_ERR_[A-Z_]+)<\/code>/.exec(page.body)?.[1];
}
