import { formatUsdc, parseUsdc } from '@agentstack/core';
import { isAddress } from 'viem';
import { z } from 'zod';

/**
 * Spending policy: one pure evaluation used by wallet.sh (server side, under a per-wallet lock) and by the
 * SDK's paying fetch (client side, before anything is signed). Amounts are atomic USDC (6 decimals); ETH
 * movements are valued in USDC by the caller before they are evaluated.
 *
 * Daily figures reset at 00:00 UTC. Caps per recipient / per service are daily too.
 */
export interface Policy {
  /** Largest single operation. */
  maxPerTx: bigint | null;
  /** Total per UTC day, fees included. */
  maxPerDay: bigint | null;
  /** Daily cap for every recipient of a send (overridden per address by `recipientCaps`). */
  maxPerRecipientPerDay: bigint | null;
  /** Daily cap per recipient address (lower-case keys). */
  recipientCaps: Record<string, bigint>;
  /** Daily cap for every paid service, by host (overridden by `serviceCaps`). */
  maxPerServicePerDay: bigint | null;
  /** Daily cap per service: a host name or a payTo address (lower-case keys). */
  serviceCaps: Record<string, bigint>;
  /** When set, sends may only go to, and payments only to services, listed here (addresses or hosts). */
  allow: string[] | null;
  /** Never send to or pay these (addresses or hosts; `*.example.com` matches subdomains). */
  deny: string[];
  /** An operation that would leave less USDC than this is refused and the wallet pauses itself. */
  autoPauseBelow: bigint | null;
}

export const EMPTY_POLICY: Policy = {
  maxPerTx: null,
  maxPerDay: null,
  maxPerRecipientPerDay: null,
  recipientCaps: {},
  maxPerServicePerDay: null,
  serviceCaps: {},
  allow: null,
  deny: [],
  autoPauseBelow: null,
};

export type OperationKind = 'send' | 'swap' | 'pay' | 'fee';

export interface Operation {
  kind: OperationKind;
  /** What the operation is worth in atomic USDC (the figure limits count). */
  value: bigint;
  /** USDC that leaves the wallet (0 for ETH movements); checked against `autoPauseBelow`. */
  usdcOut: bigint;
  /** Recipient of a send. */
  recipient?: string;
  /** The service a payment goes to. */
  service?: { host?: string; payTo?: string };
}

/** What was already counted today (UTC) for this wallet, and for the operation's recipient and service. */
export interface Usage {
  today: bigint;
  recipientToday?: bigint;
  hostToday?: bigint;
  payToToday?: bigint;
}

export type PolicyRule =
  | 'deny'
  | 'allow'
  | 'maxPerTx'
  | 'maxPerDay'
  | 'maxPerRecipientPerDay'
  | 'recipientCaps'
  | 'maxPerServicePerDay'
  | 'serviceCaps'
  | 'autoPauseBelow';

export type Decision =
  | { allowed: true; remaining: bigint | null }
  | {
      allowed: false;
      rule: PolicyRule;
      message: string;
      /** The limit of the rule that refused (null for list rules). */
      limit: bigint | null;
      /** The largest amount a single operation of this kind could move right now (null: no limit). */
      remaining: bigint | null;
      /** `autoPauseBelow`: the wallet should pause itself. */
      pause: boolean;
    };

const lower = (s: string) => s.trim().toLowerCase();

/** `*.example.com` matches `a.example.com` (not the apex); anything else matches exactly. */
export function matchesEntry(entry: string, value: string): boolean {
  const e = lower(entry);
  const v = lower(value);
  if (e.startsWith('*.')) return v.endsWith(e.slice(1)) && v.length > e.length - 1;
  return e === v;
}

const listed = (list: string[], values: (string | undefined)[]) =>
  values.some((v) => v !== undefined && list.some((entry) => matchesEntry(entry, v)));

const minOf = (values: (bigint | null)[]): bigint | null =>
  values.reduce<bigint | null>((m, v) => (v === null ? m : m === null || v < m ? v : m), null);

const left = (cap: bigint | null, used: bigint | undefined) =>
  cap === null ? null : cap - (used ?? 0n) > 0n ? cap - (used ?? 0n) : 0n;

