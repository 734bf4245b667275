import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ParamCatalogue } from '../../src/profiles/catalogue.ts';
import { RenderError, polycomXml, renderDevice, zoneOffsets, type RenderInput } from '../../src/profiles/render.ts';
import { substitute, VariableError } from '../../src/profiles/variables.ts';
import type { Device, Tenant } from '../../src/domain/types.ts';

const catalogue = ParamCatalogue.load();
const tenant: Tenant = { id: 't', name: 'Acme', slug: 'acme', provisioning: { key: 'k', username: 'u' }, settings: { allowBasicOverHttp: false, autoClaim: 'off', tftp: true }, profileIds: ['p1'], deletion: null, subscriptionEndsAt: null, createdAt: '', updatedAt: '' };
const device: Device = { id: 'd', tenantId: 't', mac: '0004f2abcdef', model: 'VVX500', name: 'Desk', siteId: null, groupIds: [], labels: [], lines: [{ index: 1, address: '1001', authPassword: 'x"y' }], params: {}, profileIds: [], state: 'active', lastSeen: null, credentials: null, renderError: null, createdAt: '', updatedAt: '' };
const input = (over: Partial<RenderInput> = {}): RenderInput => ({
  tenant,
  site: null,
  groups: [],
  device,
  profiles: new Map([['p1', { id: 'p1', tenantId: 't', name: 'P', description: '', params: { 'lcl.ml.lang': '{{tenant.name}}' }, createdAt: '', updatedAt: '' }]]),
  server: { host: 'h', httpBase: 'http://h/p/k/', httpsBase: 'https://h/p/k/' },
  ...over,
});

test('values are escaped: markup as entities, tab and line breaks as character references', () => {
  const xml = polycomXml({ 'a.b': `<&>"'`, 'c.d': 'one\ttwo\nthree\r' });
  assert.match(xml, /a\.b="&lt;&amp;&gt;&quot;&apos;"/);
  assert.match(xml, /c\.d="one&#9;two&#10;three&#13;"/);
});

test('every value survives the trip through a real XML parser unchanged (10,000 random values)', () => {
  const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '', htmlEntities: true, parseAttributeValue: false, trimValues: false });
  // Printable ASCII, the markup characters, whitespace, and code points from every plane.
  const alphabet = [...`<>&"' \t\n\r=/;#x`, 'a', 'Z', '0', 'é', '€', '中', '😀', '\u00a0', '\u2028', '\ufeff'];
  let seed = 7;
  const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) % n);
  for (let round = 0; round < 100; round++) {
    const params: Record<string, string> = {};
    for (let i = 0; i < 100; i++) {
      let v = '';
      for (let n = rnd(12); n > 0; n--) v += alphabet[rnd(alphabet.length)];
      params[`p.${round}.${i}`] = v;
    }
    const xml = polycomXml(params);
    assert.is(XMLValidator.validate(xml), true);
    const back = parser.parse(xml).polycomConfig as Record<string, string>;
    for (const [k, v] of Object.entries(params)) assert.is(String(back[k] ?? ''), v, k);
  }
});

test('a value XML cannot carry fails the render with its name; never a broken file', () => {
  try {
    renderDevice(input({ device: { ...device, params: { 'my.param': 'a\u0001b' } } }), catalogue);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, RenderError);
    assert.match((err as RenderError).problems[0] ?? '', /my\.param .*U\+0001/);
  }
  assert.throws(() => polycomXml({ 'a.b': '\ud800' }), /U\+D800/);
  // A comment (a profile's name) cannot break the file either.
  assert.is(XMLValidator.validate(polycomXml({ 'a.b': 'x' }, 'Bell \u0007 -- name -')), true);
  assert.throws(() => polycomXml({ 'a b': 'x' }), /not a parameter name/);
});

test('strict variables: unknown or empty fail with the names', () => {
  const vars = new Map<string, string | undefined>([['a.b', 'x'], ['a.empty', undefined]]);
  assert.is(substitute('{{ a.b }}-{{a.b}}', vars, 'w'), 'x-x');
  try {
    substitute('{{a.c}} {{a.empty}} {{', vars, 'w');
    assert.unreachable();
  } catch (err) {
    assert.instance(err, VariableError);
    assert.is((err as VariableError).problems.length, 3);
  }
});

