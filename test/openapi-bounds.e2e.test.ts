// The request bodies of docs/openapi.json against a real hub: for every JSON body the document
// describes, each published length bound, required field and additionalProperties rule is tried just
// inside and just outside, and the hub must accept or refuse exactly there.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { sha256Hex } from '../src/core/secrets.js';
import { addFactoryKey } from './support/factory.js';
import { startInProcessHub, type InProcessHub } from './support/in-process-hub.js';
import { exampleUrl, operations, readDocument, resolve, send, type Obj, type Operation } from './support/openapi.js';

const doc = readDocument();

interface Prepared {
  headers?: Record<string, string>;
  /** Fields that replace the example's (a fresh link, a fresh device id, the user's real password). */
  fields?: Obj;
  /** Makes a variant consistent where one field depends on another (passwordRepeat follows password). */
  adjust?: (body: Obj) => Obj;
}

/** One try: a field at or past a bound, a required field left out, or a field the schema does not name. */
interface Variant {
  what: string;
  apply: (base: Obj) => Obj;
  /** 'refused': 400 CR_ERR_VALIDATION; 'accepted': anything but that; 'rejected': some 4xx. */
  expect: 'refused' | 'accepted' | 'rejected';
}

/** A string of length n shaped like the example: an email keeps its domain. */
function sized(example: unknown, n: number): string {
  const s = typeof example === 'string' ? example : '';
  const at = s.lastIndexOf('@');
  return at > 0 && n > s.length - at ? 'a'.repeat(n - (s.length - at)) + s.slice(at) : 'a'.repeat(n);
}

function variants(schema: Obj): Variant[] {
  const out: Variant[] = [];
  const sizedAs = (name: string, n: number) => (base: Obj) => ({ ...base, [name]: sized(base[name], n) });
  for (const [name, p] of Object.entries((schema.properties ?? {}) as Record<string, Obj>)) {
    const min = p.minLength as number | undefined;
    const max = p.maxLength as number | undefined;
    if (min !== undefined && min > 0) {
      out.push({ what: `${name} of ${min - 1} characters (minLength ${min})`, apply: sizedAs(name, min - 1), expect: 'refused' });
      out.push({ what: `${name} of ${min} characters (minLength)`, apply: sizedAs(name, min), expect: 'accepted' });
    }
    if (max !== undefined) {
      out.push({ what: `${name} of ${max} characters (maxLength)`, apply: sizedAs(name, max), expect: 'accepted' });
      out.push({ what: `${name} of ${max + 1} characters (maxLength ${max})`, apply: sizedAs(name, max + 1), expect: 'refused' });
    }
  }
  for (const name of (schema.required as string[] | undefined) ?? []) {
    out.push({ what: `without required ${name}`, apply: ({ [name]: _, ...rest }) => rest, expect: 'rejected' });
  }
  out.push({ what: 'with an unknown field', apply: (base) => ({ ...base, unexpectedField: 'x' }), expect: schema.additionalProperties === false ? 'refused' : 'accepted' });
  return out;
}

