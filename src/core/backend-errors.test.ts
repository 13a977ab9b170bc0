import { after, it } from 'node:test';
import assert from 'node:assert/strict';
import { openStoreBackend } from '../backends.js';
import { privatePostgres } from '../../test/support/services.js';
import { backendUnavailable } from './backend-errors.js';

it('a store whose PostgreSQL went away fails with CR_ERR_BACKEND_UNAVAILABLE, and works again when it is back', async () => {
  const pg = await privatePostgres();
  const backend = await openStoreBackend({ data: '/nonexistent', store: pg.url });
  after(async () => {
    await backend.close().catch(() => undefined);
    await pg.stop();
  });
  assert.equal(await backend.store.getUserById('u_nobody'), undefined);
  await pg.stop();
  const failure = await backend.store.getUserById('u_nobody').then(() => undefined, (err: unknown) => err);
  assert.ok(failure, 'the query failed');
  const mapped = backendUnavailable(failure);
  assert.equal(mapped?.code, 'CR_ERR_BACKEND_UNAVAILABLE', String(failure));
  assert.equal(mapped?.status, 503);
  await pg.start();
  assert.equal(await backend.store.getUserById('u_nobody'), undefined);
});

it('leaves other errors alone', () => {
  assert.equal(backendUnavailable(new Error('duplicate key value violates unique constraint')), undefined);
  assert.equal(backendUnavailable(new TypeError('x is not a function')), undefined);
});
