import { randomUUID } from 'node:crypto';
import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { x402Client } from '@x402/core/client';
import type { PaymentRequirements } from '@x402/core/types';
import { toClientEvmSigner } from '@x402/evm';
import { registerExactEvmScheme } from '@x402/evm/exact/client';
import { wrapFetchWithPayment } from '@x402/fetch';
import type { LocalAccount } from 'viem';
import { type Decision, evaluatePolicy, type Policy, type Usage } from './policy.js';

/**
 * `fetch` that pays x402 with a key the agent holds, under the same policy rules wallet.sh applies to its
 * managed wallets (the evaluation is the same code): before anything is signed, the payment is checked and
 * counted in a usage ledger; a refusal never reaches the signer. Built on the official `@x402/fetch`.
 */

export interface LedgerRecord {
  id: string;
  /** UTC day, YYYY-MM-DD. */
  day: string;
  host: string;
  payTo: string;
  /** Atomic USDC. */
  amount: bigint;
}

/** Where a paying fetch remembers what it spent (per UTC day) and whether it paused itself. */
export interface UsageLedger {
  /** Atomically: read today's usage, decide, and record when allowed. */
  reserve(decide: (usage: Usage) => Decision, record: LedgerRecord): Promise<Decision>;
  release(id: string): Promise<void>;
  paused(): Promise<string | null>;
  pause(reason: string): Promise<void>;
  resume(): Promise<void>;
}

interface LedgerState {
  paused: string | null;
  entries: { id: string; day: string; host: string; payTo: string; amount: string }[];
}

function usageOf(state: LedgerState, record: LedgerRecord): Usage {
  let today = 0n;
  let hostToday = 0n;
  let payToToday = 0n;
  for (const e of state.entries) {
    if (e.day !== record.day) continue;
    today += BigInt(e.amount);
    if (e.host === record.host) hostToday += BigInt(e.amount);
    if (e.payTo === record.payTo) payToToday += BigInt(e.amount);
  }
  return { today, hostToday, payToToday };
}

const serialise = (record: LedgerRecord) => ({ ...record, amount: record.amount.toString() });

/** In-process ledger (one agent process; gone when it exits). */
export class MemoryUsageLedger implements UsageLedger {
  private state: LedgerState = { paused: null, entries: [] };
  private queue: Promise<unknown> = Promise.resolve();

  private exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  reserve(decide: (usage: Usage) => Decision, record: LedgerRecord): Promise<Decision> {
    return this.exclusive(() => {
      const decision = decide(usageOf(this.state, record));
      if (decision.allowed) this.state.entries.push(serialise(record));
      return decision;
    });
  }
  release(id: string) {
    return this.exclusive(() => {
      this.state.entries = this.state.entries.filter((e) => e.id !== id);
    });
  }
  paused() {
    return Promise.resolve(this.state.paused);
  }
  pause(reason: string) {
    return this.exclusive(() => {
      this.state.paused = reason;
    });
  }
  resume() {
    return this.exclusive(() => {
      this.state.paused = null;
    });
  }
}

/**
 * A ledger in a JSON file (mode 0600), shared by every process of the agent: each change holds an exclusive
 * lock file, so two CLI invocations cannot both spend the last of a daily budget.
 */
export class FileUsageLedger implements UsageLedger {
  constructor(
    private readonly path: string,
    private readonly today: () => string = () => new Date().toISOString().slice(0, 10),
  ) {}

  private async locked<T>(fn: (state: LedgerState) => Promise<{ state?: LedgerState; result: T }>): Promise<T> {
    const lock = `${this.path}.lock`;
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const handle = await open(lock, 'wx', 0o600);
        await handle.close();
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const info = await stat(lock).catch(() => undefined);
        // A lock left by a process that died mid-write is stale after 30 s.
        if (info && Date.now() - info.mtimeMs > 30_000) await rm(lock, { force: true });
        if (Date.now() > deadline) throw new Error(`ledger ${this.path} is locked`);
        await new Promise((r) => setTimeout(r, 15));
      }
    }
    try {
      const state = await this.read();
      const { state: next, result } = await fn(state);
      if (next) {
        // Keep only today's entries: the budget resets at 00:00 UTC.
        next.entries = next.entries.filter((e) => e.day >= this.today());
        const tmp = `${this.path}.${process.pid}.tmp`;
        await writeFile(tmp, JSON.stringify(next), { mode: 0o600 });
        await rename(tmp, this.path);
      }
      return result;
    } finally {
      await rm(lock, { force: true });
    }
  }

  private async read(): Promise<LedgerState> {
    try {
      return JSON.parse(await readFile(this.path, 'utf8')) as LedgerState;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { paused: null, entries: [] };
      throw err;
    }
  }

  reserve(decide: (usage: Usage) => Decision, record: LedgerRecord): Promise<Decision> {
    return this.locked<Decision>(async (state) => {
      const decision = decide(usageOf(state, record));
      if (!decision.allowed) return { result: decision };
      return { state: { ...state, entries: [...state.entries, serialise(record)] }, result: decision };
    });
  }
  release(id: string) {
    return this.locked(async (state) => ({
      state: { ...state, entries: state.entries.filter((e) => e.id !== id) },
      result: undefined,
    }));
  }
  async paused() {
    return (await this.read()).paused;
  }
  pause(reason: string) {
    return this.locked(async (state) => ({ state: { ...state, paused: reason }, result: undefined }));
  }
  resume() {
    return this.locked(async (state) => ({ state: { ...state, paused: null }, result: undefined }));
  }
}

