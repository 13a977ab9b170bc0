import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { CLI, cli, cliFails, tempDir } from './support/procs.js';

const run = promisify(execFile);

describe('command line: oauth-clients', () => {
  let data: ReturnType<typeof tempDir>;
  before(() => {
    data = tempDir();
  });
  after(() => data.remove());

  it('is listed in the help, and every subcommand documents its flags with their variables', async () => {
    assert.match(await cli(['--help']), /oauth-clients add\|list\|remove/);
    const add = await cli(['oauth-clients', 'add', '--help']);
    assert.match(add, /--redirect-uri VALUE .*CLOUDREST_REDIRECT_URI/);
    assert.match(add, /--confidential .*\[default: false\].*CLOUDREST_CONFIDENTIAL/);
    assert.match(add, /--name VALUE .*CLOUDREST_NAME/);
    assert.match(await cli(['oauth-clients', 'list', '--help']), /--json/);
    assert.match(await cli(['oauth-clients', 'remove', '--help']), /CLIENT_ID/);
    assert.match(await cli(['hub', '--help']), /--oauth-code-ttl-ms N .*\[default: 60000\].*CLOUDREST_OAUTH_CODE_TTL_MS/);
  });

  it('adds public and confidential clients with several redirect URIs, from flags or CLOUDREST_* variables', async () => {
    const pub = JSON.parse(await cli(['oauth-clients', 'add', '--data', data.path, '--name', 'Phone', '--redirect-uri', 'com.example.phone:/cb', '--redirect-uri', 'http://127.0.0.1:7777/cb', '--json'])) as Record<string, unknown>;
    assert.deepEqual([pub.type, pub.redirect_uris, 'client_secret' in pub], ['public', ['com.example.phone:/cb', 'http://127.0.0.1:7777/cb'], false]);
    const env = { ...process.env, CLOUDREST_DATA: data.path, CLOUDREST_NAME: 'From env', CLOUDREST_REDIRECT_URI: 'https://a.example/cb,https://b.example/cb', CLOUDREST_CONFIDENTIAL: 'true' };
    const { stdout } = await run(process.execPath, [CLI, 'oauth-clients', 'add'], { env });
    assert.match(stdout, /OAuth client added: From env \(confidential\)/);
    assert.match(stdout, /client_secret: cro\.cs\.\S{43} {3}\(shown once/);
    const list = JSON.parse(await cli(['oauth-clients', 'list', '--data', data.path, '--json'])) as Array<Record<string, unknown>>;
    assert.deepEqual(list.map((c) => [c.name, c.type, c.redirect_uris]), [
      ['Phone', 'public', ['com.example.phone:/cb', 'http://127.0.0.1:7777/cb']],
      ['From env', 'confidential', ['https://a.example/cb', 'https://b.example/cb']],
    ]);
    assert.match(await cli(['oauth-clients', 'list', '--data', data.path]), /^oc_\S+ +public +Phone {2}com\.example\.phone:\/cb http:\/\/127\.0\.0\.1:7777\/cb$/m);
  });

  it('refuses unsafe redirect URIs, bad names and unknown ids with a clear message and exit code 2, and adds nothing', async () => {
    const before = await cli(['oauth-clients', 'list', '--data', data.path, '--json']);
    for (const [uri, why] of [
      ['http://service.example/cb', /only for 127\.0\.0\.1/],
      ['https://service.example/cb#x', /fragment/],
      ['javascript:alert(1)', /not allowed/],
      ['cb', /not an absolute URI/],
    ] as const) {
      const r = await cliFails(['oauth-clients', 'add', '--data', data.path, '--name', 'Bad', '--redirect-uri', uri]);
      assert.equal(r.code, 2, uri);
      assert.match(r.stderr, why);
    }
    assert.match((await cliFails(['oauth-clients', 'add', '--data', data.path, '--name', 'Bad'])).stderr, /missing required option --redirect-uri/);
    assert.match((await cliFails(['oauth-clients', 'add', '--data', data.path, '--name', 'x'.repeat(101), '--redirect-uri', 'https://a.example/cb'])).stderr, /1-100 printable/);
    const unknown = await cliFails(['oauth-clients', 'remove', 'oc_nobody', '--data', data.path]);
    assert.deepEqual([unknown.code, /no OAuth client oc_nobody/.test(unknown.stderr)], [2, true]);
    assert.match((await cliFails(['oauth-clients', 'remove', '--data', data.path])).stderr, /usage: cloudrest oauth-clients remove CLIENT_ID/);
    assert.match((await cliFails(['oauth-clients', 'rename'])).stderr, /unknown command: cloudrest oauth-clients rename/);
    assert.equal(await cli(['oauth-clients', 'list', '--data', data.path, '--json']), before);
  });

  it('removes a client by id', async () => {
    const [first] = JSON.parse(await cli(['oauth-clients', 'list', '--data', data.path, '--json'])) as Array<{ client_id: string }>;
    assert.match(await cli(['oauth-clients', 'remove', first!.client_id, '--data', data.path]), /removed; its grants and tokens are revoked/);
    const list = JSON.parse(await cli(['oauth-clients', 'list', '--data', data.path, '--json'])) as Array<{ client_id: string }>;
    assert.ok(!list.some((c) => c.client_id === first!.client_id));
  });
});
