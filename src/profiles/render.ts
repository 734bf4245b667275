import { readFileSync } from 'node:fs';
import { XMLBuilder } from 'fast-xml-parser';
import type { Device, Group, Profile, Site, Tenant } from '../domain/types.ts';
import type { ParamCatalogue } from './catalogue.ts';
import { substitute, VariableError, type Vars } from './variables.ts';
import { CappedMap } from '../capped-map.ts';

/** Where a parameter's value came from, lowest first. */
export type LayerKind = 'defaults' | 'tenant' | 'site' | 'group' | 'device-profile' | 'device';

export interface Layer {
  kind: LayerKind;
  /** Human-readable origin: `profile "Base"`, `site "HQ" settings`, `device lines` … */
  source: string;
  params: Record<string, string>;
}

export interface ServerInfo {
  host: string;
  httpBase: string;
  httpsBase: string;
}

export interface RenderInput {
  tenant: Tenant;
  site: Site | null;
  groups: Group[];
  device: Device;
  /** Every profile the tenant, site, groups and device refer to, by id. */
  profiles: ReadonlyMap<string, Profile>;
  server: ServerInfo;
}

export interface ExplainEntry {
  name: string;
  value: string;
  layer: LayerKind;
  source: string;
  /** The file of the phone's CONFIG_FILES that carries it. */
  file: string;
  /** Lower layers this value beat, highest first. */
  overrides: Array<{ layer: LayerKind; source: string; value: string }>;
}

export interface RenderedFile {
  name: string;
  body: string;
  contentType: string;
}

export interface DeviceRender {
  files: RenderedFile[];
  explain: ExplainEntry[];
  warnings: string[];
}

export class RenderError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`render failed: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`);
    this.name = 'RenderError';
    this.problems = problems;
  }
}

const loadJson = (name: string): Record<string, string> => {
  const raw = JSON.parse(readFileSync(new URL(`../../templates/${name}`, import.meta.url), 'utf8')) as Record<string, string>;
  return Object.fromEntries(Object.entries(raw).filter(([k]) => !k.startsWith('$')));
};

/** The shipped templates: built-in defaults and the unclaimed-phone bootstrap. */
export const TEMPLATES = {
  defaults: loadJson('defaults.json'),
  bootstrap: loadJson('bootstrap.json'),
};

export const DEFAULTS_FILE = 'defaults.cfg';
export const BOOTSTRAP_FILE = 'bootstrap.cfg';
export const deviceFileName = (mac: string): string => `${mac}-device.cfg`;

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', format: true, suppressEmptyNode: true });
const DECLARATION = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n';

/**
 * Characters XML 1.0 cannot carry at all, even as character references: C0 controls other than
 * tab, line feed and carriage return, lone surrogates, U+FFFE and U+FFFF.
 */
