import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { topicLimitProblem } from './topic-limits.js';

describe('topic limits (levels and UTF-8 bytes)', () => {
  const limits = { maxLevels: 3, maxBytes: 12 };

  it('accepts a topic at the limits and refuses one level or one byte over', () => {
    assert.equal(topicLimitProblem('a/b/c', limits), null);
    assert.equal(topicLimitProblem('a/b/c/d', limits), 'more than 3 levels');
    assert.equal(topicLimitProblem('//', limits), null, 'empty levels count');
    assert.equal(topicLimitProblem('///', limits), 'more than 3 levels');
    assert.equal(topicLimitProblem('abcdefghijkl', limits), null);
    assert.equal(topicLimitProblem('abcdefghijklm', limits), 'longer than 12 bytes');
  });

  it('counts UTF-8 bytes, not UTF-16 code units', () => {
    // 'é' is 2 bytes, '😀' 4 (two code units): 6 code units, 12 bytes.
    assert.equal(topicLimitProblem('éé😀😀', limits), null);
    assert.equal(topicLimitProblem('ééé😀😀', limits), 'longer than 12 bytes');
    assert.equal(topicLimitProblem('€€€€€', limits), 'longer than 12 bytes', '15 bytes in 5 code units');
  });
});
