import { parseCidr } from '../domain/net.ts';
import type { Site, Tenant } from '../domain/types.ts';

/**
 * Ready-made configuration for the DHCP servers customers run, pointing phones at edgeprov with
 * option 160 (Polycom's own, text) and option 66 (TFTP server name, which modern firmware also
 * reads as a URL). The same URL goes into both: which one wins when both arrive is unconfirmed.
 */
export const DHCP_SERVERS = ['isc', 'kea', 'dnsmasq', 'windows', 'mikrotik'] as const;
export type DhcpServer = (typeof DHCP_SERVERS)[number];

/** Polycom's MAC prefixes (OUIs), kept as data: new ones appear over time. */
export const POLYCOM_OUIS = ['00:04:f2', '64:16:7f', '48:25:67'] as const;

export interface SnippetInput {
  tenant: Tenant;
  site: Site;
  /** The provisioning URL phones should use (with credentials, if they go in the URL). */
  url: string;
  /** Only answer Polycom phones (by MAC prefix). */
  polycomOnly: boolean;
}

/** DHCP text options cannot hold a quote or a backslash safely in every syntax; refuse them. */
function checkUrl(url: string): void {
  if (!/^[\x21-\x7e]+$/.test(url) || /["\\'`]/.test(url)) throw new Error('the provisioning URL has characters DHCP configuration cannot carry');
}

const ipv4Subnets = (site: Site) =>
  site.subnets
    .map((s) => parseCidr(s))
    .filter((c) => c?.family === 4)
    .map((c) => {
      const [net = '', prefix = '32'] = (c as NonNullable<typeof c>).text.split('/');
      const bits = Number(prefix);
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      return { cidr: (c as NonNullable<typeof c>).text, net, mask: [24, 16, 8, 0].map((s) => (mask >>> s) & 255).join('.') };
    });

const header = (i: SnippetInput, comment: string) =>
  `${comment} edgeprov: provisioning for site "${i.site.name.replace(/[\r\n]/g, ' ')}" of tenant "${i.tenant.name.replace(/[\r\n]/g, ' ')}"\n`;

function isc(i: SnippetInput): string {
  const subnets = ipv4Subnets(i.site);
  // binary-to-ascii drops leading zeros: 00:04:f2 reads "0:4:f2".
  const match = POLYCOM_OUIS.map((o) => `binary-to-ascii(16, 8, ":", substring(hardware, 1, 3)) = "${o.split(':').map((x) => parseInt(x, 16).toString(16)).join(':')}"`).join(' or ');
  const options = (indent: string) => `${indent}option polycom-boot-server "${i.url}";\n${indent}option tftp-server-name "${i.url}";\n`;
  const scoped = (indent: string) => (i.polycomOnly ? `${indent}if ${match} {\n${options(indent + '  ')}${indent}}\n` : options(indent));
  let out = header(i, '#') + 'option polycom-boot-server code 160 = text;\n';
  if (subnets.length === 0) return out + scoped('');
  for (const s of subnets) {
    out += `# Merge into your declaration of ${s.cidr} (keep its range, routers and DNS).\nsubnet ${s.net} netmask ${s.mask} {\n${scoped('  ')}}\n`;
  }
  return out;
}

function kea(i: SnippetInput): string {
  const subnets = ipv4Subnets(i.site);
  const data = [
    { name: 'polycom-boot-server', code: 160, data: i.url },
    { name: 'tftp-server-name', data: i.url },
  ];
  const cls = {
    name: 'edgeprov-polycom',
    test: POLYCOM_OUIS.map((o) => `substring(pkt4.mac, 0, 3) == 0x${o.replace(/:/g, '')}`).join(' or '),
    'option-data': data,
  };
  const fragment: Record<string, unknown> = {
    'option-def': [{ name: 'polycom-boot-server', code: 160, type: 'string', space: 'dhcp4' }],
    ...(i.polycomOnly && { 'client-classes': [cls] }),
    subnet4: subnets.map((s, n) => ({
      id: n + 1,
      subnet: s.cidr,
      ...(!i.polycomOnly && { 'option-data': data }),
    })),
  };
  return `${header(i, '//')}// Kea DHCPv4: merge these keys into your "Dhcp4" object.\n${JSON.stringify(fragment, null, 2)}\n`;
}

function dnsmasq(i: SnippetInput): string {
  let out = header(i, '#');
  const tag = 'edgeprov_polycom';
  if (i.polycomOnly) for (const o of POLYCOM_OUIS) out += `dhcp-mac=set:${tag},${o}:*:*:*\n`;
  const t = i.polycomOnly ? `tag:${tag},` : '';
  out += `dhcp-option=${t}160,"${i.url}"\ndhcp-option=${t}66,"${i.url}"\n`;
  return out;
}

function windows(i: SnippetInput): string {
  const subnets = ipv4Subnets(i.site);
  let out = header(i, '#');
  out += '# PowerShell on the DHCP server (DhcpServer module).\n';
  out += 'Add-DhcpServerv4OptionDefinition -OptionId 160 -Name "Polycom boot server" -Type String -ErrorAction SilentlyContinue\n';
  if (i.polycomOnly) {
    out += `# Only Polycom phones: a policy matching their MAC prefixes.\n`;
  }
  for (const s of subnets) {
    if (i.polycomOnly) {
      const macs = POLYCOM_OUIS.map((o) => `${o.replace(/:/g, '').toUpperCase()}*`).join(',');
      out += `Add-DhcpServerv4Policy -ScopeId ${s.net} -Name "edgeprov-polycom" -Condition Or -MacAddress EQ,${macs}\n`;
      out += `Set-DhcpServerv4OptionValue -ScopeId ${s.net} -PolicyName "edgeprov-polycom" -OptionId 160 -Value "${i.url}"\n`;
      out += `Set-DhcpServerv4OptionValue -ScopeId ${s.net} -PolicyName "edgeprov-polycom" -OptionId 66 -Value "${i.url}"\n`;
    } else {
      out += `Set-DhcpServerv4OptionValue -ScopeId ${s.net} -OptionId 160 -Value "${i.url}"\n`;
      out += `Set-DhcpServerv4OptionValue -ScopeId ${s.net} -OptionId 66 -Value "${i.url}"\n`;
    }
  }
  if (subnets.length === 0) out += `Set-DhcpServerv4OptionValue -OptionId 160 -Value "${i.url}"\nSet-DhcpServerv4OptionValue -OptionId 66 -Value "${i.url}"\n`;
  return out;
}

function mikrotik(i: SnippetInput): string {
  const subnets = ipv4Subnets(i.site);
  let out = header(i, '#');
  // RouterOS wants string values quoted inside the value: value="'text'".
  out += `/ip dhcp-server option\nadd code=160 name=edgeprov-160 value="'${i.url}'"\nadd code=66 name=edgeprov-66 value="'${i.url}'"\n`;
  out += '/ip dhcp-server option sets\nadd name=edgeprov options=edgeprov-160,edgeprov-66\n';
  if (i.polycomOnly) {
    out += '# Only Polycom phones: the option set goes on their leases by MAC prefix (a matcher per OUI).\n';
    out += POLYCOM_OUIS.map((o) => `# ${o}: /ip dhcp-server lease set dhcp-option-set=edgeprov [find where mac-address~"^${o.toUpperCase()}"]\n`).join('');
  } else {
    for (const s of subnets) out += `/ip dhcp-server network set [find address=${s.cidr}] dhcp-option-set=edgeprov\n`;
  }
  return out;
}

export function dhcpSnippet(server: DhcpServer, input: SnippetInput): string {
  checkUrl(input.url);
  switch (server) {
    case 'isc':
      return isc(input);
    case 'kea':
      return kea(input);
    case 'dnsmasq':
      return dnsmasq(input);
    case 'windows':
      return windows(input);
    case 'mikrotik':
      return mikrotik(input);
  }
}
