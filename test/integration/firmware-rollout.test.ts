import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ManualClock } from '../../src/clock.ts';
import { PhoneClient } from '../../src/sim/phone.ts';
import { ADMIN, bootstrapAdmin, startServer } from '../helpers/app.ts';

/**
 * A staged rollout moving simulated VVX 501s from version A to B: canary group first, only inside
 * a 02:00–04:00 Europe/Berlin window, then everyone; pause, resume, complete, abort; progress per
 * model in the API. The clock is injected; phones report what they run in their User-Agent.
 */
const clock = new ManualClock('2026-06-01T10:00:00Z'); // 12:00 in Berlin: outside the window
const s = await startServer({ 'public-hosts': '127.0.0.1' }, { clock });
let admin = await bootstrapAdmin(s);
const api = async (method: string, path: string, body?: unknown) => {
  let r = await s.call(method, `/api/v1${path}`, { token: admin, ...(body !== undefined && { body }) });
  if (r.status === 401) {
    admin = (await s.call('POST', '/api/v1/auth/token', { body: ADMIN })).body.token;
    r = await s.call(method, `/api/v1${path}`, { token: admin, ...(body !== undefined && { body }) });
  }
  return r;
};
const must = async (method: string, path: string, body?: unknown) => {
  const r = await api(method, path, body);
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};

test.after(async () => {
  await s.stop();
});

const A = '6.4.1.1000';
const B = '6.4.3.5018';
for (const v of [A, B]) {
  const r = await fetch(`${s.base}/api/v1/firmware/${v}/images/3111-48500-001.sip.ld`, { method: 'PUT', headers: { authorization: `Bearer ${admin}` }, body: randomBytes(4096) });
  assert.is(r.status, 201);
}
const tenant = await must('POST', '/tenants', { name: 'Rollout Co' });
const T = `/tenants/${tenant.id}`;
const canary = await must('POST', `${T}/groups`, { name: 'Canary' });
const prov = await must('GET', `${T}/provisioning`);
const MACS = ['0004f2000a01', '0004f2000a02', '0004f2000a03', '0004f2000a04'];
for (const [i, mac] of MACS.entries()) await must('POST', `${T}/devices`, { mac, model: 'VVX501', groupIds: i === 0 ? [canary.id] : [] });
await must('PUT', `${T}/firmware/assignments`, { targetKind: 'tenant', version: A });

/** The version a phone is pointed at when it asks for its master file running `running`. */
async function pointed(mac: string, running: string): Promise<string | undefined> {
  const p = new PhoneClient({ base: prov.httpBase, mac, username: prov.username, password: prov.password, model: 'VVX501', firmware: running });
  const r = await p.fetch('GET', `${mac}.cfg`);
  assert.is(r.status, 200);
  return /APP_FILE_PATH="fw\/([^/]+)\/sip\.ld"/.exec(r.body.toString())?.[1];
}
const running = new Map(MACS.map((m) => [m, A]));
const all = async () => Promise.all(MACS.map((m) => pointed(m, running.get(m) as string)));
async function progress(id: string) {
  await s.app.tree.flushSeen();
  const r = await must('GET', `${T}/firmware/rollouts/${id}`);
  return { state: r.rollout.state, inWindow: r.inWindow, ...r.progress[0] };
}
let rollout: { id: string };

test('a rollout waits for its window; inside it the canary group moves first', async () => {
  rollout = await must('POST', `${T}/firmware/rollouts`, {
    version: B,
    model: 'VVX501',
    target: { kind: 'tenant' },
    canary: { groupId: canary.id },
    window: { start: '02:00', end: '04:00', timeZone: 'Europe/Berlin' },
  });
  assert.equal(await all(), [A, A, A, A], 'outside the window nobody moves');
  assert.equal(await progress(rollout.id), { state: 'canary', inWindow: false, model: 'VVX501', devices: 4, onTarget: 0, pointed: 0 });

  clock.set('2026-06-02T00:30:00Z'); // 02:30 in Berlin (CEST)
  assert.equal(await all(), [B, A, A, A], 'the canary group first');
  running.set(MACS[0] as string, B); // the canary phone installed B and reports it
  assert.equal(await all(), [B, A, A, A]);
  assert.equal(await progress(rollout.id), { state: 'canary', inWindow: true, model: 'VVX501', devices: 4, onTarget: 1, pointed: 1 });
});

