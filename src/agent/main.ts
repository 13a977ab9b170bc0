import { agentOptions } from '../config/agent-options.js';
import { ConfigError, helpText, loadConfig } from '../config/load.js';
import { Agent } from './agent.js';
import { createLogger, describeError, type LogLevel } from './log.js';

export const AGENT_USAGE = 'cloudrest agent --hub URL --device-id ID --secret S --api http://127.0.0.1:PORT [options]';

/**
 * `cloudrest agent ...`: parses the options (flags, CLOUDREST_* variables, --config file), starts the
 * agent and stops it cleanly on SIGINT/SIGTERM. Configuration errors exit with code 2.
 */
export async function runAgentCli(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${helpText(AGENT_USAGE, agentOptions)}\n`);
    return;
  }
  let agent: Agent;
  try {
    const { config, positionals } = loadConfig(agentOptions, { argv });
    if (positionals.length > 0) throw new ConfigError(`unexpected argument ${JSON.stringify(positionals[0])}`);
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
