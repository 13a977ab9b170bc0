/**
 * GET /v1/openapi.json: the hub's HTTP API as an OpenAPI 3.1 document, for code generators, API
 * consoles and people. The document is `docs/openapi.json`, shipped in the package and written by hand
 * beside docs/api.md: the relay and the event streams bypass fastify and most bodies are checked by
 * hand, so no generator could describe them. test/openapi-*.test.ts hold it to what a running hub does.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';

export const OPENAPI_PATH = '/v1/openapi.json';

/** The same relative path from src/http/ (tests) and dist/http/ (the package) to docs/. */
const DOCUMENT = new URL('../../docs/openapi.json', import.meta.url);

export function registerOpenApi(app: FastifyInstance): void {
  // Read once at start-up: a package without its document is broken, and says so before serving.
  const body = readFileSync(DOCUMENT);
  app.get(OPENAPI_PATH, async (_req, res) =>
    res
      .header('content-type', 'application/json; charset=utf-8')
      .header('cache-control', 'no-cache')
      // Public description, no credentials involved: API consoles on other origins may load it.
      .header('access-control-allow-origin', '*')
      .send(body),
  );
}
