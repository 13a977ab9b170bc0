import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/*
 * The device agent (src/agent, bundled alone into dist/cloudrest-agent.mjs) may import only the tunnel
 * protocol (src/relay/protocol), its own modules, Node built-ins and its npm packages; and, as today,
 * the few leaf modules it shares with the hub (the option tables and their loader, the error table,
 * id/secret helpers and device field checks). Anything else would drag hub code onto devices.
 * Specifiers are relative, so the allowed prefixes depend on how deep the importing file sits.
 */
const AGENT_PACKAGES = ['ws', 'undici', 'multicast-dns', 'dns-packet'];
const AGENT_SHARED = ['config/agent-options', 'config/load', 'config/provision-options', 'core/device-fields', 'core/secrets', 'errors'];
function agentImports(depth) {
  const esc = (t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const toSrc = '../'.repeat(depth + 1);
  const allowed = [
    'node:',
    ...AGENT_PACKAGES.map((p) => `${esc(p)}$`),
    esc('./'),
    ...Array.from({ length: depth }, (_, up) => `${esc('../'.repeat(up + 1))}(?!${esc('../')})`),
    `${esc(toSrc)}relay/protocol/`,
    `${esc(toSrc)}(${AGENT_SHARED.map(esc).join('|')})\\.js$`,
  ];
  return {
    files: [`src/agent/${'*/'.repeat(depth)}*.ts`],
    ignores: ['src/agent/**/*.test.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ regex: `^(?!${allowed.join('|')})`, message: 'The agent imports only src/relay/protocol, its own modules, Node built-ins and its packages (eslint.config.js).' }],
      }],
    },
  };
}

export default tseslint.config(
  { ignores: ['dist/**', 'data/**', 'node_modules/**', 'web/**', '.bench-tmp/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', setImmediate: 'readonly', URL: 'readonly', AbortController: 'readonly', fetch: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  agentImports(0),
  agentImports(1),
  agentImports(2),
);