/** Evaluates one operation. `usdcBalance` (available USDC) is needed only for `autoPauseBelow`. */
export function evaluatePolicy(policy: Policy, op: Operation, usage: Usage, usdcBalance?: bigint): Decision {
  const recipient = op.recipient ? lower(op.recipient) : undefined;
  const host = op.service?.host ? lower(op.service.host) : undefined;
  const payTo = op.service?.payTo ? lower(op.service.payTo) : undefined;

  const dayLeft = left(policy.maxPerDay, usage.today);
  const recipientCap =
    op.kind === 'send' && recipient !== undefined
      ? (policy.recipientCaps[recipient] ?? policy.maxPerRecipientPerDay)
      : null;
  const recipientRule: PolicyRule =
    recipient !== undefined && policy.recipientCaps[recipient] !== undefined
      ? 'recipientCaps'
      : 'maxPerRecipientPerDay';
  const hostCap =
    op.kind === 'pay' && host !== undefined ? (policy.serviceCaps[host] ?? policy.maxPerServicePerDay) : null;
  const hostRule: PolicyRule =
    host !== undefined && policy.serviceCaps[host] !== undefined ? 'serviceCaps' : 'maxPerServicePerDay';
  const payToCap = op.kind === 'pay' && payTo !== undefined ? (policy.serviceCaps[payTo] ?? null) : null;
  const balanceLeft =
    policy.autoPauseBelow !== null && usdcBalance !== undefined && op.usdcOut > 0n
      ? usdcBalance - policy.autoPauseBelow > 0n
        ? usdcBalance - policy.autoPauseBelow
        : 0n
      : null;
  const remaining = minOf([
    op.kind === 'fee' ? null : policy.maxPerTx,
    dayLeft,
    left(recipientCap, usage.recipientToday),
    left(hostCap, usage.hostToday),
    left(payToCap, usage.payToToday),
    balanceLeft,
  ]);

  const deny = (rule: PolicyRule, message: string, limit: bigint | null, pause = false): Decision => ({
    allowed: false,
    rule,
    message,
    limit,
    remaining,
    pause,
  });

  if (op.kind === 'send' || op.kind === 'pay') {
    if (listed(policy.deny, [recipient, host, payTo])) {
      return deny('deny', `${recipient ?? host ?? payTo} is on the policy's deny list`, null);
    }
    if (policy.allow !== null) {
      const candidates = op.kind === 'send' ? [recipient] : [host, payTo];
      if (!listed(policy.allow, candidates)) {
        return deny('allow', `${recipient ?? host ?? payTo} is not on the policy's allow list`, null);
      }
    }
  }
  if (op.kind !== 'fee' && policy.maxPerTx !== null && op.value > policy.maxPerTx) {
    return deny(
      'maxPerTx',
      `${formatUsdc(op.value)} USDC exceeds maxPerTx ${formatUsdc(policy.maxPerTx)}`,
      policy.maxPerTx,
    );
  }
  if (policy.maxPerDay !== null && usage.today + op.value > policy.maxPerDay) {
    return deny(
      'maxPerDay',
      `${formatUsdc(op.value)} USDC would take today's total past maxPerDay ${formatUsdc(policy.maxPerDay)} ` +
        `(${formatUsdc(dayLeft ?? 0n)} left until 00:00 UTC)`,
      policy.maxPerDay,
    );
  }
  if (recipientCap !== null && (usage.recipientToday ?? 0n) + op.value > recipientCap) {
    return deny(
      recipientRule,
      `${formatUsdc(op.value)} USDC would take today's total to ${recipient} past its cap ${formatUsdc(recipientCap)}`,
      recipientCap,
    );
  }
  if (hostCap !== null && (usage.hostToday ?? 0n) + op.value > hostCap) {
    return deny(
      hostRule,
      `${formatUsdc(op.value)} USDC would take today's total for ${host} past its cap ${formatUsdc(hostCap)}`,
      hostCap,
    );
  }
  if (payToCap !== null && (usage.payToToday ?? 0n) + op.value > payToCap) {
    return deny(
      'serviceCaps',
      `${formatUsdc(op.value)} USDC would take today's total to ${payTo} past its cap ${formatUsdc(payToCap)}`,
      payToCap,
    );
  }
  if (
    policy.autoPauseBelow !== null &&
    usdcBalance !== undefined &&
    op.usdcOut > 0n &&
    usdcBalance - op.usdcOut < policy.autoPauseBelow
  ) {
    return deny(
      'autoPauseBelow',
      `this would leave ${formatUsdc(usdcBalance - op.usdcOut)} USDC, below autoPauseBelow ` +
        `${formatUsdc(policy.autoPauseBelow)}; the wallet paused itself until its owner resumes it`,
      policy.autoPauseBelow,
      true,
    );
  }
  return { allowed: true, remaining };
}

