import type { Executor } from '../db.js';
import { ProxyStore } from './store.js';

/**
 * Per-tenant request limit over a sliding minute, counted in PostgreSQL (one upsert per request) so every
 * replica of the proxy shares the count. The window is approximated from fixed minutes: the previous minute's
 * count weighted by how much of it still overlaps the last 60 s, plus this minute's. Refused requests are not
 * counted, so a client that keeps retrying is not locked out for longer.
 */
export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Seconds until a request would be allowed again (when refused). */
  retryAfterSeconds: number;
  /** Seconds until this minute's window closes. */
  resetSeconds: number;
}

/**
 * Seconds until `previous × (1 − elapsed) + current + 1 ≤ limit` holds again with no new requests: within
 * this minute if this minute's count leaves room once the previous minute has faded enough, else after the
 * minute turns (when this minute's count becomes the one fading).
 */
export function retryAfterSeconds({
  limit,
  previous,
  current,
  elapsed,
}: {
  limit: number;
  previous: number;
  current: number;
  elapsed: number;
}): number {
  const room = limit - current - 1;
  let seconds: number;
  if (room >= 0 && previous > 0) {
    // previous × (1 − elapsed − s/60) ≤ room
    seconds = 60 * (1 - elapsed - room / previous);
  } else if (room >= 0) {
    seconds = 0;
  } else {
    // Next minute: current × (1 − e') + 1 ≤ limit  ⇒  e' ≥ 1 − (limit − 1) / current.
    seconds = 60 * (1 - elapsed) + 60 * Math.max(0, 1 - (limit - 1) / Math.max(current, 1));
  }
  return Math.max(1, Math.ceil(seconds));
}

export class RateLimiter {
  private readonly store: ProxyStore;
  constructor(
    db: Executor,
    private readonly limitPerMinute: number,
  ) {
    this.store = new ProxyStore(db);
  }

  async hit(tenantId: string): Promise<RateLimitDecision> {
    const limit = this.limitPerMinute;
    const { allowed, current, previous, elapsed } = await this.store.hitRateLimit(tenantId, limit);
    const used = previous * (1 - elapsed) + current;
    return {
      allowed,
      limit,
      remaining: allowed ? Math.max(0, Math.floor(limit - used)) : 0,
      retryAfterSeconds: allowed ? 0 : retryAfterSeconds({ limit, previous, current, elapsed }),
      resetSeconds: Math.max(1, Math.ceil(60 * (1 - elapsed))),
    };
  }
}
