/** `cloudrest hub`: runs the hub until SIGINT/SIGTERM, then drains it within --shutdown-grace-ms. */
import { ConfigError, helpText, loadConfig } from '../config/load.js';
import { hubOptions } from '../config/hub-options.js';
import { createHub, type Hub } from '../hub.js';
import { startDemo } from './demo.js';

export const hubHelp = (): string => helpText('cloudrest hub [options]', hubOptions);

/**
 * What a front or an edge says at start, besides its JSON log: which node it is and where it is reached;
 * a front names no tunnel (it has none: agents go to an edge). One process of role all prints nothing
 * here, as before scale-out (its --demo banner says the rest).
 */
export function nodeBanner(hub: Hub): string {
  const lines = [
    '',
    `  cloudrest ${hub.role} node ${hub.nodeId} is running (docs/scale-out.md)`,
    '',
    hub.role === 'front' ? `  HTTP API         ${hub.httpUrl}  (client API, SSE, OAuth)` : `  HTTP             ${hub.httpUrl}  (health, readiness, metrics only)`,
  ];
  if (hub.role === 'edge') lines.push(`  Agent tunnel     ${hub.tunnelUrl}  and  ${hub.httpUrl.replace(/^http/, 'ws')}/v1/agent`);
  if (hub.internalUrl !== undefined) lines.push(`  Internal         ${hub.internalUrl}  (other nodes reach this node's tunnels here)`);
  lines.push(`  Data             ${hub.config.data}`, '');
  return lines.join('\n');
}

export async function runHub(argv: string[]): Promise<void> {
  const { config } = loadConfig(hubOptions, { argv });
  // The demo's agent and curl lines need tunnels and client routes in one process.
  if (config.demo && config.role !== 'all') throw new ConfigError('--demo runs a whole hub in one process: it needs --role all');
  const hub = await createHub(config);
  if (hub.role !== 'all') process.stdout.write(`${nodeBanner(hub)}\n`);
  const demo = config.demo ? await startDemo(hub) : undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    hub.log.info({ signal }, 'stopping');
    // Whatever happens in the drain, the process ends: a stuck shutdown must not outlive its deadline.
    setTimeout(() => {
      hub.log.error({ graceMs: config.shutdownGraceMs }, 'shutdown did not finish in time; exiting');
      process.exit(1);
    }, config.shutdownGraceMs + 5000).unref();
    await demo?.stop();
    await hub.close();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}
