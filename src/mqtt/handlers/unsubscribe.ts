/** UNSUBSCRIBE (3.1.1 §3.10, 5.0 §3.10): [MQTT-3.10.4-5] UNSUBACK even when nothing matched. */
import type { IUnsubscribePacket } from 'mqtt-packet';
import type { Channel } from '../channel.js';
import { malformed, protocolError } from '../errors.js';
import { RC } from '../reason-codes.js';
import { parseFilter } from '../subscription.js';

export function handleUnsubscribe(ch: Channel, p: IUnsubscribePacket): void {
  const { ctx } = ch;
  const session = ch.session!;
  const id = p.messageId ?? 0;
  if (id === 0) throw malformed('packet identifier 0');
  // [MQTT-3.10.3-2] at least one topic filter.
  if (p.unsubscriptions.length === 0) throw protocolError('UNSUBSCRIBE without a topic filter');
  const codes: number[] = [];
  for (const filter of p.unsubscriptions) {
    if ('problem' in parseFilter(filter)) {
      codes.push(RC.TOPIC_FILTER_INVALID);
      continue;
    }
    // [MQTT-3.10.4-1] the filter is compared character by character.
    const sub = session.subscriptions.get(filter);
    if (sub === undefined) {
      codes.push(RC.NO_SUBSCRIPTION_EXISTED);
      continue;
    }
    ctx.router.remove(sub);
    session.removeSubscription(filter);
    codes.push(RC.SUCCESS);
  }
  // 3.1.1 UNSUBACK carries no codes; the encoder writes them for 5.0 only.
  ch.ackAfter(ctx.saveSession(session), () => ({ cmd: 'unsuback', messageId: id, granted: codes }));
}
