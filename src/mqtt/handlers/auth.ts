/**
 * MQTT 5 enhanced authentication (5.0 §4.12): a CONNECT with an Authentication Method, then AUTH
 * packets both ways until the hook accepts or refuses; later, re-authentication with AUTH 0x19.
 */
import type { IAuthPacket } from 'mqtt-packet';
import type { Channel } from '../channel.js';
import { protocolError } from '../errors.js';
import type { EnhancedAuthResult } from '../hooks.js';
import { RC } from '../reason-codes.js';
import { openSession, refuse } from './connack.js';

/** Step 0, from CONNECT. */
export async function startEnhancedAuth(ch: Channel, method: string, data: Buffer | undefined): Promise<void> {
  // 5.0 §3.1.2.11.9: a method the server does not support gets CONNACK 0x8C.
  if (ch.ctx.hooks.enhancedAuthenticate === undefined) return refuse(ch, RC.BAD_AUTHENTICATION_METHOD);
  ch.auth = { method, step: 0, state: undefined };
  return step(ch, data, 'connect');
}

export async function handleAuth(ch: Channel, p: IAuthPacket): Promise<void> {
  const method = p.properties?.authenticationMethod;
  const data = p.properties?.authenticationData;
  if (ch.state === 'authenticating') {
    // [MQTT-4.12.0-?] 5.0 §4.12: the same method throughout, and 0x18 while it goes on.
    if (p.reasonCode !== RC.CONTINUE_AUTHENTICATION || method !== ch.auth!.method) throw protocolError('unexpected AUTH during authentication');
    ch.auth!.step++;
    return step(ch, data, 'connect');
  }
  // Re-authentication (5.0 §4.12.1): only with the method of the CONNECT.
  if (ch.auth === undefined && p.reasonCode === RC.REAUTHENTICATE && method !== undefined && method === ch.authMethod) {
    ch.auth = { method, step: 0, state: undefined };
    return step(ch, data, 'reauth');
  }
  if (ch.auth !== undefined && p.reasonCode === RC.CONTINUE_AUTHENTICATION && method === ch.auth.method) {
    ch.auth.step++;
    return step(ch, data, 'reauth');
  }
  // [MQTT-4.12.0-7] AUTH without enhanced authentication in CONNECT is a Protocol Error.
  throw protocolError('AUTH outside an enhanced authentication');
}

async function step(ch: Channel, data: Buffer | undefined, phase: 'connect' | 'reauth'): Promise<void> {
  const { ctx } = ch;
  const auth = ch.auth!;
  let result: EnhancedAuthResult;
  try {
    result = await ctx.hooks.enhancedAuthenticate!({
      clientId: ch.pending?.clientId ?? ch.clientId,
      username: ch.username,
      password: undefined,
      remoteAddress: ch.meta.remoteAddress,
      transport: ch.meta.transport,
      protocolVersion: 5,
      method: auth.method,
      data,
      step: auth.step,
      state: auth.state,
    });
  } catch (err) {
    ctx.hooks.onError(err, 'enhancedAuthenticate');
    result = { reasonCode: RC.UNSPECIFIED_ERROR };
  }
  if (ch.state === 'closed') return;
  if ('continue' in result) {
    if (phase === 'connect') ch.state = 'authenticating';
    auth.state = result.state;
    ch.send({ cmd: 'auth', reasonCode: RC.CONTINUE_AUTHENTICATION, properties: { authenticationMethod: auth.method, ...(result.data !== undefined ? { authenticationData: result.data } : {}) } });
    return;
  }
  if ('reasonCode' in result) {
    if (phase === 'connect') return refuse(ch, result.reasonCode, result.reasonString);
    // 5.0 §4.12.1: a failed re-authentication ends the connection.
    return ch.disconnect(result.reasonCode, result.reasonString);
  }
  if (phase === 'connect') {
    ch.authMethod = auth.method;
    if (result.credential !== undefined) ch.ctx.holdCredential(ch, result.credential);
    return openSession(ch, result.principal, { method: auth.method, data: result.data });
  }
  ch.auth = undefined;
  // A re-authentication may not change who the client is.
  if (result.principal !== ch.principal) return ch.disconnect(RC.NOT_AUTHORIZED, 're-authenticated as another principal');
  ch.send({ cmd: 'auth', reasonCode: RC.SUCCESS, properties: { authenticationMethod: auth.method, ...(result.data !== undefined ? { authenticationData: result.data } : {}) } });
}
