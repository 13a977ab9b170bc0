/**
 * The node link's first bytes (docs/protocol.md "Node-to-node"): each node proves it knows the cluster
 * secret without sending it, by an HMAC over both sides' fresh nonces, before a single tunnel frame is
 * parsed. Fixed sizes, so a stranger gets nothing but a 36-byte challenge and the bytes it sends are
 * bounded; the whole exchange has a deadline.
 *
 *   edge → front: MAGIC(4) | edge nonce (32)
 *   front → edge: MAGIC(4) | front nonce (32) | HMAC-SHA256(secret, "front" | edge nonce | front nonce) (32)
 *   edge → front: HMAC-SHA256(secret, "edge" | edge nonce | front nonce) (32), with the secret that matched
 *
 * The connecting node proves with its current secret (--cluster-secret); each side accepts a proof
 * made with either of its two (--cluster-secret-previous being the other), so a rolling rotation in
 * three steps never has two nodes that cannot talk (docs/protocol.md "Node-to-node").
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Duplex } from 'node:stream';

const MAGIC = Buffer.from('CRN1', 'latin1');
const NONCE_BYTES = 32;
const MAC_BYTES = 32;
const CHALLENGE_BYTES = MAGIC.length + NONCE_BYTES;
const PROOF_BYTES = MAGIC.length + NONCE_BYTES + MAC_BYTES;

/** Why a link was not authenticated; `message` never contains a secret. */
export class LinkAuthError extends Error {
  override readonly name = 'LinkAuthError';
}

/** The secrets a node accepts: the current one first, then the one being rotated out. */
export type ClusterSecrets = readonly [string, ...string[]];

function mac(secret: string, label: string, edgeNonce: Buffer, frontNonce: Buffer): Buffer {
  return createHmac('sha256', secret).update(label).update(edgeNonce).update(frontNonce).digest();
}

/** The first accepted secret `proof` was made with, or undefined. Every secret is tried, so timing says nothing of which. */
function matching(secrets: ClusterSecrets, label: string, edgeNonce: Buffer, frontNonce: Buffer, proof: Buffer): string | undefined {
  let found: string | undefined;
  for (const s of secrets) {
    if (timingSafeEqual(mac(s, label, edgeNonce, frontNonce), proof) && found === undefined) found = s;
  }
  return found;
}

/**
 * Reads exactly `n` bytes from the stream (paused afterwards); bytes past them are put back, so the
 * tunnel session that takes the stream next sees them first.
 */
function readExactly(stream: Duplex, n: number, deadline: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let have = 0;
    const timer = setTimeout(() => done(new LinkAuthError('node link handshake timed out')), Math.max(0, deadline - Date.now()));
    const onData = (chunk: Buffer): void => {
      parts.push(chunk);
      have += chunk.length;
      if (have < n) return;
      const all = Buffer.concat(parts, have);
      done(undefined, all.subarray(0, n));
      if (all.length > n) stream.unshift(all.subarray(n));
    };
    const onEnd = (): void => done(new LinkAuthError('node link closed during the handshake'));
    const onError = (err: Error): void => done(new LinkAuthError(`node link failed during the handshake: ${err.message}`));
    function done(err: Error | undefined, value?: Buffer): void {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      stream.pause();
      if (err) reject(err);
      else resolve(value!);
    }
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onError);
    stream.resume();
  });
}

/** Edge side: challenges the connecting node; resolves once it proved a secret and has our proof. */
export async function acceptLink(stream: Duplex, secrets: ClusterSecrets, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const edgeNonce = randomBytes(NONCE_BYTES);
  stream.write(Buffer.concat([MAGIC, edgeNonce]));
  const proof = await readExactly(stream, PROOF_BYTES, deadline);
  if (!proof.subarray(0, MAGIC.length).equals(MAGIC)) throw new LinkAuthError('not a node link (bad magic)');
  const frontNonce = proof.subarray(MAGIC.length, MAGIC.length + NONCE_BYTES);
  const secret = matching(secrets, 'front', edgeNonce, frontNonce, proof.subarray(MAGIC.length + NONCE_BYTES));
  if (secret === undefined) throw new LinkAuthError('the connecting node does not know the cluster secret');
  stream.write(mac(secret, 'edge', edgeNonce, frontNonce));
}

/** Front side: answers the edge's challenge with `secrets[0]`, and checks the edge knows one of `secrets`. */
export async function connectLink(stream: Duplex, secrets: ClusterSecrets, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const challenge = await readExactly(stream, CHALLENGE_BYTES, deadline);
  if (!challenge.subarray(0, MAGIC.length).equals(MAGIC)) throw new LinkAuthError('not a node link (bad magic)');
  const edgeNonce = challenge.subarray(MAGIC.length);
  const frontNonce = randomBytes(NONCE_BYTES);
  stream.write(Buffer.concat([MAGIC, frontNonce, mac(secrets[0], 'front', edgeNonce, frontNonce)]));
  const answer = await readExactly(stream, MAC_BYTES, deadline);
  if (matching(secrets, 'edge', edgeNonce, frontNonce, answer) === undefined) throw new LinkAuthError('the edge does not know the cluster secret');
}
