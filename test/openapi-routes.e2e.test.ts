// The OpenAPI document against a real hub (createHub on free ports, temp data): what it serves, which
// routes it has, what each one answers, and the body schemas fastify enforces.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { startInProcessHub, type InProcessHub } from './support/in-process-hub.js';
import { DocumentSchemas, exampleUrl, mediaType, operations, readDocument, resolve, send, withoutAnnotations, type Obj } from './support/openapi.js';

const doc = readDocument();

/** `/v1/devices/:id` and `/v1/topics/*` (fastify) and `/v1/devices/{id}` (OpenAPI) all read `/v1/devices/{}`. */
const shape = (path: string) => path.replace(/\{[^}]+\}|:[^/]+|\*/g, '{}');

describe('the OpenAPI document and a running hub', () => {
  let h: InProcessHub;

  before(async () => {
    h = await startInProcessHub();
  });
  after(async () => {
    await h?.stop();
  });

  it('GET /v1/openapi.json serves docs/openapi.json, a valid OpenAPI 3.1 document, to anyone', async () => {
    const r = await fetch(`${h.url}/v1/openapi.json`, { headers: { origin: 'https://console.example' } });
    assert.equal(r.status, 200);
    assert.equal(mediaType(r.headers.get('content-type') ?? ''), 'application/json');
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    const served = (await r.json()) as Obj;
    assert.deepEqual(served, doc);
    const validator = new Validator();
    const result = await validator.validate(served);
    assert.equal(result.valid, true, JSON.stringify(result.errors)?.slice(0, 2000));
    assert.equal(validator.version, '3.1');
  });

  it('every route the hub registers is in the document', () => {
    const documented = new Set(operations(doc).map((o) => `${o.method.toUpperCase()} ${shape(o.path)}`));
    const gets = new Set(h.routes.filter((r) => r.method === 'GET').map((r) => r.url));
    // fastify answers HEAD wherever GET is; the document says so once, in info.description.
    const routes = h.routes.filter((r) => !(r.method === 'HEAD' && gets.has(r.url)));
    assert.ok(routes.length >= 30, `the hub registered ${routes.length} routes`);
    assert.deepEqual(routes.map((r) => `${r.method} ${shape(r.url)}`).filter((r) => !documented.has(r)), [], 'routes missing from docs/openapi.json');
  });

  it('every operation in the document is answered by the hub, as the document says, not by its not-found handler', async () => {
    const schemas = new DocumentSchemas(doc);
    const problems: string[] = [];
    // Without credentials or bodies: a route that exists answers 200, 400, 401 or 404 with its own error; an
    // unknown one 404 CR_ERR_NOT_FOUND from the not-found handler (no body for HEAD).
    for (const o of operations(doc)) {
      const answer = await send(`${h.url}${exampleUrl(doc, o)}`, { method: o.method, stopAfterHead: true });
      const code = answer.text.startsWith('{') ? (JSON.parse(answer.text) as { error?: { code?: string } }).error?.code : undefined;
      const what = `${o.method.toUpperCase()} ${o.path} → ${answer.status} ${code ?? ''}`;
      if (answer.status === 404 && (o.method === 'head' || code === 'CR_ERR_NOT_FOUND')) problems.push(`${what}: not routed`);
      problems.push(...schemas.checkAnswer(o, answer));
    }
    assert.deepEqual(problems, []);
  });

  it('the body schemas fastify enforces are the ones the document publishes', () => {
    const validated = h.routes.filter((r) => r.bodySchema !== undefined);
    assert.ok(validated.length >= 3, 'routes with a fastify body schema');
    for (const r of validated) {
      const o = operations(doc).find((x) => x.method === r.method.toLowerCase() && shape(x.path) === shape(r.url));
      assert.ok(o, `${r.method} ${r.url} is in the document`);
      const documented = resolve(doc, `${o.pointer}/requestBody/content/application~1json/schema`).value;
      const enforced = r.bodySchema as Obj;
      assert.deepEqual([...((documented.required as string[]) ?? [])].sort(), [...((enforced.required as string[]) ?? [])].sort(), `${r.method} ${r.url}: required fields`);
      // Fields and their bounds. (additionalProperties is not compared: fastify's Ajv drops unknown
      // fields instead of refusing them, so the document says they are ignored; the bounds test
      // checks what the hub really does with them.)
      assert.deepEqual(withoutAnnotations(documented.properties), withoutAnnotations(enforced.properties), `${r.method} ${r.url}: fields`);
    }
  });
});
