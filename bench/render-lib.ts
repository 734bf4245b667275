/** Cold rendering (no cache): the 300-parameter profile of the boot-storm benchmark, in this process. */
import { DEFAULT_SITE_DHCP, type Site } from '../src/domain/types.ts';
import type { RenderInput } from '../src/profiles/render.ts';
import { built } from './lib.ts';

// The compiled modules, as `npm start` runs them (not the tsx loader's translation).
const { ParamCatalogue } = await built<typeof import('../src/profiles/catalogue.ts')>('profiles/catalogue.js');
const { renderDevice } = await built<typeof import('../src/profiles/render.ts')>('profiles/render.js');

const mac = (i: number) => `0004f2${i.toString(16).padStart(6, '0')}`;

export function params300(): Record<string, string> {
  const p: Record<string, string> = {};
  for (let i = 1; i <= 12; i++) {
    p[`attendant.resourceList.${i}.address`] = `sip:${1000 + i}@pbx.example.com`;
    p[`attendant.resourceList.${i}.label`] = `Key ${i}`;
  }
  for (let i = 0; p && Object.keys(p).length < 300; i++) p[`custom.vendor.setting${i}`] = `value-${i}-{{tenant.slug}}`;
  p['lcl.ml.lang'] = 'English_United_Kingdom';
  p['up.backlight.idleIntensity'] = '1';
  return p;
}

/** Configs rendered per second in this process (cache off: every call renders). */
export function coldRender(n = 5000): number {
  const catalogue = ParamCatalogue.load();
  const tenant = { id: 't', name: 'Bench', slug: 'bench', provisioning: { key: 'k', username: 'u' }, settings: { allowBasicOverHttp: false, autoClaim: 'off' as const, tftp: true }, profileIds: ['p'], deletion: null, subscriptionEndsAt: null, createdAt: '', updatedAt: '' };
  const profile = { id: 'p', tenantId: 't', name: 'Big', description: '', params: params300(), createdAt: '', updatedAt: '' };
  const site: Site = { id: 's', tenantId: 't', name: 'HQ', description: '', location: '', timeZone: 'Europe/Berlin', subnets: ['10.0.0.0/8'], sip: { server: 'pbx.example.com', port: 5060 }, ntp: { server: 'ntp.example.com' }, dhcp: DEFAULT_SITE_DHCP, profileIds: [], deviceCount: 0, createdAt: '', updatedAt: '' };
  const input = (i: number): RenderInput => ({
    tenant,
    site,
    groups: [],
    device: { id: `d${i}`, tenantId: 't', mac: mac(i), model: 'VVX500', name: `P${i}`, siteId: 's', groupIds: [], labels: [], lines: [{ index: 1, address: String(i) }], params: {}, profileIds: [], state: 'active', lastSeen: null, credentials: null, renderError: null, createdAt: '', updatedAt: '' },
    profiles: new Map([['p', profile]]),
    server: { host: 'h', httpBase: 'http://h/', httpsBase: 'https://h/' },
  });
  for (let i = 0; i < 200; i++) renderDevice(input(i), catalogue);
  const t0 = performance.now();
  for (let i = 0; i < n; i++) renderDevice(input(i), catalogue);
  return Math.round(n / ((performance.now() - t0) / 1000));
}

