import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_TOPIC_BYTES, TopicTree, validateTopicFilter, validateTopicName } from './topic-tree.js';

/** Does `filter` match `topic`, according to a tree holding only that filter? */
function matches(filter: string, topic: string): boolean {
  const tree = new TopicTree<string>();
  tree.add(filter, filter);
  const viaMatch = tree.match(topic).length === 1;
  assert.equal(tree.hasMatch(topic), viaMatch, `hasMatch disagrees with match for ${filter} / ${topic}`);
  return viaMatch;
}

describe('topic filter matching (MQTT §4.7)', () => {
  // The examples of MQTT 5.0 §4.7.1.2, §4.7.1.3 and §4.7.2, plus the edges around them.
  const cases: [filter: string, topic: string, expected: boolean][] = [
    ['sport/tennis/player1', 'sport/tennis/player1', true],
    ['sport/tennis/player1', 'sport/tennis/player2', false],
    ['sport/tennis/player1', 'sport/tennis', false],
    ['sport/tennis', 'sport/tennis/player1', false],
    ['sport/tennis/player1/#', 'sport/tennis/player1', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/ranking', true],
    ['sport/tennis/player1/#', 'sport/tennis/player1/score/wimbledon', true],
    ['sport/#', 'sport', true],
    ['#', 'sport/tennis/player1', true],
    ['#', '/', true],
    ['sport/tennis/#', 'sport/tennisplayer1', false],
    ['sport/tennis/+', 'sport/tennis/player1', true],
    ['sport/tennis/+', 'sport/tennis/player1/ranking', false],
    ['sport/+', 'sport', false],
    ['sport/+', 'sport/', true],
    ['+/+', '/finance', true],
    ['/+', '/finance', true],
    ['+', '/finance', false],
    ['+', 'finance', true],
    ['+/tennis/#', 'sport/tennis/player1/ranking', true],
    ['+/tennis/#', 'sport/tennis', true],
    ['+/+/+', 'a//c', true],
    ['a//c', 'a//c', true],
    ['a//c', 'a/c', false],
    ['/', '/', true],
    ['a/', 'a', false],
    ['a', 'a/', false],
    ['Sport', 'sport', false],
    ['#', '$SYS/broker/uptime', false],
    ['+/monitor/Clients', '$SYS/monitor/Clients', false],
    ['$SYS/#', '$SYS/monitor/Clients', true],
    ['$SYS/monitor/+', '$SYS/monitor/Clients', true],
    ['$SYS/#', '$SYS', true],
    ['a/#', 'a/$b', true],
    ['a/+', 'a/$b', true],
    ['caf\u00e9/\u{1f600}/+', 'caf\u00e9/\u{1f600}/x', true],
  ];
  for (const [filter, topic, expected] of cases) {
    it(`${JSON.stringify(filter)} ${expected ? 'matches' : 'does not match'} ${JSON.stringify(topic)}`, () => {
      assert.equal(matches(filter, topic), expected);
    });
  }

  it('never lets a literal "+" or "#" level in a topic reach a wildcard subscription', () => {
    const tree = new TopicTree<string>();
    tree.add('a/b', 'exact');
    assert.deepEqual(tree.match('a/+'), []);
    assert.deepEqual(tree.match('a/#'), []);
  });
});

describe('TopicTree', () => {
  it('returns every value whose filter matches, once per filter', () => {
    const tree = new TopicTree<string>();
    tree.add('a/b/c', 'exact');
    tree.add('a/+/c', 'plus');
    tree.add('a/#', 'hash');
    tree.add('#', 'all');
    tree.add('+/+', 'two-levels');
    tree.add('a/b', 'other');
    assert.deepEqual(tree.match('a/b/c').sort(), ['all', 'exact', 'hash', 'plus']);
    assert.deepEqual(tree.match('a/b').sort(), ['all', 'hash', 'other', 'two-levels']);
  });

  it('reports a value held under two matching filters once for each', () => {
    const tree = new TopicTree<string>();
    tree.add('a/+', 'x');
    tree.add('a/#', 'x');
    assert.deepEqual(tree.match('a/b'), ['x', 'x']);
  });

  it('stores a value under the same filter only once', () => {
    const tree = new TopicTree<string>();
    assert.equal(tree.add('a/b', 'x'), true);
    assert.equal(tree.add('a/b', 'x'), false);
    assert.equal(tree.size, 1);
    assert.deepEqual(tree.match('a/b'), ['x']);
  });

  it('stops matching a value once removed, leaving other values of the filter', () => {
    const tree = new TopicTree<string>();
    tree.add('a/+', 'x');
    tree.add('a/+', 'y');
    assert.equal(tree.remove('a/+', 'x'), true);
    assert.deepEqual(tree.match('a/b'), ['y']);
    assert.equal(tree.remove('a/+', 'x'), false);
    assert.equal(tree.remove('a/#', 'y'), false);
    assert.equal(tree.remove('no/such/filter', 'y'), false);
    assert.equal(tree.remove('a/#/b', 'y'), false);
    assert.equal(tree.size, 1);
  });

  it('frees its nodes when the last subscription goes, so memory follows live subscriptions', () => {
    const tree = new TopicTree<number>();
    const filters = ['a/b/c', 'a/+/c', 'a/#', '#', '+', '+/+/#', 'x//y', '/', '$SYS/#'];
    for (const [i, f] of filters.entries()) tree.add(f, i);
    assert.ok(tree.nodeCount > 1);
    for (const [i, f] of filters.entries()) assert.equal(tree.remove(f, i), true, f);
    assert.equal(tree.size, 0);
    assert.equal(tree.nodeCount, 1, 'only the root is left');
    assert.deepEqual(tree.match('a/b/c'), []);
  });

  it('keeps the nodes another filter still needs when one filter goes', () => {
    const tree = new TopicTree<string>();
    tree.add('a/b/c', 'deep');
    tree.add('a/b', 'shallow');
    const nodes = tree.nodeCount;
    tree.remove('a/b', 'shallow');
    assert.equal(tree.nodeCount, nodes);
    assert.deepEqual(tree.match('a/b/c'), ['deep']);
    tree.remove('a/b/c', 'deep');
    assert.equal(tree.nodeCount, 1);
  });

  it('empties completely on clear()', () => {
    const tree = new TopicTree<string>();
    tree.add('a/b', 'x');
    tree.add('#', 'y');
    tree.clear();
    assert.equal(tree.size, 0);
    assert.equal(tree.nodeCount, 1);
    assert.deepEqual(tree.match('a/b'), []);
    assert.equal(tree.remove('a/b', 'x'), false);
  });

  it('refuses to store an invalid filter', () => {
    const tree = new TopicTree<string>();
    for (const bad of ['', 'a/#/b', 'a+', 'a/b#', '#/', 'a\u0000b']) {
      assert.throws(() => tree.add(bad, 'x'), TypeError, JSON.stringify(bad));
    }
    assert.equal(tree.size, 0);
  });

  it('gives a snapshot from match() that later changes do not affect', () => {
    const tree = new TopicTree<string>();
    tree.add('a', 'x');
    const got = tree.match('a');
    tree.add('a', 'y');
    tree.remove('a', 'x');
    assert.deepEqual(got, ['x']);
  });
});

describe('validateTopicName', () => {
  it('accepts ordinary, empty-level, $-prefixed and non-ASCII names', () => {
    for (const ok of ['a', '/', '//', 'a//b', '/a/', '$SYS/uptime', 'caf\u00e9', '\u{1f600}/x', ' ']) {
      assert.equal(validateTopicName(ok), null, JSON.stringify(ok));
    }
  });

  it('rejects wildcards, emptiness, U+0000 and lone surrogates', () => {
    for (const bad of ['', 'a/+', 'a/#', 'a+b', 'a#', '#', '+', 'a\u0000', '\ud800', 'a\udc00b', 'x\ud83d']) {
      assert.equal(typeof validateTopicName(bad), 'string', JSON.stringify(bad));
    }
  });

  it('counts the limit in UTF-8 bytes, not characters', () => {
    assert.equal(validateTopicName('a'.repeat(MAX_TOPIC_BYTES)), null);
    assert.match(validateTopicName('a'.repeat(MAX_TOPIC_BYTES + 1)) ?? '', /65535/);
    // 'é' is two bytes: 32768 of them are 65536 bytes in fewer than 65535 characters.
    assert.match(validateTopicName('\u00e9'.repeat(32_768)) ?? '', /65535/);
    assert.equal(validateTopicName('\u00e9'.repeat(32_767)), null);
    // A surrogate pair is four bytes.
    assert.match(validateTopicName('\u{1f600}'.repeat(16_384)) ?? '', /65535/);
    assert.equal(validateTopicName('\u{1f600}'.repeat(16_383)), null);
  });
});

describe('validateTopicFilter', () => {
  it('accepts filters with whole-level wildcards and a final #', () => {
    for (const ok of ['#', '+', '+/+', 'a/#', '+/#', '/#', 'a/+/b', '+/', '/+', 'a//#', '$SYS/#', '$share/g/a/+']) {
      assert.equal(validateTopicFilter(ok), null, JSON.stringify(ok));
    }
  });

  it('rejects # that is not last or not alone, + that is not alone, and emptiness', () => {
    for (const bad of ['', 'a/#/b', '#/', '##', 'a#', 'a/b#', '#a', 'a+', '+a', 'a/+b/c', '++', 'a/\u0000', '\udfff']) {
      assert.equal(typeof validateTopicFilter(bad), 'string', JSON.stringify(bad));
    }
  });
});

describe('TopicTree against a level-by-level reference matcher', () => {
  /** §4.7 read literally, level by level: slow, obviously right. */
  function reference(filter: string, topic: string): boolean {
    const f = filter.split('/');
    const t = topic.split('/');
    if (topic.startsWith('$') && (f[0] === '+' || f[0] === '#')) return false;
    for (let i = 0; i < f.length; i++) {
      if (f[i] === '#') return true;
      if (i >= t.length) return false;
      if (f[i] !== '+' && f[i] !== t[i]) return false;
    }
    return f.length === t.length;
  }

  it('agrees on thousands of random filters and topics, including after removals', () => {
    let seed = 42;
    const rand = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) & 0x7fffffff;
      return seed % n;
    };
    const word = (): string => ['a', 'b', '', '$x'][rand(4)]!;
    const topic = (): string => Array.from({ length: 1 + rand(4) }, word).join('/');
    const filter = (): string => {
      const levels = Array.from({ length: 1 + rand(4) }, () => (rand(3) === 0 ? '+' : word()));
      if (rand(3) === 0) levels.push('#');
      return levels.join('/');
    };
    const tree = new TopicTree<number>();
    const live = new Map<number, string>();
    for (let i = 0; i < 300; i++) {
      const f = filter();
      tree.add(f, i);
      live.set(i, f);
    }
    for (let i = 0; i < 300; i += 3) {
      assert.equal(tree.remove(live.get(i)!, i), true);
      live.delete(i);
    }
    for (let n = 0; n < 2000; n++) {
      const t = topic();
      const expected = [...live].filter(([, f]) => reference(f, t)).map(([i]) => i).sort((x, y) => x - y);
      assert.deepEqual(tree.match(t).sort((x, y) => x - y), expected, t);
    }
  });
});

