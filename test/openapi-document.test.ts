// docs/openapi.json on its own: a valid OpenAPI 3.1 document whose schemas compile, whose error codes,
// scopes and version are the hub's, and which names the same endpoints as docs/api.md.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { ERRORS } from '../src/errors.js';
import { SCOPES } from '../src/oauth/scopes.js';
import { DocumentSchemas, HTTP_METHODS, operations, pointer, readDocument, resolve, type Obj, type OpenApiDocument } from './support/openapi.js';

const doc = readDocument();
const read = (path: string) => readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');

/** Pointers of every Schema Object the document holds outside components.schemas (where `schema` keys are). */
function schemaPointers(value: unknown, at: string, out: string[] = []): string[] {
  if (value === null || typeof value !== 'object') return out;
  for (const [k, v] of Object.entries(value)) {
    if (k === 'schema') out.push(`${at}${pointer(k)}`);
    else if (!(at === '/components' && k === 'schemas')) schemaPointers(v, `${at}${pointer(k)}`, out);
  }
  return out;
}

test('docs/openapi.json is a valid OpenAPI 3.1 document', async () => {
  const validator = new Validator();
  const result = await validator.validate(structuredClone(doc));
  assert.deepEqual(result.errors, undefined, JSON.stringify(result.errors, null, 1)?.slice(0, 2000));
  assert.equal(result.valid, true);
  assert.equal(validator.version, '3.1');
  const ids = operations(doc).map((o) => o.op.operationId);
  assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
});

test('every schema in the document compiles as strict JSON Schema 2020-12, and every example fits its schema', () => {
  const schemas = new DocumentSchemas(doc);
  const pointers = [...Object.keys(doc.components.schemas!).map((n) => pointer('components', 'schemas', n)), ...schemaPointers(doc.paths, '/paths'), ...schemaPointers(doc.components, '/components')];
  assert.ok(pointers.length > 100, `found ${pointers.length} schemas`);
  for (const p of pointers) assert.doesNotThrow(() => schemas.at(p), `the schema at ${p} compiles`);

  let examples = 0;
  for (const o of operations(doc)) {
    ((o.op.parameters as unknown[] | undefined) ?? []).forEach((_, i) => {
      const p = resolve(doc, `${o.pointer}/parameters/${i}`);
      if (p.value.example === undefined) return;
      examples++;
      assert.deepEqual(schemas.problems(`${p.pointer}/schema`, p.value.example), [], `${o.method} ${o.path} parameter ${String(p.value.name)}`);
    });
    const body = o.op.requestBody as { content?: Record<string, Obj> } | undefined;
    for (const [type, media] of Object.entries(body?.content ?? {})) {
      if (media.example === undefined) continue;
      examples++;
      assert.deepEqual(schemas.problems(`${o.pointer}/requestBody/content/${pointer(type).slice(1)}/schema`, media.example), [], `${o.method} ${o.path} ${type} example`);
    }
  }
  for (const [code, example] of Object.entries(doc.components.examples!)) {
    examples++;
    assert.deepEqual(schemas.problems('/components/schemas/Error', example.value), [], `example ${code}`);
  }
  assert.ok(examples > 50, `checked ${examples} examples`);
});