/** A payment the policy refused before anything was signed. */
export class PolicyDeniedError extends Error {
  constructor(
    readonly decision: Extract<Decision, { allowed: false }> | { allowed: false; rule: 'paused'; message: string },
  ) {
    super(`payment refused by policy (${decision.rule}): ${decision.message}`);
    this.name = 'PolicyDeniedError';
  }
}

export interface PolicyFetchOptions {
  account: LocalAccount;
  policy: Policy;
  ledger?: UsageLedger;
  /** Only pay on these CAIP-2 networks (default: any EVM network the server offers). */
  networks?: string[];
  /** Only pay in these token addresses (default: any the server offers with EIP-3009). */
  assets?: string[];
  /** Available USDC, for `autoPauseBelow`. */
  balance?: () => Promise<bigint>;
  /** Read access for the signer (e.g. a viem public client), optional. */
  publicClient?: Parameters<typeof toClientEvmSigner>[1];
  baseFetch?: typeof globalThis.fetch;
  now?: () => Date;
}

export interface PolicyFetch {
  fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  ledger: UsageLedger;
}

export function createPolicyFetch(options: PolicyFetchOptions): PolicyFetch {
  const ledger = options.ledger ?? new MemoryUsageLedger();
  const baseFetch = options.baseFetch ?? globalThis.fetch;
  const now = options.now ?? (() => new Date());
  const lowerAssets = options.assets?.map((a) => a.toLowerCase());

  const fetchWithPolicy = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const host = new URL(input instanceof Request ? input.url : String(input)).hostname.toLowerCase();
    let reservation: string | undefined;
    let refusal: PolicyDeniedError | undefined;
    const client = new x402Client();
    registerExactEvmScheme(client, {
      signer: toClientEvmSigner(options.account, options.publicClient),
      ...(options.networks ? { networks: options.networks as `${string}:${string}`[] } : {}),
    });
    // The policy below replaces @x402/fetch's default $1-per-payment cap.
    client.setSpendControls({ maxAmountPerPayment: false, allowedAssets: true });
    client.registerPolicy((_version: number, requirements: PaymentRequirements[]) =>
      requirements.filter(
        (r) =>
          (!options.networks || options.networks.includes(r.network)) &&
          (!lowerAssets || lowerAssets.includes(r.asset.toLowerCase())) &&
          (r.extra?.assetTransferMethod ?? 'eip3009') === 'eip3009',
      ),
    );
    client.onBeforePaymentCreation(async ({ selectedRequirements }) => {
      const paused = await ledger.paused();
      if (paused) {
        refusal = new PolicyDeniedError({ allowed: false, rule: 'paused', message: paused });
        return { abort: true, reason: refusal.message };
      }
      const amount = BigInt(selectedRequirements.amount);
      const payTo = selectedRequirements.payTo.toLowerCase();
      const balance = options.policy.autoPauseBelow !== null && options.balance ? await options.balance() : undefined;
      const record: LedgerRecord = { id: randomUUID(), day: now().toISOString().slice(0, 10), host, payTo, amount };
      const decision = await ledger.reserve(
        (usage) =>
          evaluatePolicy(
            options.policy,
            { kind: 'pay', value: amount, usdcOut: amount, service: { host, payTo } },
            usage,
            balance,
          ),
        record,
      );
      if (!decision.allowed) {
        if (decision.pause) await ledger.pause(decision.message);
        refusal = new PolicyDeniedError(decision);
        return { abort: true, reason: refusal.message };
      }
      reservation = record.id;
      return undefined;
    });
    client.onPaymentCreationFailure(async () => {
      if (reservation) await ledger.release(reservation);
      reservation = undefined;
      return undefined;
    });
    try {
      return await wrapFetchWithPayment(baseFetch, client)(input, init);
    } catch (err) {
      if (refusal) throw refusal;
      throw err;
    }
  };
  return { fetch: fetchWithPolicy, ledger };
}
