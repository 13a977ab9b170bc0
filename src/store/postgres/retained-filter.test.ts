import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RetainedStore } from '../../mqtt/retained.js';
import { escapeLike, filterCondition, type FilterCondition } from './retained-filter.js';

/** What PostgreSQL does with the condition, in JavaScript: LIKE with `escape '\'`, then the regex. */
function likeToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '\\') out += escapeJs(pattern[++i]!);
    else if (c === '%') out += '[\\s\\S]*';
    else if (c === '_') out += '[\\s\\S]';
    else out += escapeJs(c);
  }
  return new RegExp(`^${out}$`, 'u');
}
const escapeJs = (c: string): string => c.replace(/[\\^$.|?*+()[\]{}/-]/g, (x) => `\\${x}`);

function matches(c: FilterCondition, topic: string): boolean {
  if (c.excludeDollar && topic.startsWith('$')) return false;
  if (!likeToRegExp(c.like).test(topic)) return false;
  return c.regex === undefined || new RegExp(c.regex, 'su').test(topic);
}

const TOPICS = [
  'a', 'a/b', 'a/c', 'a/b/c', 'ab', 'ab/c', 'a/', '/a', '/', '//', 'a//b', 'b',
  '$SYS', '$SYS/x', '$SYS/x/y', '$other/a', 'a/$x',
  '100%', '100%/x', '1000/x', 'a_b', 'axb', 'a_b/c', 'a\\b', 'a\\b/c', 'a\\\\b',
  'a.b', 'aXb', 'a*', 'a+b', '(x)', '[x]', 'x|y', 'x^y', 'x$y', 'é/ü', 'line\nbreak',
];
const FILTERS = [
  '#', '+', '+/+', '+/#', 'a/#', 'a/+', 'a/+/c', 'a/b', '/#', '+/', 'a//+', '$SYS/#', '$SYS/+', '$SYS',
  '100%/#', '100%', 'a_b', 'a_b/#', 'a\\b/#', 'a\\b', 'a.b', 'a*', 'a+b', '(x)', '[x]', 'x|y', 'x^y', 'x$y', 'é/+', 'line\nbreak', '+/$x',
];

describe('retained filter in SQL', () => {
  it('matches exactly the topics the broker in memory matches, for every filter', () => {
    const store = new RetainedStore();
    for (const topic of TOPICS) store.set({ topic, message: undefined, qos: 0, expiresAt: undefined, owner: '', bytes: 1 });
    for (const filter of FILTERS) {
      const want = store.match(filter, 0).map((e) => e.topic).sort();
      const c = filterCondition(filter);
      const got = TOPICS.filter((t) => matches(c, t)).sort();
      assert.deepEqual(got, want, `filter ${JSON.stringify(filter)}`);
    }
  });

  it('lets `#` alone match every topic but those starting with $, without a regex', () => {
    assert.deepEqual(filterCondition('#'), { like: '%', regex: undefined, excludeDollar: true });
  });

  it('lets a/# match a itself and what is below it, not ab', () => {
    const c = filterCondition('a/#');
    assert.equal(c.like, 'a%');
    assert.ok(matches(c, 'a') && matches(c, 'a/b/c') && !matches(c, 'ab'));
  });

  it('keeps $SYS/# to $ topics and +/+ away from them', () => {
    assert.equal(filterCondition('$SYS/#').excludeDollar, false);
    assert.ok(matches(filterCondition('$SYS/#'), '$SYS/x'));
    assert.ok(!matches(filterCondition('+/+'), '$SYS/x'));
    assert.ok(matches(filterCondition('+/+'), 'a/$x'));
  });

  it('uses the topic itself, escaped, when the filter has no wildcard', () => {
    assert.deepEqual(filterCondition('100%_\\x'), { like: '100\\%\\_\\\\x', regex: undefined, excludeDollar: false });
  });

  it('escapes %, _ and \\ in the prefix so they match only themselves', () => {
    assert.equal(escapeLike('a%b_c\\d'), 'a\\%b\\_c\\\\d');
    const c = filterCondition('a_b/#');
    assert.ok(matches(c, 'a_b/c') && !matches(c, 'axb') && !matches(c, 'aXb/c'));
    assert.ok(!matches(filterCondition('100%/#'), '1000/x'));
  });
});