test('promoted, everyone moves inside the window; outside it each phone stays on what it runs', async () => {
  assert.is((await must('POST', `${T}/firmware/rollouts/${rollout.id}/promote`)).state, 'all');
  assert.equal(await all(), [B, B, B, B]);
  running.set(MACS[1] as string, B);
  clock.set('2026-06-02T10:00:00Z'); // noon: window closed
  assert.equal(await all(), [B, B, A, A], 'upgraded phones are not sent back; the others wait');
  assert.equal(await progress(rollout.id), { state: 'all', inWindow: false, model: 'VVX501', devices: 4, onTarget: 2, pointed: 2 });
});

test('pause holds the rest back even inside the window; resume carries on', async () => {
  clock.set('2026-06-03T00:15:00Z'); // 02:15 in Berlin
  assert.is((await must('POST', `${T}/firmware/rollouts/${rollout.id}/pause`)).state, 'paused');
  assert.equal(await all(), [B, B, A, A]);
  assert.is((await api('POST', `${T}/firmware/rollouts/${rollout.id}/promote`)).status, 409, 'a paused rollout is not promoted');
  assert.is((await must('POST', `${T}/firmware/rollouts/${rollout.id}/resume`)).state, 'all');
  assert.equal(await all(), [B, B, B, B]);
  running.set(MACS[2] as string, B);
  running.set(MACS[3] as string, B);
  assert.equal(await all(), [B, B, B, B]);
  assert.equal((await progress(rollout.id)).onTarget, 4);
});

test('complete makes the version the assignment; abort points everyone back at it', async () => {
  assert.is((await must('POST', `${T}/firmware/rollouts/${rollout.id}/complete`)).state, 'done');
  const asg = (await must('GET', `${T}/firmware/assignments`)).items;
  assert.ok(asg.some((a: { targetKind: string; version: string; model: string | null }) => a.targetKind === 'tenant' && a.version === B && a.model === 'VVX501'));
  clock.set('2026-06-03T12:00:00Z');
  assert.equal(await all(), [B, B, B, B], 'done: the window no longer matters');

  // A rollout back to A without window or canary moves everyone at once; abort undoes it.
  const back = await must('POST', `${T}/firmware/rollouts`, { version: A, target: { kind: 'tenant' } });
  assert.equal(await all(), [A, A, A, A]);
  assert.is((await must('POST', `${T}/firmware/rollouts/${back.id}/abort`)).state, 'aborted');
  assert.equal(await all(), [B, B, B, B]);
});

test('bad rollouts are refused with a reason, and nothing starts', async () => {
  const before = (await must('GET', `${T}/firmware/rollouts`)).items.length;
  const cases: Array<[unknown, number, RegExp]> = [
    [{ version: '9.9.9', target: { kind: 'tenant' } }, 400, /no firmware version/],
    [{ version: B, model: 'VVX300', target: { kind: 'tenant' } }, 400, /no image for VVX300/],
    [{ version: B, target: { kind: 'site', id: 'nope' } }, 400, /no site/],
    [{ version: B, target: { kind: 'tenant' }, canary: { percent: 0 } }, 400, /percent/],
    [{ version: B, target: { kind: 'tenant' }, window: { start: '25:00', end: '04:00', timeZone: 'Europe/Berlin' } }, 400, /HH:MM/],
    [{ version: B, target: { kind: 'tenant' }, window: { start: '02:00', end: '04:00', timeZone: 'Mars/Olympus' } }, 400, /time zone/],
    [{ version: B, target: { kind: 'tenant' }, extra: 1 }, 400, /extra/],
  ];
  for (const [body, status, why] of cases) {
    const r = await api('POST', `${T}/firmware/rollouts`, body);
    assert.is(r.status, status, JSON.stringify(body));
    assert.match(JSON.stringify(r.body), why);
  }
  await must('POST', `${T}/firmware/rollouts`, { version: A, target: { kind: 'tenant' }, canary: { percent: 50 } });
  const clash = await api('POST', `${T}/firmware/rollouts`, { version: B, target: { kind: 'tenant' } });
  assert.is(clash.status, 409);
  assert.is((await must('GET', `${T}/firmware/rollouts`)).items.length, before + 1);
});

test.run();
