import { sha256Hex } from '../core/secrets.js';
import type { Session } from '../core/auth/session.js';
import type { Store } from '../store/store.js';

/** The session of an OAuth access token (Authenticator cache miss), or false if unknown. */
export async function loadOAuthSession(store: Store, token: string, tokenHash = sha256Hex(token)): Promise<Session | false> {
  const rec = await store.getOAuthToken(tokenHash);
  if (!rec || rec.kind !== 'access') return false;
  const user = await store.getUserById(rec.userId);
  if (!user) return false;
  return { user, expiresAt: rec.expiresAt, tokenHash, scopes: new Set(rec.scope.split(' ')), oauth: { clientId: rec.clientId, familyId: rec.familyId } };
}
