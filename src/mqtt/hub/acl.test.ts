import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../../config/load.js';
import { Acl, parseAcl, type Identity } from './acl.js';
import { covers, intersection, overlaps } from './topic-cover.js';

const L = (s: string) => s.split('/');

describe('topic filter cover and overlap', () => {
  test('a pattern covers the filters whose every topic it matches', () => {
    assert.equal(covers(L('a/#'), L('a')), true);
    assert.equal(covers(L('a/#'), L('a/b/+')), true);
    assert.equal(covers(L('a/+/c'), L('a/+/c')), true);
    assert.equal(covers(L('#'), L('a/#')), true);
    assert.equal(covers(L('a/+'), L('a/#')), false, 'a/# also matches a and a/b/c');
    assert.equal(covers(L('a/b'), L('a/+')), false);
    assert.equal(covers(L('a/+'), L('a/b/c')), false);
    assert.equal(covers(L('#'), L('$SYS/x')), false, '[MQTT-4.7.2-1]');
    assert.equal(covers(L('$SYS/#'), L('$SYS/x')), true);
  });

  test('two filters overlap when some topic matches both', () => {
    assert.equal(overlaps(L('a/+/c'), L('a/b/+')), true);
    assert.equal(overlaps(L('a/#'), L('a')), true);
    assert.equal(overlaps(L('a/b'), L('a/c')), false);
    assert.equal(overlaps(L('a/+'), L('a')), false);
    assert.equal(overlaps(L('a'), L('a/b')), false);
    assert.equal(overlaps(L('+/x'), L('$SYS/x')), false);
  });
});

describe('topic filter intersection', () => {
  test('two filters meet in the filter of the topics both match, or not at all', () => {
    assert.deepEqual(intersection(L('a/+/c'), L('a/b/#')), L('a/b/c'));
    assert.deepEqual(intersection(L('#'), L('x/+')), L('x/+'));
    assert.deepEqual(intersection(L('a/#'), L('a')), L('a'), "'#' also matches the parent level");
    assert.deepEqual(intersection(L('devices/+/#'), L('devices/+/events')), L('devices/+/events'));
    assert.equal(intersection(L('a/b'), L('a/c')), undefined);
    assert.equal(intersection(L('a/+'), L('a')), undefined);
    assert.equal(intersection(L('#'), L('$SYS/x')), undefined, '[MQTT-4.7.2-1]');
  });
});