describe('topic tree walks on deep topics', () => {
  const deep = (levels: number, last = 'end'): string => `${'a/'.repeat(levels - 1)}${last}`;

  it('matches, reports and removes filters 30,000 levels deep without overflowing the stack', () => {
    const tree = new TopicTree<string>();
    const exact = deep(30_000);
    const hash = `${'a/'.repeat(29_998)}#`;
    const plus = `${'a/'.repeat(29_999)}+`;
    const name = (f: string): string => (f.length > 20 ? f.slice(-3) : f);
    for (const f of [exact, hash, plus, '#']) tree.add(f, name(f));
    assert.deepEqual(tree.match(exact), ['#', 'a/#', 'end', 'a/+']);
    assert.equal(tree.hasMatch(exact), true);
    assert.deepEqual(tree.match(deep(30_001)), ['#', 'a/#']);
    assert.deepEqual(tree.match(deep(15_000)), ['#']);
    for (const f of [exact, hash, plus, '#']) assert.equal(tree.remove(f, name(f)), true);
    assert.equal(tree.nodeCount, 1);
    assert.equal(tree.hasMatch(exact), false);
  });

  it('gives matching values in the order the recursive walk did: #, then the literal level, then +', () => {
    const tree = new TopicTree<string>();
    for (const f of ['+/b', 'a/+', 'a/b', 'a/#', '#']) tree.add(f, f);
    assert.deepEqual(tree.match('a/b'), ['#', 'a/#', 'a/b', 'a/+', '+/b']);
    assert.deepEqual(tree.match('$a/b'), []);
  });

  it('lets a callback read the same tree while it is being walked', () => {
    const tree = new TopicTree<string>();
    for (const f of ['x/#', 'x/+', 'y/#']) tree.add(f, f);
    const seen: string[] = [];
    tree.forEach('x/1', (v) => {
      seen.push(v);
      seen.push(...tree.match('y/1').map((w) => `inner ${w}`));
    });
    assert.deepEqual(seen, ['x/#', 'inner y/#', 'x/+', 'inner y/#']);
  });
});
