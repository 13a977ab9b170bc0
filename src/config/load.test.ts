import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hubOptions } from './hub-options.js';
import { helpText } from './load.js';

describe('--help text', () => {
  it('keeps every flag apart from its description, however long the flag', () => {
    const text = helpText('cloudrest hub [options]', hubOptions);
    for (const key of ['mqttMaxRetainedBytesPerOwner', 'loginMaxFailuresPerAddress', 'httpPort']) {
      const flag = `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
      const line = text.split('\n').find((l) => l.includes(`${flag} `) || l.endsWith(flag) || l.endsWith(`${flag} N`));
      assert.ok(line !== undefined, `${flag} is in the help`);
      // The flag (and its argument) end before whitespace: never "--flag NDescription".
      assert.match(line, new RegExp(`${flag}( N| VALUE)?(\\s{2,}\\S|$)`), line);
    }
  });
});
