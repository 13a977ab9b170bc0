/**
 * A small third-party web service (an IFTTT-style integration) for the OAuth tests: a real HTTP
 * server that sends the user's browser to the hub, receives the redirect, checks `state` and `iss`,
 * exchanges the code with PKCE and its client secret, and then calls the hub with the tokens, all
 * server to server with fetch, as such a service would.
 */
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Tokens {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
  scope: string;
}

interface Session {
  state: string;
  verifier: string;
  tokens?: Tokens;
  /** The code the hub sent, kept so tests can try to replay it. */
  code?: string;
}

export interface HubAnswer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
}

export class ThirdPartyService {
  readonly #server: Server;
  readonly #sessions = new Map<string, Session>();
  #current: Session | undefined;
  url = '';
  clientId = '';
  clientSecret = '';
  /** Codes the service refused to exchange (state or iss did not match). */
  readonly refused: Array<{ reason: string; code: string | null }> = [];

  private constructor(readonly hub: string, readonly scope: string) {
    this.#server = createServer((req, res) => {
      this.#route(req, res).catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(String(err));
      });
    });
  }

  static async start(hub: string, scope: string): Promise<ThirdPartyService> {
    const s = new ThirdPartyService(hub, scope);
    s.#server.listen(0, '127.0.0.1');
    await once(s.#server, 'listening');
    s.url = `http://127.0.0.1:${(s.#server.address() as AddressInfo).port}`;
    return s;
  }

  get callbackUri(): string {
    return `${this.url}/callback`;
  }

  /** The tokens of the latest connection (the tests connect one user per service). */
  tokens(): Tokens {
    if (!this.#current?.tokens) throw new Error('no user connected');
    return this.#current.tokens;
  }

  lastCode(): string | undefined {
    return [...this.#sessions.values()].map((s) => s.code).filter(Boolean).at(-1);
  }

  /** A call to the hub with the connected user's access token. */
  async callHub(path: string, init: RequestInit = {}): Promise<Response> {
    return fetch(`${this.hub}${path}`, { ...init, headers: { authorization: `Bearer ${this.tokens().access_token}`, ...init.headers } });
  }

  /** A form POST to one of the hub's OAuth endpoints, authenticated with HTTP Basic. */
  async postForm(path: string, fields: Record<string, string>, auth: 'basic' | 'none' = 'basic'): Promise<HubAnswer> {
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
    // RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined and base64-encoded.
    if (auth === 'basic') headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(this.clientId)}:${encodeURIComponent(this.clientSecret)}`).toString('base64')}`;
    const r = await fetch(`${this.hub}${path}`, { method: 'POST', headers, body: new URLSearchParams(fields).toString() });
    const text = await r.text();
    return { status: r.status, headers: r.headers, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
  }

  /** grant_type=refresh_token; the service keeps the new tokens when it gets them. */
  async refresh(refreshToken = this.tokens().refresh_token): Promise<HubAnswer> {
    const a = await this.postForm('/v1/oauth/token', { grant_type: 'refresh_token', refresh_token: refreshToken });
    if (a.status === 200 && this.#current) this.#current.tokens = a.body as unknown as Tokens;
    return a;
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (url.pathname === '/connect') {
      const id = randomBytes(16).toString('hex');
      const session: Session = { state: randomBytes(16).toString('base64url'), verifier: randomBytes(48).toString('base64url') };
      this.#sessions.set(id, session);
      const authorize = new URL('/v1/oauth/authorize', this.hub);
      const challenge = createHash('sha256').update(session.verifier).digest('base64url');
      for (const [k, v] of Object.entries({ response_type: 'code', client_id: this.clientId, redirect_uri: this.callbackUri, scope: this.scope, state: session.state, code_challenge: challenge, code_challenge_method: 'S256' })) {
        authorize.searchParams.set(k, v);
      }
      res.writeHead(302, { location: authorize.href, 'set-cookie': `tp_session=${id}; Path=/; HttpOnly; SameSite=Lax` }).end();
      return;
    }
    if (url.pathname === '/callback') {
      const id = /(?:^|;\s*)tp_session=([0-9a-f]+)/.exec(req.headers.cookie ?? '')?.[1];
      const session = id ? this.#sessions.get(id) : undefined;
      const code = url.searchParams.get('code');
      if (!session) return json(400, { connected: false, error: 'no session' });
      // RFC 6749 §10.12: the state must be the one this browser's session sent.
      if (url.searchParams.get('state') !== session.state) {
        this.refused.push({ reason: 'state', code });
        return json(400, { connected: false, error: 'state mismatch' });
      }
      // RFC 9207: the response must come from the authorization server this service used.
      if (url.searchParams.get('iss') !== this.hub) {
        this.refused.push({ reason: 'iss', code });
        return json(400, { connected: false, error: 'iss mismatch' });
      }
      const error = url.searchParams.get('error');
      if (error) return json(200, { connected: false, error });
      if (!code) return json(400, { connected: false, error: 'no code' });
      session.code = code;
      const a = await this.postForm('/v1/oauth/token', { grant_type: 'authorization_code', code, redirect_uri: this.callbackUri, code_verifier: session.verifier });
      if (a.status !== 200) return json(502, { connected: false, hub: a.body });
      session.tokens = a.body as unknown as Tokens;
      this.#current = session;
      return json(200, { connected: true, scope: session.tokens.scope });
    }
    json(404, { error: 'not found' });
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((r) => this.#server.close(() => r()));
  }
}
