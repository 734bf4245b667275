import { parse } from 'csv-parse/sync';
import { stringify } from 'csv-stringify/sync';
import { AppError, invalid } from '../errors.ts';
import type { BulkItemResult, Inventory } from './inventory.ts';
import { normalizeMac } from './mac.ts';
import type { Device, Group, Site } from './types.ts';

/**
 * Devices as CSV, both ways: an export a spreadsheet opens safely (no formula runs) and an import
 * that validates every row, reports each one, and applies all rows or none.
 */
export const CSV_COLUMNS = [
  'mac',
  'name',
  'model',
  'state',
  'site',
  'groups',
  'labels',
  'line1_address',
  'line1_display_name',
  'line1_auth_user',
  'line1_auth_password',
  'last_seen_at',
  'last_ip',
  'last_firmware',
] as const;
type Column = (typeof CSV_COLUMNS)[number];

/** Columns an import may carry (the last-seen ones are the server's to know). */
const IMPORT_COLUMNS = new Set<string>(CSV_COLUMNS.filter((c) => !c.startsWith('last_')));

/** Max size of an uploaded CSV. */
export const MAX_CSV_BYTES = 5 * 1024 * 1024;

/** A cell a spreadsheet would run as a formula is prefixed with `'` (OWASP CSV injection). */
export function spreadsheetSafe(v: string): string {
  return /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
}

export function csvHeader(): string {
  return stringify([[...CSV_COLUMNS]]);
}

/** CSV lines for a page of devices (passwords are never exported). */
export function csvRows(devices: Device[], sites: Map<string, Site>, groups: Map<string, Group>): string {
  const rows = devices.map((d) => {
    const l1 = d.lines.find((l) => l.index === 1);
    const cells: Record<Column, string> = {
      mac: d.mac,
      name: d.name,
      model: d.model ?? '',
      state: d.state,
      site: d.siteId ? (sites.get(d.siteId)?.name ?? '') : '',
      groups: d.groupIds.map((g) => groups.get(g)?.name ?? g).join(';'),
      labels: d.labels.join(';'),
      line1_address: l1?.address ?? '',
      line1_display_name: l1?.displayName ?? '',
      line1_auth_user: l1?.authUserId ?? '',
      line1_auth_password: '',
      last_seen_at: d.lastSeen?.at ?? '',
      last_ip: d.lastSeen?.ip ?? '',
      last_firmware: d.lastSeen?.firmware ?? '',
    };
    return CSV_COLUMNS.map((c) => spreadsheetSafe(cells[c]));
  });
  return rows.length ? stringify(rows) : '';
}

export interface ImportReport {
  dryRun: boolean;
  applied: boolean;
  rows: Array<{ row: number; mac: string | null; op: 'create' | 'update' | null; ok: boolean; errors: Array<{ path: string; message: string }> }>;
}

/**
 * Imports devices from CSV: a row whose MAC the tenant has updates that device, any other row
 * creates one. Site and groups are given by name. Unknown columns, a missing `mac` column or an
 * unreadable file fail the whole request; row problems are reported per row.
 */