test('the error codes of the document are exactly those of src/errors.ts, each shown under its own status', () => {
  const codes = (doc.components.schemas!.ErrorCode as { enum: string[] }).enum;
  assert.deepEqual([...codes].sort(), Object.keys(ERRORS).sort());
  const examples = doc.components.examples as Record<string, { value: { error: { code: string; status: number } } }>;
  assert.deepEqual(Object.keys(examples).sort(), Object.keys(ERRORS).sort(), 'one example per code');
  for (const [code, e] of Object.entries(examples)) {
    assert.equal(e.value.error.code, code);
    assert.equal(e.value.error.status, ERRORS[code as keyof typeof ERRORS].status, `${code}'s status`);
  }
  // Each error response names its codes as examples: each must come with that response's status.
  const used = new Set<string>();
  for (const o of operations(doc)) {
    for (const status of Object.keys(o.op.responses as Obj)) {
      const response = resolve(doc, `${o.pointer}/responses/${status}`);
      const json = (response.value.content as Record<string, Obj> | undefined)?.['application/json'];
      for (const [name, ex] of Object.entries((json?.examples as Record<string, { $ref?: string }> | undefined) ?? {})) {
        const code = resolve(doc, ex.$ref!.slice(1)).value as { value: { error: { code: string; status: number } } };
        assert.equal(code.value.error.code, name, `${o.method} ${o.path} ${status}: the example named ${name} is of ${name}`);
        assert.equal(String(code.value.error.status), status, `${o.method} ${o.path}: ${name} is not a ${status}`);
        used.add(name);
      }
    }
  }
  // Answered only by an agent's LAN port (docs/api.md "LAN access"), never by the hub this document describes.
  const agentOnly = new Set(['CR_ERR_FORBIDDEN']);
  assert.deepEqual(Object.keys(ERRORS).filter((c) => !used.has(c) && !agentOnly.has(c)), [], 'every code is named by some operation that can answer it');
  assert.deepEqual([...agentOnly].filter((c) => used.has(c)), [], 'a code of the LAN port only is not claimed by a hub operation');
});

test('the OAuth scopes of the document are the scopes the hub grants', () => {
  const oauth2 = doc.components.securitySchemes!.oauth2 as { flows: { authorizationCode: { scopes: Record<string, string> } } };
  assert.deepEqual(oauth2.flows.authorizationCode.scopes, SCOPES);
  for (const o of operations(doc)) {
    for (const requirement of (o.op.security as Array<Record<string, string[]>> | undefined) ?? []) {
      for (const scope of requirement.oauth2 ?? []) assert.ok(scope in SCOPES, `${o.method} ${o.path}: ${scope}`);
    }
  }
  assert.deepEqual((doc.components.schemas!.ScopeDescription as { properties: { name: { enum: string[] } } }).properties.name.enum, Object.keys(SCOPES));
});

test('the document describes the version of the package it ships in', () => {
  const pkg = JSON.parse(read('package.json')) as { version: string; files: string[] };
  assert.equal(doc.info.version, pkg.version);
  assert.ok(pkg.files.includes('docs'), 'docs/ (and so docs/openapi.json) is in the package');
});

/** `METHOD /path` of every endpoint docs/api.md documents: `###` headings and the Operations table. */
function documentedEndpoints(md: string): Set<string> {
  const out = new Set<string>();
  const add = (text: string) => {
    for (const m of text.matchAll(/`(GET|PUT|POST|DELETE|OPTIONS|HEAD|PATCH|TRACE|ANY) (\/[^`?\s]*)[^`]*`/g)) {
      for (const method of m[1] === 'ANY' ? HTTP_METHODS.map((x) => x.toUpperCase()) : [m[1]!]) out.add(`${method} ${m[2]!}`);
    }
  };
  for (const line of md.split('\n')) if (line.startsWith('### ')) add(line);
  const start = md.indexOf('\n## Operations\n');
  assert.ok(start >= 0, 'docs/api.md has its Operations section');
  const end = md.indexOf('\n## ', start + 1);
  for (const line of md.slice(start, end === -1 ? undefined : end).split('\n')) if (line.startsWith('| `')) add(line);
  return out;
}

function documentOperations(d: OpenApiDocument): Set<string> {
  return new Set(operations(d).map((o) => `${o.method.toUpperCase()} ${o.path}`));
}

test('docs/api.md has an endpoint heading for every operation of the document, and the document every endpoint of docs/api.md', () => {
  const inDocs = documentedEndpoints(read('docs/api.md'));
  const inDocument = documentOperations(doc);
  assert.deepEqual([...inDocument].filter((e) => !inDocs.has(e)), [], 'operations missing from docs/api.md');
  assert.deepEqual([...inDocs].filter((e) => !inDocument.has(e)), [], 'endpoints of docs/api.md missing from docs/openapi.json');
});

test('README and docs/api.md point to GET /v1/openapi.json', () => {
  assert.match(read('README.md'), /^\| `GET \/v1\/openapi\.json` \|/m);
  assert.match(read('docs/api.md'), /^### `GET \/v1\/openapi\.json`/m);
});
