/**
 * Polycom User-Agents, parsed defensively:
 * `FileTransport Polycom<Family>-<Model>-UA/<version>[ (SN:<mac>)][ Type/Application|Updater]`.
 * Anything else (a browser, curl, garbage) yields an empty result, never an error.
 */
import { CappedMap } from '../capped-map.ts';

export interface PhoneAgent {
  family: string | null;
  /** Model as the API stores it, e.g. `VVX500`, `SPIP550`, `SSIP6000`, `Trio8800`. */
  model: string | null;
  firmware: string | null;
  stage: 'application' | 'updater' | null;
  /** From `(SN:…)` when the phone tags its serial number. */
  mac: string | null;
  microbrowser: boolean;
}

const EMPTY: PhoneAgent = Object.freeze({ family: null, model: null, firmware: null, stage: null, mac: null, microbrowser: false });

const RE = /FileTransport\s+Polycom([A-Za-z]{1,40})-([A-Za-z0-9_]{1,40})-UA\/([0-9A-Za-z.\-_]{1,40})/;

/**
 * Phones of one site send a handful of distinct User-Agents on every request, so answers are kept
 * (frozen: callers share them) for up to 1,000 of them.
 */
export function parseUserAgent(ua: string | undefined | null): PhoneAgent {
  if (!ua) return EMPTY;
  let hit = SEEN.get(ua);
  if (hit === undefined) {
    hit = Object.freeze(parse(ua));
    SEEN.set(ua, hit);
  }
  return hit;
}
const SEEN = new CappedMap<string, PhoneAgent>(1000);

function parse(ua: string): PhoneAgent {
  const s = ua.length > 512 ? ua.slice(0, 512) : ua;
  if (s.startsWith('Microbrowser/')) return { ...EMPTY, microbrowser: true };
  const m = s.match(RE);
  if (!m) return EMPTY;
  const [, family = null, rawModel = '', version = null] = m;
  const sn = s.match(/\(SN:([0-9A-Fa-f]{12})\)/);
  const type = s.match(/Type\/(Application|Updater)/i);
  return {
    family,
    model: rawModel.replace(/_/g, '') || null,
    firmware: version,
    stage: type?.[1] ? (type[1].toLowerCase() as 'application' | 'updater') : null,
    mac: sn?.[1]?.toLowerCase() ?? null,
    microbrowser: false,
  };
}
