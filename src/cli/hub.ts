/** `cloudrest hub`: runs the hub until SIGINT/SIGTERM, then drains it within --shutdown-grace-ms. */
import { helpText, loadConfig } from '../config/load.js';
import { hubOptions } from '../config/hub-options.js';
import { createHub } from '../hub.js';
import { startDemo } from './demo.js';

export const hubHelp = (): string => helpText('cloudrest hub [options]', hubOptions);

export async function runHub(argv: string[]): Promise<void> {
  const { config } = loadConfig(hubOptions, { argv });
  const hub = await createHub(config);
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
