import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SIGNED_TOKEN_PREFIX, encodeClaims, type PublicTokenKey, type TokenClaims } from '../../relay/protocol/signed-token.js';

/** The hub's token signing key, in its data directory (PKCS #8 PEM, mode 0600). */
export const SIGNING_KEY_FILE = 'token-signing-key.pem';

/**
 * Signs the hub's access tokens with an Ed25519 key pair created once, so agents can verify tokens on
 * the LAN without the hub (src/relay/protocol/signed-token.ts). The public key goes to agents over the
 * tunnel. The private key is kept in the data directory (open()), or, for the nodes of one PostgreSQL
 * store, in its database (the StoreBackend's openTokenSigner): every node must sign with the same key.
 */
export class TokenSigner {
  readonly publicKey: PublicTokenKey;

  private constructor(private readonly privateKey: KeyObject) {
    const jwk = createPublicKey(privateKey).export({ format: 'jwk' });
    const raw = Buffer.from(jwk.x!, 'base64url');
    this.publicKey = { kid: createHash('sha256').update(raw).digest('hex').slice(0, 16), ed25519: raw.toString('base64url') };
  }

  /** Loads the key from `dataDir`, creating it (mode 0600) on first use. */
  static open(dataDir: string): TokenSigner {
    const file = join(dataDir, SIGNING_KEY_FILE);
    if (!existsSync(file)) {
      mkdirSync(dataDir, { recursive: true });
      const pem = TokenSigner.newKeyPem();
      // Written aside and renamed, so a crash never leaves half a key that would fail every start.
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, pem, { mode: 0o600 });
      renameSync(tmp, file);
    }
    // An operator's copy may have lost its mode; the key signs every token, so keep it private.
    chmodSync(file, 0o600);
    return TokenSigner.fromPem(readFileSync(file, 'utf8'), file);
  }

  /** A new private key as PKCS #8 PEM, for a key store to keep. */
  static newKeyPem(): string {
    return generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
  }

  /** The signer of a PKCS #8 PEM private key; `where` names its origin in the error if it is no Ed25519 key. */
  static fromPem(pem: string, where: string): TokenSigner {
    const key = createPrivateKey(pem);
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${where}: not an Ed25519 private key`);
    return new TokenSigner(key);
  }

  /** A new signed token for a user; the token id makes each one unique. */
  issue(userId: string, email: string, expiresAt: number): string {
    const claims: TokenClaims = { userId, email: email.toLowerCase(), expiresAt, tokenId: randomBytes(16).toString('base64url'), keyId: this.publicKey.kid };
    const signed = `${SIGNED_TOKEN_PREFIX}${encodeClaims(claims)}`;
    const signature = sign(null, Buffer.from(signed, 'ascii'), this.privateKey);
    return `${signed}.${signature.toString('base64url')}`;
  }
}