describe('request bodies: the bounds the document publishes are the ones the hub enforces', () => {
  let h: InProcessHub;
  let factoryKey: string;

  /** A confirmation link as a device's first connection would leave it (the hub mails its id). */
  const newConfirmation = async (): Promise<{ id: string; email: string }> => {
    const id = randomBytes(32).toString('base64url');
    const email = `u${randomBytes(6).toString('hex')}@example.com`;
    await h.hub.store.createConfirmation({ idHash: sha256Hex(id), email, deviceId: null, createdAt: Date.now(), expiresAt: Date.now() + 3_600_000 });
    return { id, email };
  };

  /** A new account through the API (the link, then sign-in), with a token of its own. */
  const newUser = async (): Promise<{ token: string; password: string; email: string }> => {
    const { id, email } = await newConfirmation();
    const password = 'correct horse battery';
    const made = await send(`${h.url}/v1/confirmation`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ confirmationId: id, password }) });
    assert.equal(made.status, 201, made.text);
    const login = await send(`${h.url}/v1/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password }) });
    assert.equal(login.status, 200, login.text);
    return { token: (JSON.parse(login.text) as { access_token: string }).access_token, password, email };
  };
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  /** What each operation with a JSON body needs besides its example; a new one without an entry fails the test. */
  const setups: Record<string, () => Promise<Prepared>> = {
    'POST /v1/auth': async () => ({}),
    'POST /v1/auth/password': async () => {
      const u = await newUser();
      return { headers: bearer(u.token), fields: { current: u.password } };
    },
    'POST /v1/confirmation': async () => ({ fields: { confirmationId: (await newConfirmation()).id }, adjust: (b) => ('passwordRepeat' in b && typeof b.password === 'string' ? { ...b, passwordRepeat: b.password } : b) }),
    'POST /v1/confirmation/resend': async () => ({ fields: { confirmationId: (await newConfirmation()).id } }),
    'POST /v1/devices/{id}/auth': async () => ({ headers: bearer((await newUser()).token) }),
    'POST /v1/ownership': async () => {
      // A device that named the new user's email (a pending claim) and the link the hub would mail.
      const u = await newUser();
      const deviceId = `d_${randomBytes(6).toString('hex')}`;
      await h.hub.store.createDevice({ id: deviceId, name: 'Claimer', email: null, secretHash: 'x' });
      await h.hub.store.updateDeviceInfo(deviceId, { email: u.email }, Date.now());
      const claimId = randomBytes(32).toString('base64url');
      await h.hub.store.createConfirmation({ idHash: sha256Hex(claimId), purpose: 'claim', email: u.email, deviceId, createdAt: Date.now(), expiresAt: Date.now() + 3_600_000 });
      return { fields: { claimId } };
    },
    'POST /v1/factory/devices': async () => ({ headers: bearer(factoryKey), fields: { id: `SN-${randomBytes(6).toString('hex')}` } }),
    'POST /v1/oauth/authorize': async () => ({ headers: bearer((await newUser()).token) }),
    'POST /v1/oauth/authorize/validate': async () => ({}),
  };

  before(async () => {
    h = await startInProcessHub(['--login-max-failures', '1000', '--login-max-failures-per-address', '1000']);
    factoryKey = (await addFactoryKey(h.data)).key;
  });
  after(async () => {
    await h?.stop();
  });

  it('every JSON body field is accepted at its bounds and refused past them; required and unknown fields are treated as documented', async () => {
    const withJson = operations(doc).filter((o) => (o.op.requestBody as { content?: Obj } | undefined)?.content?.['application/json'] !== undefined);
    assert.deepEqual(withJson.map(name).filter((n) => !(n in setups)), [], 'operations with a JSON body the test does not know how to call');
    const problems: string[] = [];
    let tried = 0;
    for (const o of withJson) {
      const media = resolve(doc, `${o.pointer}/requestBody/content/application~1json`).value;
      const schema = resolve(doc, `${o.pointer}/requestBody/content/application~1json/schema`).value;
      assert.ok(media.example !== undefined, `${name(o)} has an example body`);
      for (const v of variants(schema)) {
        // Each try gets fresh state: a used link, a changed password or a taken id must not decide the next.
        const p = await setups[name(o)]!();
        const body = (p.adjust ?? ((b: Obj) => b))(v.apply({ ...(media.example as Obj), ...p.fields }));
        const answer = await send(`${h.url}${exampleUrl(doc, o)}`, { method: o.method, headers: { 'content-type': 'application/json', ...p.headers }, body: JSON.stringify(body) });
        tried++;
        const code = answer.text.startsWith('{') ? (JSON.parse(answer.text) as { error?: { code?: string } }).error?.code : undefined;
        const refused = answer.status === 400 && code === 'CR_ERR_VALIDATION';
        const ok = v.expect === 'refused' ? refused : v.expect === 'accepted' ? !refused : answer.status >= 400 && answer.status < 500;
        if (!ok) problems.push(`${name(o)} ${v.what}: expected ${v.expect}, got ${answer.status} ${code ?? answer.text.slice(0, 80)}`);
      }
    }
    assert.ok(tried >= 60, `${tried} requests`);
    assert.deepEqual(problems, []);
  });
});

function name(o: Operation): string {
  return `${o.method.toUpperCase()} ${o.path}`;
}