const NOT_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const NOT_XML_ALL = new RegExp(NOT_XML.source, 'g');
const ATTR_SPECIAL = /[&<>"'\t\n\r]/g;
/** Any character that is escaped or refused: one quick test clears most values. */
const MAY_NEED_ESCAPE = /[\u0000-\u001F&<>"'\uD800-\uDFFF\uFFFE\uFFFF]/;
const ATTR_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;', '\t': '&#9;', '\n': '&#10;', '\r': '&#13;' };

/** Why `value` cannot be written into an XML attribute, if it cannot. */
export function notXmlText(value: string): string | undefined {
  const m = NOT_XML.exec(value);
  return m ? `contains U+${(m[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0')}, which XML cannot carry` : undefined;
}

/**
 * An attribute value, escaped: markup characters as entities, and tab, line feed and carriage
 * return as character references (a parser would otherwise turn them into spaces). Throws on a
 * character XML cannot carry; renders check values with {@link notXmlText} first.
 */
export function xmlAttr(value: string): string {
  if (!MAY_NEED_ESCAPE.test(value)) return value;
  if (NOT_XML.test(value)) throw new Error(`attribute value ${notXmlText(value)}`);
  return value.replace(ATTR_SPECIAL, (c) => ATTR_ESCAPES[c] as string);
}

/**
 * A `<polycomConfig>` file: every parameter an attribute, sorted by name, every value escaped.
 * Written directly rather than through fast-xml-parser's builder: it is one element with flat
 * attributes, the builder alone managed fewer than the 5,000 device files a second a cold render
 * must reach, and tests parse every file back with fast-xml-parser to prove the escaping.
 */
export function polycomXml(params: Record<string, string>, comment?: string): string {
  let out = DECLARATION;
  if (comment) out += `<!-- ${comment.replace(NOT_XML_ALL, '?').replace(/--/g, '- -').replace(/-$/, '- ')} -->\n`;
  out += '<polycomConfig';
  for (const k of Object.keys(params).sort()) {
    if (!PARAM_NAME.test(k)) throw new Error(`"${k.slice(0, 200)}" is not a parameter name`);
    out += `\n  ${k}="${xmlAttr(params[k] as string)}"`;
  }
  return `${out}/>\n`;
}
const PARAM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export interface MasterInput {
  configFiles: string[];
  appFilePath?: string;
  /** Per-model overrides: `APPLICATION_<MODEL>` children with `<ATTR>_<MODEL>` attributes. */
  models?: Record<string, { appFilePath?: string; configFiles?: string[] }>;
  directories: { log: string; overrides: string; contacts: string; license: string; userProfiles: string; callLists: string };
}

/** The master config file (`<mac>.cfg` / `000000000000.cfg`). */
export function masterXml(m: MasterInput): string {
  const children: Record<string, unknown> = {};
  for (const [model, o] of Object.entries(m.models ?? {})) {
    const key = model.replace(/[^A-Za-z0-9]/g, '').toUpperCase();
    children[`APPLICATION_${key}`] = {
      ...(o.appFilePath !== undefined && { [`@_APP_FILE_PATH_${key}`]: o.appFilePath }),
      ...(o.configFiles !== undefined && { [`@_CONFIG_FILES_${key}`]: o.configFiles.join(', ') }),
    };
  }
  const app = {
    '@_APP_FILE_PATH': m.appFilePath ?? '',
    '@_CONFIG_FILES': m.configFiles.join(', '),
    '@_MISC_FILES': '',
    '@_LOG_FILE_DIRECTORY': m.directories.log,
    '@_OVERRIDES_DIRECTORY': m.directories.overrides,
    '@_CONTACTS_DIRECTORY': m.directories.contacts,
    '@_LICENSE_DIRECTORY': m.directories.license,
    '@_USER_PROFILES_DIRECTORY': m.directories.userProfiles,
    '@_CALL_LISTS_DIRECTORY': m.directories.callLists,
    ...children,
  };
  return DECLARATION + (builder.build({ APPLICATION: app }) as string);
}

/** Offsets of a time zone from UTC in seconds in January and July (they differ where DST applies). */
export function zoneOffsets(timeZone: string, year = 2026): { standard: number; hasDst: boolean } {
  const key = `${timeZone}/${year}`;
  let z = ZONES.get(key);
  if (!z) {
    z = computeZoneOffsets(timeZone, year);
    ZONES.set(key, z);
  }
  return z;
}
/** Formatting a date in a zone costs tens of microseconds; a site's zone is asked for on every render. */
const ZONES = new CappedMap<string, { standard: number; hasDst: boolean }>(1000);

function computeZoneOffsets(timeZone: string, year: number): { standard: number; hasDst: boolean } {
  const offsetAt = (month: number): number => {
    const d = new Date(Date.UTC(year, month, 1, 12));
    const parts = new Intl.DateTimeFormat('en-US', { timeZone, timeZoneName: 'longOffset' }).formatToParts(d);
    const name = parts.find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
    const m = name.match(/GMT([+-])(\d{2}):(\d{2})/);
    return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 3600 + Number(m[3]) * 60) : 0;
  };
  const jan = offsetAt(0);
  const jul = offsetAt(6);
  return { standard: Math.min(jan, jul), hasDst: jan !== jul };
}

function siteParams(site: Site): Record<string, string> {
  const p: Record<string, string> = {};
  if (site.sip.server) p['voIpProt.server.1.address'] = site.sip.server;
  if (site.sip.port) p['voIpProt.server.1.port'] = String(site.sip.port);
  if (site.sip.transport) p['voIpProt.server.1.transport'] = site.sip.transport;
  if (site.sip.outboundProxy) p['voIpProt.SIP.outboundProxy.address'] = site.sip.outboundProxy;
  if (site.ntp.server) p['tcpIpApp.sntp.address'] = site.ntp.server;
  const zone = zoneOffsets(site.timeZone);
  p['tcpIpApp.sntp.gmtOffset'] = String(zone.standard);
  p['tcpIpApp.sntp.daylightSavings.enable'] = zone.hasDst ? '1' : '0';
  return p;
}

function lineParams(device: Device): Record<string, string> {
  const p: Record<string, string> = {};
  for (const l of device.lines) {
    const r = `reg.${l.index}`;
    p[`${r}.address`] = l.address;
    if (l.label !== undefined) p[`${r}.label`] = l.label;
    if (l.displayName !== undefined) p[`${r}.displayName`] = l.displayName;
    p[`${r}.auth.userId`] = l.authUserId ?? l.address;
    if (l.authPassword !== undefined) p[`${r}.auth.password`] = l.authPassword;
    if (l.server !== undefined) p[`${r}.server.1.address`] = l.server;
    if (l.port !== undefined) p[`${r}.server.1.port`] = String(l.port);
    if (l.transport !== undefined) p[`${r}.server.1.transport`] = l.transport;
  }
  return p;
}

/** The variables shared by a tenant's phones: the only ones the shared defaults may use. */
function sharedVariables(tenant: Tenant, server: ServerInfo): Array<[string, string | undefined]> {
  return [
    ['tenant.name', tenant.name],
    ['tenant.slug', tenant.slug],
    ['server.host', server.host],
    ['server.httpBase', server.httpBase],
    ['server.httpsBase', server.httpsBase],
  ];
}

/** Every variable a template may use, with its value (undefined: known but not set). */
export function variablesFor(input: RenderInput): Map<string, string | undefined> {
  const { tenant, site, device, server } = input;
  const v = new Map<string, string | undefined>([
    ...sharedVariables(tenant, server),
    ['device.mac', device.mac],
    ['device.name', device.name],
    ['device.model', device.model ?? undefined],
    ['device.id', device.id],
    ['site.name', site?.name],
    ['site.location', site?.location],
    ['site.timeZone', site?.timeZone],
    ['site.sip.server', site?.sip.server],
    ['site.sip.port', site?.sip.port?.toString()],
    ['site.sip.transport', site?.sip.transport],
    ['site.sip.outboundProxy', site?.sip.outboundProxy],
    ['site.ntp.server', site?.ntp.server],
  ]);
  for (const l of device.lines) {
    v.set(`line.${l.index}.address`, l.address);
    v.set(`line.${l.index}.displayName`, l.displayName);
    v.set(`line.${l.index}.label`, l.label ?? l.address);
    v.set(`line.${l.index}.authUserId`, l.authUserId ?? l.address);
  }
  return v;
}

/** The layers of one device, lowest first. */
export function layersFor(input: RenderInput): Layer[] {
  const { tenant, site, groups, device, profiles } = input;
  const layers: Layer[] = [{ kind: 'defaults', source: 'built-in defaults', params: TEMPLATES.defaults }];
  const profileLayers = (kind: LayerKind, ids: string[], owner: string) => {
    for (const id of ids) {
      const p = profiles.get(id);
      if (p) layers.push({ kind, source: `profile "${p.name}" (${owner})`, params: p.params });
    }
  };
  profileLayers('tenant', tenant.profileIds, `tenant "${tenant.name}"`);
  if (site) {
    layers.push({ kind: 'site', source: `site "${site.name}" settings`, params: siteParams(site) });
    profileLayers('site', site.profileIds, `site "${site.name}"`);
  }
  for (const g of [...groups].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) profileLayers('group', g.profileIds, `group "${g.name}"`);
  profileLayers('device-profile', device.profileIds, 'device');
  if (device.lines.length) layers.push({ kind: 'device', source: 'device lines', params: lineParams(device) });
  if (Object.keys(device.params).length) layers.push({ kind: 'device', source: 'device parameters', params: device.params });
  return layers;
}

/**
 * Renders the files one device receives besides its master file: its own `<mac>-device.cfg` with
 * every layer above the defaults, and the shared `defaults.cfg`. Throws {@link RenderError} listing
 * every problem; a partial file is never produced.
 */
export function renderDevice(input: RenderInput, catalogue: ParamCatalogue): DeviceRender {
  const vars: Vars = variablesFor(input);
  const problems: string[] = [];
  const deviceFile = deviceFileName(input.device.mac);
  const shared = sharedVars(vars);

  // Every layer's names sorted once, merged: the result comes out sorted, each name with its
  // winning value and the chain of values it beat (turned into `overrides` when asked).
  const layers = layersFor(input);
  const lists = layers.map((l) => entriesOf(l.params));
  const badNames = lists.some((l) => l.badNames);
  const at = lists.map(() => 0);
  const names: string[] = [];
  const wins: Win[] = [];
  for (;;) {
    let min: string | undefined;
    for (let j = 0; j < lists.length; j++) {
      const n = (lists[j] as Entries).names[at[j] as number];
      if (n !== undefined && (min === undefined || n < min)) min = n;
    }
    if (min === undefined) break;
    let win: Win | undefined;
    for (let j = 0; j < lists.length; j++) {
      const list = lists[j] as Entries;
      const i = at[j] as number;
      if (list.names[i] !== min) continue;
      at[j] = i + 1;
      const layer = layers[j] as Layer;
      const raw = list.values[i] as string;
      const kind = list.kinds[i] as number;
      let value = raw;
      let odd = kind === ODD;
      if (kind === TEMPLATE) {
        try {
          value = substitute(raw, layer.kind === 'defaults' ? shared : vars, where(min, layer));
        } catch (err) {
          if (err instanceof VariableError) problems.push(...err.problems);
          else throw err;
          continue;
        }
        odd = MAY_NEED_ESCAPE.test(value);
      }
      win = { value, odd, layer, prev: win };
    }
    if (win) {
      names.push(min);
      wins.push(win);
    }
  }

  const unknown: number[] = [];
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    const w = wins[i] as Win;
    if (badNames && !PARAM_NAME.test(name)) {
      problems.push(`"${name.slice(0, 200)}" (${w.layer.source}) is not a parameter name`);
      continue;
    }
    const unfit = w.odd ? notXmlText(w.value) : undefined;
    if (unfit) {
      problems.push(`${name} (${w.layer.source}): ${unfit}`);
      continue;
    }
    const check = catalogue.check(name, w.value);
    if (check.kind === 'invalid') problems.push(`${name} (${w.layer.source}): ${check.message}`);
    else if (check.kind === 'unknown') unknown.push(i);
  }
  if (problems.length) throw new RenderError(problems);

  // Names and values are checked above: written without a second pass of checks.
  let xml = `${DECLARATION}<!-- edgeprov: ${input.device.mac} -->\n<polycomConfig`;
  for (let i = 0; i < names.length; i++) {
    const w = wins[i] as Win;
    if (w.layer.kind !== 'defaults') xml += `\n  ${names[i] as string}="${w.odd ? xmlAttr(w.value) : w.value}"`;
  }
  xml += '/>\n';
  const defaults = renderDefaults(input.tenant, input.server);
  const files = [
    { name: deviceFile, body: xml, contentType: 'application/xml' },
    { name: DEFAULTS_FILE, body: defaults, contentType: 'application/xml' },
  ];
  return withExplanations(files, names, wins, unknown, deviceFile);
}

