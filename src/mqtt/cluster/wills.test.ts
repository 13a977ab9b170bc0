import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeTakeover, encodeAck, encodeRequest } from './takeover.js';
import { decodeWill, encodeWill, willDueAt, type WillRecord } from './wills.js';

const record: WillRecord = {
  topic: 'plant/7/status', payload: Buffer.from([0, 1, 2, 255]), qos: 2, retain: true,
  properties: { contentType: 'text/plain', correlationData: Buffer.from('c0'), userProperties: { k: 'v' } },
  delayS: 30, expiryS: 600, sessionExpiryS: 3600, dueAt: undefined, principal: 'device:d_1', clientId: 'pump-7', origin: 'n-a',
};

describe('cluster wills and take-over messages as bytes', () => {
  it('a will comes back as recorded, binary payload and properties included', () => {
    assert.deepEqual(decodeWill(encodeWill(record)), record);
    assert.deepEqual(decodeWill(encodeWill({ ...record, properties: undefined, expiryS: undefined, dueAt: 1_700_000_000_123 })), { ...record, properties: undefined, expiryS: undefined, dueAt: 1_700_000_000_123 });
  });

  it('bytes it did not write, or cut short, are no will', () => {
    const b = encodeWill(record);
    assert.equal(decodeWill(b.subarray(0, b.length - 1)), undefined);
    assert.equal(decodeWill(Buffer.from([9, 0, 0])), undefined);
  });

  it('a will of a dead node is due its delay after the death, at once when the session ended with the connection, or when recorded', () => {
    assert.equal(willDueAt(record, 1000), 31_000);
    assert.equal(willDueAt({ ...record, sessionExpiryS: 0 }, 1000), 1000);
    assert.equal(willDueAt({ ...record, sessionExpiryS: 5 }, 1000), 6000);
    assert.equal(willDueAt({ ...record, dueAt: 500 }, 1000), 500);
  });

  it('a take-over request and its acknowledgement come back as sent', () => {
    const id = Buffer.from('0123456789abcdef', 'hex');
    assert.deepEqual(decodeTakeover(encodeRequest({ id, cleanStart: true, from: 'node-b', principal: 'user:u_1', clientId: 'cl/ient é' })), { type: 1, id, cleanStart: true, from: 'node-b', principal: 'user:u_1', clientId: 'cl/ient é' });
    assert.deepEqual(decodeTakeover(encodeAck(id, false)), { type: 2, id, refused: false });
    assert.deepEqual(decodeTakeover(encodeAck(id, true)), { type: 2, id, refused: true });
    assert.deepEqual(decodeTakeover(Buffer.concat([Buffer.from([2]), id])), { type: 2, id, refused: false }, 'an acknowledgement of the previous release');
    assert.equal(decodeTakeover(Buffer.from([1, 2, 3])), undefined);
  });
});
