/**
 * Reading docs/openapi.json in tests: its operations, its `$ref`s, and a checker that holds a real
 * answer from a hub to what the document says about that operation, with the document's own JSON
 * Schemas compiled by Ajv as JSON Schema 2020-12 (the dialect of OpenAPI 3.1).
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';

export const DOCUMENT_FILE = new URL('../../docs/openapi.json', import.meta.url);

/** The methods a Path Item can hold (OpenAPI 3.1 §4.8.9). */
export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

export type Obj = Record<string, unknown>;

export interface OpenApiDocument extends Obj {
  openapi: string;
  info: { version: string } & Obj;
  paths: Record<string, Record<string, Obj>>;
  components: Record<string, Record<string, Obj>>;
}

export interface Operation {
  method: string;
  path: string;
  /** JSON pointer of the Operation Object in the document. */
  pointer: string;
  op: Obj;
}

export function readDocument(): OpenApiDocument {
  return JSON.parse(readFileSync(DOCUMENT_FILE, 'utf8')) as OpenApiDocument;
}

export function operations(doc: OpenApiDocument): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of HTTP_METHODS) {
      const op = item[method];
      if (op) out.push({ method, path, pointer: pointer('paths', path, method), op });
    }
  }
  return out;
}

/** A JSON pointer (RFC 6901) from its reference tokens. */
export function pointer(...tokens: string[]): string {
  return tokens.map((t) => `/${t.replace(/~/g, '~0').replace(/\//g, '~1')}`).join('');
}

/** The value at a pointer, following `$ref`s (local ones, as this document uses) until a real object. */
export function resolve(doc: OpenApiDocument, at: string): { value: Obj; pointer: string } {
  let ptr = at;
  for (let hops = 0; hops < 16; hops++) {
    let value: unknown = doc;
    for (const token of ptr.split('/').slice(1).map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))) {
      value = (value as Obj | undefined)?.[token];
    }
    if (value === undefined || value === null || typeof value !== 'object') throw new Error(`nothing at ${ptr}`);
    const ref = (value as Obj).$ref;
    if (typeof ref !== 'string') return { value: value as Obj, pointer: ptr };
    if (!ref.startsWith('#/')) throw new Error(`only local $refs are expected, found ${ref}`);
    ptr = ref.slice(1);
  }
  throw new Error(`$ref loop at ${at}`);
}

/** The operation's path with each `{name}` replaced by its parameter's `example`, and its required query parameters. */
export function exampleUrl(doc: OpenApiDocument, o: Operation): string {
  const params = ((o.op.parameters as unknown[] | undefined) ?? []).map((_, i) => resolve(doc, `${o.pointer}/parameters/${i}`).value);
  const path = o.path.replace(/\{([^}]+)\}/g, (_, name: string) => {
    const p = params.find((x) => x.in === 'path' && x.name === name);
    if (p?.example === undefined) throw new Error(`${o.method.toUpperCase()} ${o.path}: path parameter ${name} has no example`);
    return encodeURIComponent(String(p.example)).replace(/%2F/g, '/');
  });
  const query = new URLSearchParams(params.filter((p) => p.in === 'query' && p.required === true).map((p): [string, string] => [String(p.name), String(p.example)]));
  const q = query.toString();
  return q === '' ? path : `${path}?${q}`;
}

/** The operation's JSON example body, if it has one. */
export function exampleBody(o: Operation): unknown {
  return ((o.op.requestBody as { content?: Record<string, Obj> } | undefined)?.content?.['application/json'])?.example;
}

