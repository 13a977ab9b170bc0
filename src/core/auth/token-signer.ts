import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SIGNED_TOKEN_PREFIX, encodeClaims, type PublicTokenKey, type TokenClaims } from '../../relay/protocol/signed-token.js';

/** The hub's token signing key, in its data directory (PKCS #8 PEM, mode 0600). */
export const SIGNING_KEY_FILE = 'token-signing-key.pem';

/**
 * Signs the hub's access tokens with an Ed25519 key pair created once and kept in the data directory,
 * so agents can verify tokens on the LAN without the hub (src/relay/protocol/signed-token.ts). The
 * public key goes to agents over the tunnel; the private key never leaves this file.
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
      const { privateKey } = generateKeyPairSync('ed25519');
      const pem = privateKey.export({ format: 'pem', type: 'pkcs8' });
      // Written aside and renamed, so a crash never leaves half a key that would fail every start.
      const tmp = `${file}.${process.pid}.tmp`;
      writeFileSync(tmp, pem, { mode: 0o600 });
      renameSync(tmp, file);
    }
    // An operator's copy may have lost its mode; the key signs every token, so keep it private.
    chmodSync(file, 0o600);
    const key = createPrivateKey(readFileSync(file));
    if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${file}: not an Ed25519 private key`);
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
