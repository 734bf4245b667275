import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PhoneClient } from '../../src/sim/phone.ts';
import { bootstrapAdmin, startServer } from '../helpers/app.ts';

const s = await startServer({ 'provisioning-default-tenant': 'solo' });
const admin = await bootstrapAdmin(s);
const tenant = (await s.call('POST', '/api/v1/tenants', { token: admin, body: { name: 'Solo', slug: 'solo' } })).body;
await s.call('POST', `/api/v1/tenants/${tenant.id}/devices`, { token: admin, body: { mac: '0004f2515151', lines: [{ index: 1, address: '51' }] } });
const prov = (await s.call('GET', `/api/v1/tenants/${tenant.id}/provisioning`, { token: admin })).body;

test.after(async () => {
  await s.stop();
});

test('single-tenant mode serves the default tenant at / as well as under /p/<key>/', async () => {
  const root = new PhoneClient({ base: `${s.base}/`, mac: '0004f2515151', username: prov.username, password: prov.password });
  const r = await root.fetch('GET', '0004f2515151.cfg');
  assert.is(r.status, 200);
  const keyed = new PhoneClient({ base: prov.httpBase, mac: '0004f2515151', username: prov.username, password: prov.password });
  assert.equal((await keyed.fetch('GET', '0004f2515151.cfg')).body, r.body);
  // The admin side keeps its paths.
  assert.is((await s.call('GET', '/healthz')).status, 200);
  assert.is((await s.call('GET', '/api/v1/nothing')).body.error.code, 'not_found');
});

test.run();
