import type { Clock } from '../clock.ts';
import type { Logger } from '../logger.ts';
import type { FirmwareFiles, FirmwarePlan } from '../provisioning/tree.ts';
import type { Store } from '../store/store.ts';
import { FirmwareCatalogue } from './catalogue.ts';
import { TransferLimiter } from './limits.ts';
import { PartTable } from './parts.ts';
import { FirmwarePlanner } from './rollouts.ts';

/** The firmware module as the rest of the server sees it. */
export interface Firmware {
  catalogue: FirmwareCatalogue;
  planner: FirmwarePlanner;
  limiter: TransferLimiter;
  /** For the master file. */
  plan: FirmwarePlan;
  /** For firmware names in the provisioning tree. */
  files: FirmwareFiles;
}

export interface FirmwareOptions {
  dataDir: string;
  store: Store;
  clock: Clock;
  logger: Logger;
  maxImageBytes: number;
  maxConcurrent: number;
  maxPerSite: number;
}

export async function createFirmware(o: FirmwareOptions): Promise<Firmware> {
  const parts = PartTable.load();
  const catalogue = new FirmwareCatalogue({ dataDir: o.dataDir, store: o.store, clock: o.clock, logger: o.logger, parts, maxImageBytes: o.maxImageBytes });
  const planner = new FirmwarePlanner({ store: o.store, catalogue, clock: o.clock, logger: o.logger });
  await planner.load();
  const limiter = new TransferLimiter(o.maxConcurrent, o.maxPerSite);
  const files: FirmwareFiles = async (tenant, version, part) => {
    let v = version;
    if (v === null) {
      // `<part>.sip.ld` at the root: the tenant-wide assignment for a model of that part.
      const model = part ? parts.modelsOf(part)?.[0] : undefined;
      v = planner.assigned(tenant.id, { id: '', siteId: null, groupIds: [], model: model ?? null }) ?? null;
      if (v === null) return undefined;
    }
    const image = (await o.store.firmware.image(v, part)) ?? (part !== null ? await o.store.firmware.image(v, null) : undefined);
    if (!image) return undefined;
    return { path: catalogue.blobPath(image.sha256), size: image.size, etag: `"${image.sha256}"`, contentType: 'application/octet-stream' };
  };
  return {
    catalogue,
    planner,
    limiter,
    plan: (tenant, device, running) => planner.plan(tenant, device, running),
    files,
  };
}
