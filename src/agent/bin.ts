// Entry point of the bundled agent (dist/cloudrest-agent.mjs): `node cloudrest-agent.mjs --hub ... `.
// Kept apart from main.ts so importing runAgentCli (from the cloudrest CLI) never starts an agent.
import { runAgentCli } from './main.js';

runAgentCli(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`cloudrest agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
