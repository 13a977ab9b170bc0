import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { RefusalLog } from './refusal-log.js';

/** A pino logger writing its lines into an array. */
function capture(): { log: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, lines };
}

describe('RefusalLog', () => {
  it('logs the first refusal per address at once and the rest as one summary line per interval', (t) => {
    t.mock.timers.enable({ apis: ['setInterval'] });
    const { log, lines } = capture();
    const r = new RefusalLog(log, 'refused', 60_000);
    try {
      for (let i = 0; i < 1000; i++) r.refused('10.0.0.1', { limit: 5 });
      r.refused('10.0.0.2', { limit: 5 });
      assert.deepEqual(lines.map((l) => [l.msg, l.address]), [['refused', '10.0.0.1'], ['refused', '10.0.0.2']]);
      t.mock.timers.tick(60_000);
      assert.deepEqual(lines.slice(2).map((l) => [l.msg, l.address, l.refused]), [['refused (repeated)', '10.0.0.1', 999]]);
      // Still refused in the next interval: summarised again, not logged at once.
      r.refused('10.0.0.1', { limit: 5 });
      assert.equal(lines.length, 3);
      t.mock.timers.tick(60_000);
      assert.deepEqual(lines.slice(3).map((l) => [l.address, l.refused]), [['10.0.0.1', 1]]);
      // A quiet interval: the address is forgotten, and its next refusal is logged at once.
      t.mock.timers.tick(60_000);
      r.refused('10.0.0.1', { limit: 5 });
      assert.deepEqual(lines.slice(4).map((l) => l.msg), ['refused']);
    } finally {
      r.stop();
    }
  });
});