interface Entries {
  /** Sorted. */
  names: string[];
  values: string[];
  /** Per value: {@link PLAIN}, {@link ODD} or {@link TEMPLATE}. */
  kinds: Uint8Array;
  /** Some name is not a parameter name (the render then says which). */
  badNames: boolean;
}
/** A value written as it is. */
const PLAIN = 0;
/** A value with a character to escape or refuse. */
const ODD = 1;
/** A value with variables, looked at again once they are substituted. */
const TEMPLATE = 2;

/**
 * A layer's parameters as sorted arrays, with what each value needs: profile objects hold hundreds
 * of names, and walking such an object is several times slower than walking an array, and looking
 * at each value again on every render slower still. Kept per object, which layers never change.
 */
function entriesOf(params: Record<string, string>): Entries {
  let e = ENTRIES.get(params);
  if (!e) {
    const names = Object.keys(params).sort();
    const values = names.map((n) => params[n] as string);
    const kinds = Uint8Array.from(values, (v) => (v.includes('{{') ? TEMPLATE : MAY_NEED_ESCAPE.test(v) ? ODD : PLAIN));
    e = { names, values, kinds, badNames: names.some((n) => !PARAM_NAME.test(n)) };
    ENTRIES.set(params, e);
  }
  return e;
}
const ENTRIES = new WeakMap<Record<string, string>, Entries>();