export async function importDevicesCsv(inventory: Inventory, tenantId: string, text: string, dryRun: boolean): Promise<ImportReport> {
  let records: string[][];
  try {
    records = parse(text.replace(/^\uFEFF/, ''), { relax_column_count: false, relax_quotes: true, skip_empty_lines: true, trim: true, max_record_size: 64 * 1024 }) as string[][];
  } catch (err) {
    throw new AppError('bad_request', `unreadable CSV: ${(err as Error).message.slice(0, 200)}`);
  }
  const [header, ...rows] = records;
  if (!header) throw invalid([{ path: 'header', message: 'the file is empty' }]);
  const cols = header.map((h) => h.toLowerCase());
  const unknown = cols.filter((c) => !IMPORT_COLUMNS.has(c));
  const problems = [
    ...unknown.map((c) => ({ path: `header.${c}`, message: `unknown column "${c.slice(0, 40)}" (known: ${[...IMPORT_COLUMNS].join(', ')})` })),
    ...(cols.includes('mac') ? [] : [{ path: 'header', message: 'a "mac" column is required' }]),
    ...cols.filter((c, i) => cols.indexOf(c) !== i).map((c) => ({ path: `header.${c}`, message: 'column given twice' })),
  ];
  if (problems.length) throw invalid(problems, 'the CSV header is not usable');
  if (rows.length > 10_000) throw new AppError('payload_too_large', 'at most 10000 rows per import');

  const sites = new Map((await inventory.listSites(tenantId, { limit: 100_000, offset: 0 })).items.map((s) => [s.name.toLowerCase(), s.id]));
  const groups = new Map((await inventory.listGroups(tenantId, { limit: 100_000, offset: 0 })).items.map((g) => [g.name.toLowerCase(), g.id]));
  const existing = new Set<string>();
  for (let offset = 0; ; offset += 1000) {
    const page = await inventory.listDevices(tenantId, {}, { limit: 1000, offset });
    for (const d of page.items) existing.add(d.mac);
    if (page.items.length < 1000) break;
  }

  const report: ImportReport['rows'] = [];
  const items: Parameters<Inventory['bulkDevices']>[1] = [];
  const itemRow: number[] = [];
  const seen = new Set<string>();
  rows.forEach((cells, i) => {
    const rowNo = i + 2; // 1-based, after the header
    const get = (c: string): string | undefined => {
      const idx = cols.indexOf(c);
      return idx < 0 ? undefined : (cells[idx] ?? '');
    };
    const errors: Array<{ path: string; message: string }> = [];
    for (const [idx, v] of cells.entries()) {
      // An exported cell comes back with its protective quote; anything else that looks like a formula is refused.
      if (/^[=+\-@]/.test(v)) errors.push({ path: cols[idx] as string, message: 'looks like a spreadsheet formula; refused' });
    }
    const clean = (v: string | undefined) => (v === undefined ? undefined : v.replace(/^'(?=[=+\-@\t\r])/, ''));
    const mac = normalizeMac(clean(get('mac')) ?? '');
    if (!mac) errors.push({ path: 'mac', message: `"${(get('mac') ?? '').slice(0, 40)}" is not a MAC address` });
    else if (seen.has(mac)) errors.push({ path: 'mac', message: 'the same MAC appears twice in the file' });
    if (mac) seen.add(mac);
    const device: Record<string, unknown> = {};
    const name = clean(get('name'));
    if (name !== undefined) device.name = name;
    const model = clean(get('model'));
    if (model) device.model = model;
    const state = clean(get('state'));
    if (state) device.state = state;
    const site = clean(get('site'));
    if (site !== undefined) {
      if (site === '') device.siteId = null;
      else if (sites.has(site.toLowerCase())) device.siteId = sites.get(site.toLowerCase());
      else errors.push({ path: 'site', message: `no site named "${site.slice(0, 60)}"` });
    }
    const groupNames = clean(get('groups'));
    if (groupNames !== undefined) {
      const ids: string[] = [];
      for (const g of groupNames.split(';').map((x) => x.trim()).filter(Boolean)) {
        const id = groups.get(g.toLowerCase());
        if (id) ids.push(id);
        else errors.push({ path: 'groups', message: `no group named "${g.slice(0, 60)}"` });
      }
      device.groupIds = ids;
    }
    const labels = clean(get('labels'));
    if (labels !== undefined) device.labels = labels.split(';').map((x) => x.trim()).filter(Boolean);
    const address = clean(get('line1_address'));
    if (address) {
      const line: Record<string, unknown> = { index: 1, address };
      const dn = clean(get('line1_display_name'));
      if (dn) line.displayName = dn;
      const au = clean(get('line1_auth_user'));
      if (au) line.authUserId = au;
      const ap = get('line1_auth_password');
      if (ap) line.authPassword = ap;
      device.lines = [line];
    }
    const op = mac && existing.has(mac) ? 'update' : 'create';
    report.push({ row: rowNo, mac: mac ?? null, op: mac ? op : null, ok: errors.length === 0, errors });
    if (errors.length === 0 && mac) {
      items.push(op === 'create' ? { op, device: { ...device, mac } } : { op, idOrMac: mac, device });
      itemRow.push(report.length - 1);
    }
  });

  const rowErrors = report.some((r) => !r.ok);
  if (items.length === 0) return { dryRun, applied: false, rows: report };
  // Rows that passed the CSV checks go through the same validation as the bulk API.
  const bulk = await inventory.bulkDevices(tenantId, items, dryRun || rowErrors);
  bulk.results.forEach((res: BulkItemResult, k) => {
    const r = report[itemRow[k] as number];
    if (r && !res.ok) {
      r.ok = false;
      r.errors.push(...(res.errors ?? []).map((e) => ({ path: e.path.replace(/^device\./, ''), message: e.message })));
    }
  });
  return { dryRun, applied: !dryRun && !rowErrors && bulk.applied, rows: report };
}
