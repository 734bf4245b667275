/**
 * Failures per key (an account, a source address) inside a sliding window; a key with `max`
 * failures is refused until its window ends. Bounded in memory.
 */
export class FailureCounter {
  readonly #map = new Map<string, { count: number; since: number }>();
  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly maxKeys = 100_000,
  ) {}

  /** Milliseconds until `key` may try again; 0 when it may now. */
  blockedFor(key: string, now: number): number {
    const w = this.#map.get(key);
    if (!w) return 0;
    if (now - w.since >= this.windowMs) {
      this.#map.delete(key);
      return 0;
    }
    return w.count >= this.max ? this.windowMs - (now - w.since) : 0;
  }

  fail(key: string, now: number): void {
    const w = this.#map.get(key);
    if (!w || now - w.since >= this.windowMs) this.#map.set(key, { count: 1, since: now });
    else w.count++;
    if (this.#map.size > this.maxKeys) this.#map.delete(this.#map.keys().next().value as string);
  }

  clear(key: string): void {
    this.#map.delete(key);
  }
}