describe('ACL rules and defaults', () => {
  const device: Identity = { kind: 'device', id: 'd1' };
  const alice: Identity = { kind: 'user', id: 'u1', email: 'alice@example.com' };
  const bob: Identity = { kind: 'user', id: 'u2', email: 'bob@example.com' };
  const anon: Identity = { kind: 'anonymous' };
  const owns = (u: { email: string }, d: string) => u.email === 'alice@example.com' && d === 'd1';

  test('without rules: a device has its own devices/{id}/#, a user the devices they own, anonymous nothing', () => {
    const acl = new Acl([], owns);
    assert.equal(acl.allows(device, 'publish', 'devices/d1/events', 'c'), true);
    assert.equal(acl.allows(device, 'subscribe', 'devices/d1/#', 'c'), true);
    assert.equal(acl.allows(device, 'subscribe', 'devices/d2/#', 'c'), false);
    assert.equal(acl.allows(device, 'subscribe', 'devices/+/events', 'c'), false, 'would include other devices');
    assert.equal(acl.allows(alice, 'subscribe', 'devices/d1/#', 'c'), true);
    assert.equal(acl.allows(bob, 'subscribe', 'devices/d1/#', 'c'), false);
    assert.equal(acl.allows(anon, 'subscribe', 'devices/d1/#', 'c'), false);
    assert.equal(acl.allows(alice, 'publish', 'elsewhere', 'c'), false);
  });

  test('the first rule that decides wins; a deny above an allow refuses the overlap', () => {
    const acl = new Acl(parseAcl(['# comment', 'deny publish everyone devices/+/status', 'allow subscribe everyone public/#', 'deny subscribe users public/secret/#', 'allow all users users/%u/#'].join('\n')), owns);
    assert.equal(acl.allows(device, 'publish', 'devices/d1/status', 'c'), false, 'deny before the default');
    assert.equal(acl.allows(device, 'publish', 'devices/d1/events', 'c'), true);
    assert.equal(acl.allows(anon, 'subscribe', 'public/news', 'c'), true);
    assert.equal(acl.allows(alice, 'subscribe', 'public/secret/x', 'c'), true, 'the allow above decides first');
    assert.equal(acl.allows(alice, 'subscribe', 'users/alice@example.com/#', 'c'), true);
    assert.equal(acl.allows(bob, 'subscribe', 'users/alice@example.com/#', 'c'), false);
    assert.equal(acl.allows(alice, 'subscribe', 'users/+/inbox', 'c'), false, 'covers other users too');
  });

  test('%c and %d are substituted; a value that cannot be a level grants nothing and denies widely', () => {
    const acl = new Acl(parseAcl('allow publish devices telemetry/%d/%c\ndeny subscribe everyone private/%c/#\nallow subscribe everyone private/#'), owns);
    assert.equal(acl.allows(device, 'publish', 'telemetry/d1/sensor-1', 'sensor-1'), true);
    assert.equal(acl.allows(device, 'publish', 'telemetry/d1/other', 'sensor-1'), false);
    assert.equal(acl.allows(alice, 'publish', 'telemetry/d1/sensor-1', 'sensor-1'), false, '%d is only for devices');
    assert.equal(acl.allows(alice, 'subscribe', 'private/x/y', 'me'), true);
    assert.equal(acl.allows(alice, 'subscribe', 'private/me/y', 'me'), false);
    assert.equal(acl.allows(alice, 'subscribe', 'private/x/y', 'a/b'), false, 'a client id with / cannot escape the deny');
  });

  test('a shared subscription is decided on the filter after $share/{group}/, for rules and defaults alike', () => {
    const acl = new Acl(parseAcl('allow subscribe users jobs/#'), owns);
    assert.equal(acl.allows(alice, 'subscribe', '$share/g/jobs/build', 'c'), true);
    assert.equal(acl.allows(alice, 'subscribe', '$share/g/devices/d1/#', 'c'), true);
    assert.equal(acl.allows(bob, 'subscribe', '$share/g/devices/d1/#', 'c'), false);
    assert.equal(acl.allows(device, 'subscribe', '$share/g/devices/d1/cmd', 'c'), true);
    assert.equal(acl.allows(device, 'subscribe', '$share/g/devices/d2/cmd', 'c'), false);
    assert.equal(acl.allows(device, 'publish', '$share/g/devices/d1/cmd', 'c'), false, 'a topic name is never unshared');
  });

  test('subscription(): a filter is granted whole, in part (then checked per message) or refused', () => {
    const acl = new Acl(parseAcl('deny subscribe everyone secret/x\nallow all everyone #'), owns);
    assert.equal(acl.subscription(anon, '#', 'c'), 'some');
    assert.equal(acl.allows(anon, 'subscribe', 'secret/x', 'c'), false, 'the topic a message on it is checked against');
    assert.equal(acl.allows(anon, 'subscribe', 'secret/y', 'c'), true);
    assert.equal(acl.subscription(anon, 'secret/x', 'c'), 'none');
    assert.equal(acl.subscription(anon, 'secret/x/#', 'c'), 'some', 'secret/x/1 is allowed');
    assert.equal(acl.subscription(anon, 'public/#', 'c'), 'all');
    assert.equal(acl.subscription(anon, '$share/g/#', 'c'), 'some');
  });

  test('subscription() under the defaults: devices/+/... for a device or a user; another device\'s topics refused', () => {
    const acl = new Acl([], owns);
    assert.equal(acl.subscription(device, 'devices/+/events', 'c'), 'some');
    assert.equal(acl.subscription(device, '#', 'c'), 'some');
    assert.equal(acl.subscription(device, 'devices/d1/#', 'c'), 'all');
    assert.equal(acl.subscription(device, 'devices/d2/#', 'c'), 'none');
    assert.equal(acl.subscription(alice, 'devices/+/events', 'c'), 'some');
    assert.equal(acl.subscription(alice, 'devices/d1/+', 'c'), 'all');
    assert.equal(acl.subscription(bob, 'devices/d1/+', 'c'), 'none', 'not his device');
    assert.equal(acl.subscription(alice, 'elsewhere/#', 'c'), 'none');
    assert.equal(acl.subscription(anon, 'devices/+/events', 'c'), 'none');
  });

  test('subscription(): an allow below a deny that covers what it would add grants nothing', () => {
    const acl = new Acl(parseAcl('deny subscribe everyone secret/#\nallow subscribe everyone secret/x\nallow subscribe everyone +/open'), owns);
    assert.equal(acl.subscription(anon, 'secret/+', 'c'), 'none', 'secret/x is inside the deny above it');
    assert.equal(acl.subscription(anon, '+/open', 'c'), 'some', 'all but secret/open');
    const devices = new Acl(parseAcl('deny subscribe users devices/+/secret'), owns);
    assert.equal(devices.subscription(alice, 'devices/+/secret', 'c'), 'none', 'the deny covers the default grant');
    assert.equal(devices.subscription(alice, 'devices/d1/#', 'c'), 'some');
  });

  test('a bad rule is a config error naming the file and line', () => {
    assert.throws(() => parseAcl('allow publish everyone a/#\npermit publish everyone x', 'acl.txt'), (e: unknown) => e instanceof ConfigError && /acl\.txt:2: unknown verb/.test(e.message));
    assert.throws(() => parseAcl('allow publish someone x'), /unknown WHO/);
    assert.throws(() => parseAcl('allow publish everyone a/#/b'), /pattern/);
    assert.throws(() => parseAcl('allow publish everyone a/%x'), /placeholders/);
  });
});
