import { ConfigError, helpText, loadConfig } from '../config/load.js';
import { hubOptions } from '../config/hub-options.js';
import { createHub, PortInUseError } from '../hub.js';
import { runAgentCli } from '../agent/main.js';
import { adminHelp, devicesAdd, devicesList, UsageError, usersAdd, usersList } from './admin.js';
import { startDemo } from './demo.js';
import { factoryCommands } from './factory-commands.js';
import { oauthClientsCommands, oauthClientsHelp } from './oauth-clients.js';
import { runDiscover } from './discover.js';

const USAGE = `cloudrest: open IoT connectivity hub

Usage: cloudrest <command> [options]   (--help on any command)

Commands:
  hub                 run the hub (HTTP API, relay, agent tunnel)
  agent               run the device agent (connects a device's REST API to a hub)
  agent provision     register this device through the hub's factory API, write its credentials
  discover            find devices on the LAN (UDP broadcast and mDNS)
  users add|list      manage users
  devices add|list    manage devices (add prints the id and secret)
  devices import      add devices from a CSV file, all or none (prints ids and secrets)
  devices revoke|unrevoke   refuse a device from now on (a running hub closes its tunnel at once)
  factory-keys add|list|revoke|rotate   keys factories use to provision devices
  oauth-clients add|list|remove
                      manage third-party services that may ask users for access (OAuth 2.0)
`;

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

async function runHub(argv: string[]): Promise<void> {
  if (argv.includes('--help')) return out(helpText('cloudrest hub [options]', hubOptions));
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

async function main(argv: string[]): Promise<void> {
  const [cmd, sub, ...rest] = argv;
  switch (cmd) {
    case 'hub':
      return runHub(argv.slice(1));
    case 'agent':
      return runAgentCli(argv.slice(1));
    case 'discover':
      return runDiscover(argv.slice(1), out);
    case 'users':
    case 'devices':
    case 'factory-keys': {
      const command = factoryCommands[`${cmd} ${sub}`];
      if (command) return rest.includes('--help') ? out(command.help()) : command.run(rest, out);
      const key = `${cmd} ${sub}` as keyof typeof adminHelp;
      if (!(key in adminHelp)) throw new UsageError(`unknown command: cloudrest ${cmd} ${sub ?? ''}\n\n${USAGE}`);
      if (rest.includes('--help')) return out(adminHelp[key]());
      const fn = { 'users add': usersAdd, 'users list': usersList, 'devices add': devicesAdd, 'devices list': devicesList }[key];
      return fn(rest, out);
    }
    case 'oauth-clients': {
      const key = `${cmd} ${sub}` as keyof typeof oauthClientsHelp;
      if (!(key in oauthClientsHelp)) throw new UsageError(`unknown command: cloudrest ${cmd} ${sub ?? ''}\n\n${USAGE}`);
      if (rest.includes('--help')) return out(oauthClientsHelp[key]());
      return oauthClientsCommands[key](rest, out);
    }
    case undefined:
    case '--help':
    case 'help':
      return out(USAGE);
    default:
      throw new UsageError(`unknown command: ${cmd}\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof UsageError || err instanceof PortInUseError) {
    process.stderr.write(`cloudrest: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`cloudrest: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