test('a template split once still substitutes each caller\'s values, and checks what they bring', () => {
  const a = new Map<string, string | undefined>([['x', 'one'], ['y', 'two']]);
  const b = new Map<string, string | undefined>([['x', 'uno'], ['y', 'dos']]);
  const t = 'pre {{x}} mid {{ y }} post';
  assert.is(substitute(t, a, 'w'), 'pre one mid two post');
  assert.is(substitute(t, b, 'w'), 'pre uno mid dos post');
  assert.is(substitute(t, a, 'w'), 'pre one mid two post');
  // A value that brings braces of its own leaves a hole the phone would see: refused.
  assert.throws(() => substitute(t, new Map([['x', '{{y}}'], ['y', 'two']]), 'w'), /unbalanced/);
  assert.throws(() => substitute('a{{{x}}', new Map([['x', '{b']]), 'w'), /unbalanced/);
  // Long values are not kept, and substitute the same.
  const long = `${'z'.repeat(2000)}{{x}}`;
  assert.is(substitute(long, a, 'w'), `${'z'.repeat(2000)}one`);
  assert.is(substitute(long, b, 'w'), `${'z'.repeat(2000)}uno`);
});

test('a substituted value is escaped or refused by what it became, not by its template', () => {
  const profiles = new Map([['p1', { id: 'p1', tenantId: 't', name: 'P', description: '', params: { 'lcl.ml.lang': '{{device.name}}', 'my.label': 'plain {{device.name}}' }, createdAt: '', updatedAt: '' }]]);
  const amp = renderDevice(input({ profiles, device: { ...device, name: 'R&D <1>' } }), catalogue);
  assert.match(amp.files[0]!.body, /my\.label="plain R&amp;D &lt;1&gt;"/);
  assert.is(XMLValidator.validate(amp.files[0]!.body), true);
  try {
    renderDevice(input({ profiles, device: { ...device, name: 'bell\u0007' } }), catalogue);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, RenderError);
    assert.match((err as RenderError).problems.join('\n'), /my\.label .*U\+0007/);
  }
  // The same profile object, rendered for a plain name again: nothing of the last render stays.
  const plain = renderDevice(input({ profiles }), catalogue);
  assert.match(plain.files[0]!.body, /my\.label="plain Desk"/);
});

test('a name that is not a parameter name fails the render, in whichever layer it is', () => {
  const profiles = new Map([['p1', { id: 'p1', tenantId: 't', name: 'P', description: '', params: { 'ok.name': '1', 'bad name': '1' }, createdAt: '', updatedAt: '' }]]);
  try {
    renderDevice(input({ profiles }), catalogue);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, RenderError);
    assert.match((err as RenderError).problems[0] ?? '', /"bad name" \(profile "P"/);
  }
});

test('a device render: lines become reg.N, variables resolve, defaults go to the shared file', () => {
  const r = renderDevice(input(), catalogue);
  const dev = r.files[0]!.body;
  assert.match(dev, /reg\.1\.address="1001"/);
  assert.match(dev, /reg\.1\.auth\.password="x&quot;y"/);
  assert.match(dev, /lcl\.ml\.lang="Acme"/);
  assert.not.match(dev, /prov\.polling/);
  assert.match(r.files[1]!.body, /prov\.polling\.mode="random"/);
});

test('invalid known values fail; unknown names warn', () => {
  const bad = input({ device: { ...device, params: { 'prov.polling.mode': 'often', 'reg.1.server.1.port': '0x10', 'my.param': '1' } } });
  try {
    renderDevice(bad, catalogue);
    assert.unreachable();
  } catch (err) {
    assert.instance(err, RenderError);
    assert.is((err as RenderError).problems.length, 2);
  }
  const warn = renderDevice(input({ device: { ...device, params: { 'my.param': '1' } } }), catalogue);
  assert.is(warn.warnings.length, 1);
});

test('catalogue rules', () => {
  assert.equal(catalogue.check('reg.12.server.2.transport', 'TLS'), { kind: 'ok' });
  assert.is(catalogue.check('reg.1.server.1.transport', 'SCTP').kind, 'invalid');
  assert.is(catalogue.check('prov.polling.period', '3599').kind, 'invalid');
  assert.is(catalogue.check('prov.polling.time', '24:00').kind, 'invalid');
  assert.is(catalogue.check('tcpIpApp.sntp.address', 'bad host!').kind, 'invalid');
  assert.is(catalogue.check('nothing.known', 'x').kind, 'unknown');
});

test('time zone offsets', () => {
  assert.equal(zoneOffsets('Europe/Berlin'), { standard: 3600, hasDst: true });
  assert.equal(zoneOffsets('Asia/Kolkata'), { standard: 19800, hasDst: false });
  assert.equal(zoneOffsets('America/New_York'), { standard: -18000, hasDst: true });
});

test.run();
