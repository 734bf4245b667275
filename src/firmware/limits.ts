/**
 * Storm control for firmware transfers: at most `maxTotal` at once, and `maxPerSite` per site
 * (a site's uplink is the usual bottleneck). A phone above the cap is told to come back later
 * (HTTP 503 with a jittered Retry-After; a TFTP error) instead of getting a slow or broken
 * download that it would retry at once.
 */
export class TransferLimiter {
  #total = 0;
  readonly #perSite = new Map<string, number>();

  constructor(
    readonly maxTotal: number,
    readonly maxPerSite: number,
    private readonly retryAfter: { minSeconds: number; maxSeconds: number } = { minSeconds: 30, maxSeconds: 90 },
  ) {}

  get active(): number {
    return this.#total;
  }

  /** A release function, or `undefined` when the caps are reached. Release is idempotent. */
  acquire(site: string | undefined): (() => void) | undefined {
    const key = site ?? '';
    const n = this.#perSite.get(key) ?? 0;
    if (this.#total >= this.maxTotal || (site !== undefined && n >= this.maxPerSite)) return undefined;
    this.#total++;
    this.#perSite.set(key, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#total--;
      const left = (this.#perSite.get(key) ?? 1) - 1;
      if (left <= 0) this.#perSite.delete(key);
      else this.#perSite.set(key, left);
    };
  }

  /** Seconds to wait, spread so refused phones do not all return in the same second. */
  retryAfterSeconds(): number {
    const { minSeconds, maxSeconds } = this.retryAfter;
    return minSeconds + Math.floor(Math.random() * (maxSeconds - minSeconds + 1));
  }
}