const where = (name: string, layer: Layer) => (): string => `${name} (${layer.source})`;

interface Win {
  value: string;
  /** The value has a character to escape or refuse. */
  odd: boolean;
  layer: Layer;
  /** The value this one beat. */
  prev: Win | undefined;
}

/** Explanations and warnings are for the admin API: built when asked for, so a phone's render does not pay for them. */
function withExplanations(files: RenderedFile[], names: string[], wins: Win[], unknown: number[], deviceFile: string): DeviceRender {
  let explain: ExplainEntry[] | undefined;
  let warnings: string[] | undefined;
  return {
    files,
    get explain() {
      return (explain ??= names.map((name, i) => {
        const w = wins[i] as Win;
        const overrides: ExplainEntry['overrides'] = [];
        for (let p = w.prev; p; p = p.prev) overrides.push({ layer: p.layer.kind, source: p.layer.source, value: p.value });
        return { name, value: w.value, layer: w.layer.kind, source: w.layer.source, file: w.layer.kind === 'defaults' ? DEFAULTS_FILE : deviceFile, overrides };
      }));
    },
    get warnings() {
      return (warnings ??= unknown.map((i) => `${names[i] as string} (${(wins[i] as Win).layer.source}): not a parameter edgeprov knows; passed through unchecked`));
    },
  };
}

