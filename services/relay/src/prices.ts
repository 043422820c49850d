import { formatUsdc, parseUsdc, usdcAmountSchema } from '@agentstack/core';

/**
 * relay.sh's price table, in USDC. One place: each entry can be changed by its env var without code.
 * Computed prices (creating with a longer TTL, renewing) are built from these in `pricing` below.
 */
export const PRICE_TABLE = {
  RELAY_PRICE_MAILBOX: { usdc: '0.01', what: 'create a mailbox (includes its first 24 hours)' },
  RELAY_PRICE_MAILBOX_DAY: {
    usdc: '0.001',
    what: 'each further day of a mailbox (renew, or a longer TTL at creation)',
  },
  RELAY_PRICE_READ: { usdc: '0.001', what: 'list, read, delete, webhooks, delivery log' },
  RELAY_PRICE_SEND: { usdc: '0.005', what: 'send one message' },
  RELAY_PRICE_DOMAIN: { usdc: '0.10', what: 'register a custom domain (DKIM key + DNS records)' },
  RELAY_PRICE_DOMAIN_OP: { usdc: '0.001', what: 'read, verify or delete a custom domain' },
} as const;

export type PriceName = keyof typeof PRICE_TABLE;

export const priceEnv = Object.fromEntries(
  Object.entries(PRICE_TABLE).map(([name, entry]) => [name, usdcAmountSchema().prefault(entry.usdc)]),
) as unknown as { [K in PriceName]: ReturnType<ReturnType<typeof usdcAmountSchema>['prefault']> };

export interface Prices {
  mailbox: bigint;
  mailboxDay: bigint;
  read: bigint;
  send: bigint;
  domain: bigint;
  domainOp: bigint;
}

/** Atomic USDC prices from the parsed config (the amount schema already produced bigints). */
export function pricesFromConfig(config: Partial<Record<PriceName, bigint>>): Prices {
  const atomic = (name: PriceName) => config[name] ?? parseUsdc(PRICE_TABLE[name].usdc);
  return {
    mailbox: atomic('RELAY_PRICE_MAILBOX'),
    mailboxDay: atomic('RELAY_PRICE_MAILBOX_DAY'),
    read: atomic('RELAY_PRICE_READ'),
    send: atomic('RELAY_PRICE_SEND'),
    domain: atomic('RELAY_PRICE_DOMAIN'),
    domainOp: atomic('RELAY_PRICE_DOMAIN_OP'),
  };
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

export const pricing = {
  /** A mailbox's first 24 h are in the base price; every further started day costs the day price. */
  createMailbox(prices: Prices, ttlMs: number): bigint {
    const extraDays = Math.max(0, Math.ceil((ttlMs - DAY_MS) / DAY_MS));
    return prices.mailbox + BigInt(extraDays) * prices.mailboxDay;
  },
  renew(prices: Prices, days: number): bigint {
    return BigInt(days) * prices.mailboxDay;
  },
};

/** `$0.001` for documents. */
export const dollars = (atomic: bigint) => `$${formatUsdc(atomic)}`;
