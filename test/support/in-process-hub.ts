import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { FastifyInstance, RouteOptions } from 'fastify';
import { pino } from 'pino';
import { loadConfig } from '../../src/config/load.js';
import { hubOptions } from '../../src/config/hub-options.js';
import { createHub, type Hub } from '../../src/hub.js';
import { tempDir } from './procs.js';

/** A route as the hub registered it in fastify. */
export interface RegisteredRoute {
  method: string;
  url: string;
  /** The body schema fastify validates with, if the route declares one. */
  bodySchema: unknown;
}

export interface InProcessHub {
  hub: Hub;
  url: string;
  data: string;
  /** Every route the hub registered in its fastify app, in order (HEAD routes fastify adds for GET ones included). */
  routes: RegisteredRoute[];
  stop(): Promise<void>;
}

/**
 * `createHub` in this process on free ports with a temp data folder, recording the routes it registers:
 * fastify announces each new instance on the `fastify.initialization` diagnostics channel before any
 * route exists, so an onRoute hook added there sees every one of them, encapsulated plugins included.
 */
export async function startInProcessHub(argv: string[] = []): Promise<InProcessHub> {
  const data = tempDir();
  const routes: RegisteredRoute[] = [];
  const onInit = (message: unknown) => {
    (message as { fastify: FastifyInstance }).fastify.addHook('onRoute', (r: RouteOptions) => {
      for (const method of [r.method].flat()) routes.push({ method, url: r.url, bodySchema: r.schema?.body });
    });
  };
  subscribe('fastify.initialization', onInit);
  let hub: Hub;
  try {
    const { config } = loadConfig(hubOptions, { argv: ['--data', data.path, '--host', '127.0.0.1', '--http-port', '0', '--tunnel-port', '0', '--mqtt-port', '0', ...argv], env: {} });
    hub = await createHub(config, { log: pino({ level: 'silent' }) });
  } catch (err) {
    data.remove();
    throw err;
  } finally {
    unsubscribe('fastify.initialization', onInit);
  }
  return {
    hub,
    url: `http://127.0.0.1:${hub.httpPort}`,
    data: data.path,
    routes,
    async stop() {
      await hub.close();
      data.remove();
    },
  };
}
