/**
 * The token-signing key of the hub nodes on one PostgreSQL database (table `hub_keys`, migration
 * 0009_scale_out): fronts sign tokens and edges give agents the public key, so all must use one key.
 */
import type { Kysely } from 'kysely';
import { TokenSigner } from '../../core/auth/token-signer.js';

const SIGNING_KEY = 'token-signing-key';

interface HubKeysTable {
  name: string;
  value: string;
  created_at: number;
}

/**
 * The database's signing key, created by whichever node asks first: nodes starting at once each offer
 * a new key, the first insert wins and every node reads that one.
 */
export async function openPostgresTokenSigner(db: Kysely<unknown>): Promise<TokenSigner> {
  const keys = db as Kysely<{ hub_keys: HubKeysTable }>;
  const read = () => keys.selectFrom('hub_keys').select('value').where('name', '=', SIGNING_KEY).executeTakeFirst();
  let row = await read();
  if (!row) {
    await keys.insertInto('hub_keys').values({ name: SIGNING_KEY, value: TokenSigner.newKeyPem(), created_at: Date.now() })
      .onConflict((oc) => oc.column('name').doNothing()).execute();
    row = await read();
  }
  if (!row) throw new Error(`hub_keys has no ${SIGNING_KEY} after creating it`);
  return TokenSigner.fromPem(row.value, `hub_keys ${SIGNING_KEY}`);
}

/** Stores `pem` as the signing key (cloudrest migrate, copying a hub's key file); replaces one there. */
export async function saveSigningKey(db: Kysely<unknown>, pem: string, now: number): Promise<void> {
  TokenSigner.fromPem(pem, 'the signing key to save');
  await (db as Kysely<{ hub_keys: HubKeysTable }>).insertInto('hub_keys').values({ name: SIGNING_KEY, value: pem, created_at: now })
    .onConflict((oc) => oc.column('name').doUpdateSet({ value: pem, created_at: now })).execute();
}