const SHARED_PREFIXES = ['tenant.', 'server.'];
function sharedVars(vars: Vars): Vars {
  return new Map([...vars].filter(([k]) => SHARED_PREFIXES.some((p) => k.startsWith(p))));
}

/** The shared `defaults.cfg`: built-in defaults, with only tenant and server variables. */
export function renderDefaults(tenant: Tenant, server: ServerInfo): string {
  const key = JSON.stringify(sharedVariables(tenant, server));
  let xml = DEFAULTS.get(key);
  if (xml === undefined) {
    xml = buildDefaults(tenant, server);
    DEFAULTS.set(key, xml);
  }
  return xml;
}
/** Rendered defaults by the shared variables they depend on (every device render includes them). */
const DEFAULTS = new CappedMap<string, string>(10_000);

function buildDefaults(tenant: Tenant, server: ServerInfo): string {
  const vars = new Map(sharedVariables(tenant, server));
  const params = Object.fromEntries(Object.entries(TEMPLATES.defaults).map(([k, v]) => [k, substitute(v, vars, `${k} (built-in defaults)`)]));
  return polycomXml(params, 'edgeprov: built-in defaults');
}

/** The file an unclaimed phone gets through `000000000000.cfg`: no lines, polling on. */
export function renderBootstrap(): string {
  return polycomXml(TEMPLATES.bootstrap, 'edgeprov: bootstrap for unclaimed phones');
}
