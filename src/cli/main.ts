/** The `cloudrest` process: runs a command of the table (commands.ts) and turns its errors into exit codes. */
import { ConfigError } from '../config/load.js';
import { PortInUseError } from '../errors.js';
import { UsageError } from './admin.js';
import { runCli } from './commands.js';

const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};

runCli(process.argv.slice(2), out).catch((err: unknown) => {
  // Wrong usage, options or a port in use: exit 2, one line; anything else is a bug or an outage: 1.
  if (err instanceof ConfigError || err instanceof UsageError || err instanceof PortInUseError) {
    process.stderr.write(`cloudrest: ${err.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`cloudrest: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