export function findOperation(doc: OpenApiDocument, method: string, path: string): Operation {
  const o = operations(doc).find((x) => x.method === method.toLowerCase() && x.path === path);
  if (!o) throw new Error(`${method} ${path} is not in the document`);
  return o;
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One HTTP request with node:http (fetch refuses TRACE); `stopAfterHead` ends event streams at once. */
export function send(url: string, o: { method: string; headers?: Record<string, string>; body?: string | Buffer; stopAfterHead?: boolean }): Promise<Answer> {
  return new Promise((done, fail) => {
    const req = request(url, { method: o.method.toUpperCase(), headers: o.headers }, (res) => {
      if (o.stopAfterHead && res.headers['content-type']?.startsWith('text/event-stream')) {
        res.destroy();
        done({ status: res.statusCode!, headers: res.headers, text: '' });
        return;
      }
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => done({ status: res.statusCode!, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', fail);
    });
    req.on('error', fail);
    req.end(o.body);
  });
}

/** The media type of a Content-Type header, without parameters. */
export function mediaType(header: string | string[] | undefined): string {
  return String(header ?? '').split(';')[0]!.trim().toLowerCase();
}

/**
 * The document's schemas, compiled. The whole document is registered with Ajv, so a schema is taken
 * where it stands and its `#/components/...` references resolve as in the document. Unknown keywords
 * are errors (a misspelt `maxLenght` would otherwise bound nothing).
 */
export class DocumentSchemas {
  readonly #ajv: Ajv2020;
  readonly #compiled = new Map<string, ValidateFunction>();

  constructor(readonly doc: OpenApiDocument) {
    this.#ajv = new Ajv2020({ strictSchema: true, strictNumbers: true, strictTypes: false, strictRequired: false, allErrors: true, validateSchema: true });
    addFormats.default(this.#ajv);
    // The document's own fields sit at the root of the registered schema: known to Ajv, checking nothing.
    this.#ajv.addVocabulary(['openapi', 'info', 'jsonSchemaDialect', 'servers', 'paths', 'webhooks', 'components', 'security', 'tags', 'externalDocs']);
    this.#ajv.addSchema(doc as object, 'openapi.json');
  }

  /** The compiled schema at a pointer into the document. */
  at(ptr: string): ValidateFunction {
    let v = this.#compiled.get(ptr);
    if (!v) {
      const found = this.#ajv.getSchema(`openapi.json#${ptr}`);
      if (!found) throw new Error(`no schema at ${ptr}`);
      this.#compiled.set(ptr, (v = found));
    }
    return v;
  }

  /** Problems with `value` under the schema at `ptr`, as readable lines (none when it is valid). */
  problems(ptr: string, value: unknown): string[] {
    const v = this.at(ptr);
    return v(value) ? [] : (v.errors ?? []).map((e) => `${e.instancePath || '(root)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`);
  }

  /**
   * What is wrong with a real answer to `o`, as the document describes it: an undocumented status, a
   * media type the response does not list, a JSON body its schema refuses, or an error code the
   * response does not name among its examples. Empty when the answer is as documented.
   */
  checkAnswer(o: Operation, answer: Answer): string[] {
    const where = `${o.method.toUpperCase()} ${o.path} → ${answer.status}`;
    const responses = o.op.responses as Obj;
    const key = String(answer.status) in responses ? String(answer.status) : 'default' in responses ? 'default' : undefined;
    if (key === undefined) return [`${where}: status not in the document`];
    if (o.method === 'head') return [];
    const response = resolve(this.doc, `${o.pointer}/responses/${key}`);
    const content = response.value.content as Obj | undefined;
    if (content === undefined) return answer.text === '' ? [] : [`${where}: the document gives this answer no body, the hub sent ${answer.text.slice(0, 80)}`];
    const type = mediaType(answer.headers['content-type']);
    const listed = type in content ? type : '*/*' in content ? '*/*' : undefined;
    if (listed === undefined) return [`${where}: media type ${type} not in the document (${Object.keys(content).join(', ')})`];
    if (listed !== 'application/json') return [];
    const media = resolve(this.doc, `${response.pointer}/content/${pointer(listed).slice(1)}`);
    let body: unknown;
    try {
      body = JSON.parse(answer.text);
    } catch {
      return [`${where}: not JSON: ${answer.text.slice(0, 80)}`];
    }
    const problems = this.problems(`${media.pointer}/schema`, body).map((p) => `${where}: ${p}`);
    const code = (body as { error?: { code?: unknown } }).error?.code;
    const examples = media.value.examples as Obj | undefined;
    if (typeof code === 'string' && examples !== undefined && !(code in examples)) problems.push(`${where}: error ${code} is not among the codes this response names (${Object.keys(examples).join(', ')})`);
    return problems;
  }
}

/** Strips the annotations (descriptions, examples) that do not change what a schema accepts. */
export function withoutAnnotations(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(withoutAnnotations);
  if (schema === null || typeof schema !== 'object') return schema;
  return Object.fromEntries(Object.entries(schema).filter(([k]) => k !== 'description' && k !== 'examples' && k !== 'title').map(([k, v]) => [k, withoutAnnotations(v)]));
}
