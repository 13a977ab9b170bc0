import { agentOptions, resolveAgentConfig } from '../config/agent-options.js';
import { ConfigError, helpText, loadConfig } from '../config/load.js';
import { provisionOptions } from '../config/provision-options.js';
import { Agent } from './agent.js';
import { readCredentials } from './credentials.js';
import { createLogger, describeError, type LogLevel } from './log.js';
import { provision, ProvisionError } from './provision.js';

export const AGENT_USAGE = `cloudrest agent --hub URL --device-id ID --secret S --api http://127.0.0.1:PORT [options]
       cloudrest agent --credentials DIR --api http://127.0.0.1:PORT [options]
       cloudrest agent provision --factory URL --factory-key K --id-file F --out DIR   (--help for its options)`;
export const PROVISION_USAGE = 'cloudrest agent provision --factory URL --factory-key K --id-file F --out DIR [--name N] [--email E]';
export const agentHelp = (): string => helpText(AGENT_USAGE, agentOptions);
export const provisionHelp = (): string => helpText(PROVISION_USAGE, provisionOptions);

/**
 * `cloudrest agent provision ...`: registers this device with the hub's factory API and writes its
 * credentials folder. Bad options exit 2; the hub unreachable or refusing exits 1; nothing is written
 * unless everything succeeded.
 */
export async function runProvisionCli(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${provisionHelp()}\n`);
    return;
  }
  try {
    const { config, positionals } = loadConfig(provisionOptions, { argv });
    if (positionals.length > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    const r = await provision(config);
    const c = r.credentials;
    process.stdout.write([
      `device ${c.deviceId} provisioned${r.created ? '' : ' (already registered with this factory key: same secret)'}${r.madeId ? `; new id written to ${config.idFile}` : ''}`,
      `  identity:    ${r.files[1]!}`,
      `  credentials: ${r.files[0]!} (mode 0600)`,
      `start the agent: cloudrest agent --credentials ${config.out} --api http://127.0.0.1:80`,
      '',
    ].join('\n'));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cloudrest agent provision: ${err.message}\nRun "cloudrest agent provision --help" for the options.\n`);
      process.exitCode = 2;
      return;
    }
    const why = err instanceof ProvisionError ? err.message : describeError(err);
    process.stderr.write(`cloudrest agent provision: ${why}\nNothing was written.\n`);
    process.exitCode = 1;
  }
}

/**
 * `cloudrest agent ...`: parses the options (flags, CLOUDREST_* variables, --config file), starts the
 * agent and stops it cleanly on SIGINT/SIGTERM. Configuration errors exit with code 2.
 */
export async function runAgentCli(argv: string[]): Promise<void> {
  if (argv[0] === 'provision') return runProvisionCli(argv.slice(1));
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${agentHelp()}\n`);
    return;
  }
  let agent: Agent;
  try {
    const { config: given, positionals } = loadConfig(agentOptions, { argv });
    if (positionals.length > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(positionals[0])}`);
    let fromFolder;
    if (given.credentials !== undefined) {
      fromFolder = await readCredentials(given.credentials);
      if (fromFolder === undefined) throw new ConfigError(`--credentials ${given.credentials}: no credentials.json there; run "cloudrest agent provision" first`);
    }
    const config = resolveAgentConfig(given, fromFolder);
    const log = createLogger({ level: config.logLevel as LogLevel | 'silent' });
    agent = new Agent(config, { log });
    await agent.start();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`cloudrest agent: ${err.message}\nRun "cloudrest agent --help" for the options.\n`);
      process.exitCode = 2;
      return;
    }
    // Start-up failures the operator can fix (a notify port in use, a path not writable): no stack.
    process.stderr.write(`cloudrest agent: cannot start: ${describeError(err)}\n`);
    process.exitCode = 1;
    return;
  }

  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      // A second signal while stopping: the operator wants out now.
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    agent.stop().then(
      () => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      },
      (err: unknown) => {
        process.stderr.write(`cloudrest agent: stop failed: ${describeError(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}
