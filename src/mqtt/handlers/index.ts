/** One handler per packet type a client may send; the codec refuses the server-only ones first. */
import type { Packet } from 'mqtt-packet';
import type { Channel } from '../channel.js';
import { protocolError } from '../errors.js';
import { handleAuth } from './auth.js';
import { handleConnect } from './connect.js';
import { handleDisconnect } from './disconnect.js';
import { handlePingreq } from './pingreq.js';
import { handlePuback } from './puback.js';
import { handlePubcomp } from './pubcomp.js';
import { handlePublish } from './publish.js';
import { handlePubrec } from './pubrec.js';
import { handlePubrel } from './pubrel.js';
import { handleSubscribe } from './subscribe.js';
import { handleUnsubscribe } from './unsubscribe.js';

type Handler<C extends Packet['cmd']> = (ch: Channel, p: Extract<Packet, { cmd: C }>) => void | Promise<void>;

const serverOnly = (ch: Channel, p: Packet): void => {
  throw protocolError(`${p.cmd.toUpperCase()} is sent by servers only`);
};

export const HANDLERS: { [C in Packet['cmd']]: Handler<C> } = {
  connect: (ch, p) => {
    // [MQTT-3.1.0-2] a second CONNECT is a protocol violation.
    if (ch.state !== 'new') throw protocolError('second CONNECT');
    return handleConnect(ch, p);
  },
  publish: handlePublish,
  puback: handlePuback,
  pubrec: handlePubrec,
  pubrel: handlePubrel,
  pubcomp: handlePubcomp,
  subscribe: handleSubscribe,
  unsubscribe: handleUnsubscribe,
  pingreq: handlePingreq,
  disconnect: handleDisconnect,
  auth: handleAuth,
  connack: serverOnly,
  suback: serverOnly,
  unsuback: serverOnly,
  pingresp: serverOnly,
};
