import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ReplyLimiter } from './rate-limit.js';
import { formatAnswer, isQuery, parseAnswer } from './udp-text.js';

test('a query is short printable text that is not itself an answer', () => {
  assert.ok(isQuery(Buffer.from('hello')));
  assert.ok(isQuery(Buffer.alloc(0)), "the seed's dummy message may be empty");
  assert.ok(!isQuery(Buffer.alloc(257, 0x61)));
  assert.ok(!isQuery(Buffer.from([0x68, 0x00])));
  assert.ok(!isQuery(Buffer.from('CloudREST || aa:bb:cc:dd:ee:ff || x || http://h/')));
});

test('answers keep four fields whatever the device name holds, and parse back', () => {
  const text = formatAnswer({ mac: 'aa:bb:cc:dd:ee:ff', name: 'Kitchen || evil\n', url: 'http://192.0.2.5:8081' });
  assert.equal(text, 'CloudREST || aa:bb:cc:dd:ee:ff || Kitchen | evil || http://192.0.2.5:8081');
  assert.deepEqual(parseAnswer(Buffer.from(text)), { mac: 'aa:bb:cc:dd:ee:ff', name: 'Kitchen | evil', url: 'http://192.0.2.5:8081' });
  assert.equal(parseAnswer(Buffer.from('CloudREST || not-a-mac || x || http://h/')), undefined);
  assert.equal(parseAnswer(Buffer.from('CloudREST || aa:bb:cc:dd:ee:ff || x || file:///etc/passwd')), undefined);
  assert.equal(parseAnswer(Buffer.alloc(2000, 0x61)), undefined);
});

test('a device name with a run of bars or a long tail still gives an answer that parses back to it', () => {
  const parse = (name: string): string | undefined => parseAnswer(Buffer.from(formatAnswer({ mac: 'aa:bb:cc:dd:ee:ff', name, url: 'http://192.0.2.5:8081' })))?.name;
  assert.equal(parse('Kitchen ||| evil'), 'Kitchen | evil');
  assert.equal(parse('|||'), '|');
  assert.equal(parse(`${'a'.repeat(63)} tail`), 'a'.repeat(63), 'the cut does not leave a space the parser trims');
  assert.equal(parse(`${'a'.repeat(63)}😀`), 'a'.repeat(63), 'the cut does not split a character');
});

test('answers are limited per asker and in all', () => {
  const l = new ReplyLimiter(1000, 3, 2);
  assert.ok(l.allow('a', 0));
  assert.ok(!l.allow('a', 500));
  assert.ok(l.allow('b', 600));
  assert.ok(l.allow('c', 700));
  assert.ok(!l.allow('d', 800), 'three in this second already');
  assert.ok(l.allow('a', 1100), 'a new second, and a asked over a second ago');
});
