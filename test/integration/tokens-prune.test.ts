import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bootstrapAdmin, startServer } from '../helpers/app.ts';

test('expired sign-in tokens are pruned; live ones and API tokens stay', async () => {
  const s = await startServer({ 'api-session-ttl-seconds': '60' });
  try {
    const token = await bootstrapAdmin(s);
    const t = (await s.call('POST', '/api/v1/tenants', { token, body: { name: 'Prune' } })).body;
    const api = (await s.call('POST', `/api/v1/tenants/${t.id}/tokens`, { token, body: { name: 'keep' } })).body;
    assert.is(await s.app.store.tokens.prune(new Date().toISOString()), 0, 'nothing has expired yet');
    const later = new Date(Date.now() + 3600_000).toISOString();
    assert.is(await s.app.store.tokens.prune(later), 1, 'the one-minute session is gone an hour later');
    assert.is((await s.call('GET', '/api/v1/me', { token })).status, 401);
    assert.is((await s.call('GET', `/api/v1/tenants/${t.id}/devices`, { token: api.token })).status, 200, 'API tokens are not sessions');
  } finally {
    await s.stop();
  }
});

test.run();