// ---------------------------------------------------------------------------------------------------------
// JSON form (decimal USDC strings), as the API and the CLI read and write it.

const HOST = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const usdc = z.string({ message: 'expected a decimal string like "5.00"' }).transform((value, ctx) => {
  try {
    return parseUsdc(value);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: (err as Error).message });
    return z.NEVER;
  }
});
const nullableUsdc = usdc.nullable().optional().default(null);

/** An address (EIP-55 checked when mixed case) → lower case. */
const addressKey = z.string().refine((v) => isAddress(v, { strict: true }), {
  message: 'expected an 0x address with a valid EIP-55 checksum',
});

/** An address or a host name (`api.example.com`, `*.example.com`) → lower case. */
const entry = z
  .string()
  .max(253)
  .refine((v) => (v.startsWith('0x') ? isAddress(v, { strict: true }) : HOST.test(v.toLowerCase())), {
    message: 'expected an 0x address (valid EIP-55 checksum) or a host name like api.example.com or *.example.com',
  })
  .transform(lower);

const capMap = (key: z.ZodType<string>) =>
  z
    .record(z.string(), usdc)
    .superRefine((record, ctx) => {
      const keys = Object.keys(record);
      if (keys.length > 500) ctx.addIssue({ code: 'custom', message: 'at most 500 entries' });
      for (const k of keys) {
        const parsed = key.safeParse(k);
        if (!parsed.success) ctx.addIssue({ code: 'custom', path: [k], message: parsed.error.issues[0]!.message });
      }
    })
    .transform((record) => Object.fromEntries(Object.entries(record).map(([k, v]) => [lower(k), v])))
    .optional()
    .default({});

/** The body of `PUT …/policy`: the whole policy (omitted fields mean "no limit" / empty). */
export const policyInputSchema = z
  .object({
    maxPerTx: nullableUsdc,
    maxPerDay: nullableUsdc,
    maxPerRecipientPerDay: nullableUsdc,
    recipientCaps: capMap(addressKey),
    maxPerServicePerDay: nullableUsdc,
    serviceCaps: capMap(entry),
    allow: z.array(entry).max(500).nullable().optional().default(null),
    deny: z.array(entry).max(500).optional().default([]),
    autoPauseBelow: nullableUsdc,
  })
  .strict();

export type PolicyInput = z.input<typeof policyInputSchema>;

export interface PolicyJson {
  maxPerTx: string | null;
  maxPerDay: string | null;
  maxPerRecipientPerDay: string | null;
  recipientCaps: Record<string, string>;
  maxPerServicePerDay: string | null;
  serviceCaps: Record<string, string>;
  allow: string[] | null;
  deny: string[];
  autoPauseBelow: string | null;
}

export const policyJsonSchema = z.object({
  maxPerTx: z.string().nullable(),
  maxPerDay: z.string().nullable(),
  maxPerRecipientPerDay: z.string().nullable(),
  recipientCaps: z.record(z.string(), z.string()),
  maxPerServicePerDay: z.string().nullable(),
  serviceCaps: z.record(z.string(), z.string()),
  allow: z.array(z.string()).nullable(),
  deny: z.array(z.string()),
  autoPauseBelow: z.string().nullable(),
});

const fmt = (v: bigint | null) => (v === null ? null : formatUsdc(v));
const fmtMap = (m: Record<string, bigint>) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, formatUsdc(v)]));

export function policyToJson(policy: Policy): PolicyJson {
  return {
    maxPerTx: fmt(policy.maxPerTx),
    maxPerDay: fmt(policy.maxPerDay),
    maxPerRecipientPerDay: fmt(policy.maxPerRecipientPerDay),
    recipientCaps: fmtMap(policy.recipientCaps),
    maxPerServicePerDay: fmt(policy.maxPerServicePerDay),
    serviceCaps: fmtMap(policy.serviceCaps),
    allow: policy.allow,
    deny: policy.deny,
    autoPauseBelow: fmt(policy.autoPauseBelow),
  };
}

/** Reads a stored or user-given policy (JSON form); throws a zod error naming the field when it is wrong. */
export function policyFromJson(json: unknown): Policy {
  return policyInputSchema.parse(json ?? {});
}
