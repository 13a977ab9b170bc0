/**
 * `cloudrest oauth-clients add|list|remove`: an administrator registers the third-party services that
 * may ask users for access (OAuth 2.0 clients, RFC 6749 §2).
 */
import { helpText, loadConfig } from '../config/load.js';
import type { OptionTable } from '../config/option.js';
import { newId, sha256Hex } from '../core/secrets.js';
import { MAX_REDIRECT_URIS, redirectUriProblem } from '../oauth/redirect-uri.js';
import { newOAuthSecret } from '../oauth/secrets.js';
import { UsageError, dataJsonOptions, dataOption, storeOption, jsonOption, withStore } from './admin.js';

const MAX_NAME_CHARS = 100;

export const oauthClientsAddOptions = {
  data: dataOption,
  store: storeOption,
  name: { type: 'string', required: true, description: 'Name users see on the consent page' },
  redirectUri: { type: 'list', required: true, description: 'A redirect URI, matched exactly (repeat the flag, or separate with commas): https, http on 127.0.0.1/[::1]/localhost, or com.example.app:/path' },
  confidential: { type: 'bool', default: false, description: 'Issue a client secret (shown once, stored hashed); without it the client is public and must use PKCE' },
  json: jsonOption,
} as const satisfies OptionTable;

export const oauthClientsRemoveOptions = {
  data: dataOption,
  store: storeOption,
} as const satisfies OptionTable;

export async function oauthClientsAdd(argv: string[], out: (s: string) => void): Promise<void> {
  const { config } = loadConfig(oauthClientsAddOptions, { argv });
  const name = config.name.trim();
  if (name === '' || name.length > MAX_NAME_CHARS || /\p{Cc}/u.test(name)) throw new UsageError(`a client name is 1-${MAX_NAME_CHARS} printable characters`);
  const uris = [...new Set(config.redirectUri)];
  if (uris.length === 0 || uris.length > MAX_REDIRECT_URIS) throw new UsageError(`give 1-${MAX_REDIRECT_URIS} redirect URIs`);
  for (const uri of uris) {
    const problem = redirectUriProblem(uri);
    if (problem) throw new UsageError(`redirect URI ${uri}: ${problem}`);
  }
  const id = newId('oc_');
  const secret = config.confidential ? newOAuthSecret('clientSecret') : undefined;
  await withStore(config, (s) => s.createOAuthClient({ id, name, redirectUris: uris, secretHash: secret === undefined ? null : sha256Hex(secret), createdAt: Date.now() }));
  const type = secret === undefined ? 'public' : 'confidential';
  if (config.json) {
    out(JSON.stringify({ client_id: id, ...(secret === undefined ? {} : { client_secret: secret }), name, redirect_uris: uris, type }));
    return;
  }
  out(`OAuth client added: ${name} (${type})`);
  out(`  client_id:     ${id}`);
  if (secret !== undefined) out(`  client_secret: ${secret}   (shown once; the hub keeps only its hash)`);
  for (const uri of uris) out(`  redirect_uri:  ${uri}`);
}

export async function oauthClientsList(argv: string[], out: (s: string) => void): Promise<void> {
  const { config } = loadConfig(dataJsonOptions, { argv });
  await withStore(config, async (s) => {
    const rows = (await s.listOAuthClients()).map((c) => ({
      client_id: c.id,
      name: c.name,
      type: c.secretHash === null ? 'public' : 'confidential',
      redirect_uris: c.redirectUris,
      created_at: new Date(c.createdAt).toISOString(),
    }));
    if (config.json) out(JSON.stringify(rows));
    else for (const r of rows) out(`${r.client_id}  ${r.type.padEnd(12)}  ${r.name}  ${r.redirect_uris.join(' ')}`);
  });
}

export async function oauthClientsRemove(argv: string[], out: (s: string) => void): Promise<void> {
  const { config, positionals } = loadConfig(oauthClientsRemoveOptions, { argv });
  if (positionals.length !== 1) throw new UsageError('usage: cloudrest oauth-clients remove CLIENT_ID [--data DIR] [--store URL]');
  const id = positionals[0]!;
  // The deletion is logged; a running hub reads the log every second and drops the client's sessions.
  const removed = await withStore(config, (s) => s.deleteOAuthClient(id, Date.now()));
  if (!removed) throw new UsageError(`no OAuth client ${id}`);
  out(`OAuth client ${id} removed; its grants and tokens are revoked`);
}

export const oauthClientsHelp = {
  add: () => helpText('cloudrest oauth-clients add --name N --redirect-uri URI [--redirect-uri URI ...] [--confidential] [--data DIR] [--store URL] [--json]', oauthClientsAddOptions),
  list: () => helpText('cloudrest oauth-clients list [--data DIR] [--store URL] [--json]', dataJsonOptions),
  remove: () => helpText('cloudrest oauth-clients remove CLIENT_ID [--data DIR] [--store URL]', oauthClientsRemoveOptions),
};
