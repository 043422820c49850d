import type { PolicyInput, PolicyJson } from './policy.js';

/**
 * A typed client for every wallet.sh route. Owner calls need a fetch that pays x402 (this SDK's
 * `createPolicyFetch`, or `@x402/fetch`); agent calls need only the agent token (the wallet pays its own fees).
 */

export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Every route the client calls: checked against the service's /openapi.json in the service's tests. */
export const WALLET_ROUTES = {
  health: { method: 'GET', path: '/v1/health' },
  create: { method: 'POST', path: '/v1/wallets' },
  list: { method: 'GET', path: '/v1/wallets' },
  get: { method: 'GET', path: '/v1/wallets/:address' },
  deactivate: { method: 'DELETE', path: '/v1/wallets/:address' },
  send: { method: 'POST', path: '/v1/wallets/:address/send' },
  swap: { method: 'POST', path: '/v1/wallets/:address/swap' },
  history: { method: 'GET', path: '/v1/wallets/:address/history' },
  fundRequest: { method: 'POST', path: '/v1/wallets/:address/fund-request' },
  fundRequests: { method: 'GET', path: '/v1/wallets/:address/fund-requests' },
  approveFundRequest: { method: 'POST', path: '/v1/fund-requests/:id/approve' },
  denyFundRequest: { method: 'POST', path: '/v1/fund-requests/:id/deny' },
  getPolicy: { method: 'GET', path: '/v1/wallets/:address/policy' },
  setPolicy: { method: 'PUT', path: '/v1/wallets/:address/policy' },
  pause: { method: 'POST', path: '/v1/wallets/:address/pause' },
  resume: { method: 'POST', path: '/v1/wallets/:address/resume' },
  pay: { method: 'POST', path: '/v1/wallets/:address/pay' },
  getNotifications: { method: 'GET', path: '/v1/wallets/:address/notifications' },
  setNotifications: { method: 'PUT', path: '/v1/wallets/:address/notifications' },
  deliveries: { method: 'GET', path: '/v1/wallets/:address/deliveries' },
  rotateAgentToken: { method: 'POST', path: '/v1/wallets/:address/agent-token' },
  getKillSwitch: { method: 'GET', path: '/v1/operator/kill-switch' },
  setKillSwitch: { method: 'PUT', path: '/v1/operator/kill-switch' },
} as const;

export type RouteName = keyof typeof WALLET_ROUTES;

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface CreatedWallet {
  address: `0x${string}`;
  chain: string;
  network: string;
  label: string | null;
  balance: string;
  balanceAtomic: string;
  funded: false;
  claimToken: string;
  claimTokenExpiresAt: string;
  agentToken: string;
  createdAt: string;
}

export type Scope = 'all' | 'send' | 'swap' | 'pay';

export interface SafetyState {
  paused: { scope: Scope; reason: string; source: string; pausedAt: string }[];
  breakers: { scope: Scope; consecutiveFailures: number; threshold: number; lastError: string | null }[];
  killSwitch: { engaged: boolean; reason: string | null };
}

export interface WalletDetails {
  address: `0x${string}`;
  chain: string;
  network: string;
  label: string | null;
  status: 'active' | 'deactivated';
  owner: `0x${string}` | null;
  claimed: boolean;
  balances: { usdc: string; usdcAtomic: string; eth: string; ethAtomic: string };
  funded: boolean;
  policy: PolicyJson;
  safety: SafetyState;
  createdAt: string;
  deactivatedAt: string | null;
}

export interface JournalEntry {
  id: string;
  kind: string;
  direction: 'out' | 'in';
  asset: 'USDC' | 'ETH';
  amount: string;
  amountAtomic: string;
  counterparty: string | null;
  service: string | null;
  status: 'intent' | 'submitted' | 'confirmed' | 'failed';
  txHash: string | null;
  error: string | null;
  actor: string;
  createdAt: string;
  finishedAt: string | null;
  details: Record<string, unknown>;
}

export interface HistoryItem extends Omit<JournalEntry, 'createdAt' | 'actor'> {
  type: 'journal' | 'incoming';
  actor: string | null;
  at: string;
}

export interface SwapResult extends JournalEntry {
  from: 'USDC' | 'ETH';
  to: 'USDC' | 'ETH';
  amountIn: string;
  quotedOut: string;
  minOut: string;
  amountOut: string | null;
  maxSlippageBps: number;
}

export interface FundRequest {
  id: string;
  wallet: string;
  owner: string;
  amount: string;
  amountAtomic: string;
  reason: string;
  status: 'pending' | 'approved' | 'denied' | 'expired';
  requestedBy: 'owner' | 'agent';
  decisionReason: string | null;
  txHash: string | null;
  createdAt: string;
  expiresAt: string;
  decidedAt: string | null;
  approve?: { primaryType: string; domain: Record<string, unknown>; message: Record<string, string> };
}

export interface PolicyView {
  policy: PolicyJson;
  usage: { day: string; resetsAt: string; spentToday: string; remainingToday: string | null };
}

export interface PayResult {
  status: number;
  headers: Record<string, string>;
  body: string | null;
  bodyEncoding: 'utf8' | 'base64';
  url: string;
  paid: null | {
    amount: string;
    amountAtomic: string;
    payTo: string;
    network: string;
    journalId: string;
    status: string;
    transaction: string | null;
  };
}

export interface EIP3009Authorization {
  from: string;
  to: string;
  value: string;
  validAfter: string;
  validBefore: string;
  nonce: string;
  signature: string;
}

/** The service's error envelope, thrown as an exception. */
export class WalletApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly field?: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'WalletApiError';
  }
}

export interface WalletClientOptions {
  baseUrl: string;
  /** A paying fetch for owner calls (x402). Default: global fetch (enough for agent-token calls). */
  fetch?: Fetch;
  /** Act as the agent: sends `Authorization: Bearer <agentToken>`; the wallet pays its own route fees. */
  agentToken?: string;
  /** For the operator routes. */
  operatorToken?: string;
}

export interface CallOptions {
  idempotencyKey?: string;
  /** Claims the wallet with its claim token on this (paid) request. */
  claimToken?: string;
}

type Params = { address?: string; id?: string };

export class WalletClient {
  private readonly fetch: Fetch;

  constructor(private readonly options: WalletClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  /** Calls one route by name; every typed method goes through here. */
  async call<T>(
    route: RouteName,
    params: Params = {},
    {
      body,
      query,
      ...call
    }: CallOptions & { body?: unknown; query?: Record<string, string | number | undefined> } = {},
  ): Promise<T> {
    const { method, path } = WALLET_ROUTES[route];
    const filled = path.replace(/:(address|id)/g, (_m, name: 'address' | 'id') => {
      const value = params[name];
      if (!value) throw new Error(`${route}: ${name} is required`);
      return encodeURIComponent(value);
    });
    const url = new URL(filled, this.options.baseUrl.endsWith('/') ? this.options.baseUrl : `${this.options.baseUrl}/`);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const bearer = route.endsWith('KillSwitch') ? this.options.operatorToken : this.options.agentToken;
    if (bearer && route !== 'create' && route !== 'health') headers.authorization = `Bearer ${bearer}`;
    if (call.idempotencyKey) headers['idempotency-key'] = call.idempotencyKey;
    if (call.claimToken) headers['x-claim-token'] = call.claimToken;
    const res = await this.fetch(url.href, {
      method,
      headers,
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = text;
    }
    if (!res.ok) {
      const error = (
        parsed as { error?: { code?: string; message?: string; field?: string; details?: Record<string, unknown> } }
      )?.error;
      throw new WalletApiError(
        res.status,
        error?.code ?? 'http_error',
        error?.message ?? `${method} ${url.pathname} answered ${res.status}`,
        error?.field,
        error?.details,
      );
    }
    return parsed as T;
  }

  health() {
    return this.call<{ status: string; chain: string; network: string; killSwitch: { engaged: boolean } }>('health');
  }
  create(body: { chain?: string; label?: string } = {}, call: CallOptions = {}) {
    return this.call<CreatedWallet>('create', {}, { body, ...call });
  }
  list(query: { limit?: number; cursor?: string } = {}) {
    return this.call<Page<{ address: string; label: string | null; status: string; createdAt: string }>>(
      'list',
      {},
      { query },
    );
  }
  get(address: string, call: CallOptions = {}) {
    return this.call<WalletDetails>('get', { address }, call);
  }
  deactivate(address: string, options: { sweepTo?: string } & CallOptions = {}) {
    const { sweepTo, ...call } = options;
    return this.call<{ address: string; status: string; sweep: JournalEntry | null; ethRemaining: string }>(
      'deactivate',
      { address },
      { query: { sweepTo }, ...call },
    );
  }
  send(address: string, body: { to: string; amount: string; asset?: 'USDC' | 'ETH' }, call: CallOptions = {}) {
    return this.call<JournalEntry>('send', { address }, { body, ...call });
  }
  swap(
    address: string,
    body: {
      from: 'USDC' | 'ETH';
      to: 'USDC' | 'ETH';
      amount: string;
      maxSlippageBps?: number;
      deadlineSeconds?: number;
    },
    call: CallOptions = {},
  ) {
    return this.call<SwapResult>('swap', { address }, { body, ...call });
  }
  history(address: string, query: { limit?: number; cursor?: string } = {}) {
    return this.call<Page<HistoryItem>>('history', { address }, { query });
  }
  fundRequest(address: string, body: { amount: string; reason: string }, call: CallOptions = {}) {
    return this.call<FundRequest>('fundRequest', { address }, { body, ...call });
  }
  fundRequests(address: string, query: { status?: FundRequest['status']; limit?: number; cursor?: string } = {}) {
    return this.call<Page<FundRequest>>('fundRequests', { address }, { query });
  }
  approveFundRequest(id: string, body: { authorization?: EIP3009Authorization } = {}, call: CallOptions = {}) {
    return this.call<FundRequest>('approveFundRequest', { id }, { body, ...call });
  }
  denyFundRequest(id: string, body: { reason?: string } = {}, call: CallOptions = {}) {
    return this.call<FundRequest>('denyFundRequest', { id }, { body, ...call });
  }
  getPolicy(address: string) {
    return this.call<PolicyView>('getPolicy', { address });
  }
  setPolicy(address: string, policy: PolicyInput, call: CallOptions = {}) {
    return this.call<PolicyView>('setPolicy', { address }, { body: policy, ...call });
  }
  pause(address: string, body: { scope?: Scope; reason?: string } = {}, call: CallOptions = {}) {
    return this.call<SafetyState>('pause', { address }, { body, ...call });
  }
  resume(address: string, body: { scope?: Scope } = {}, call: CallOptions = {}) {
    return this.call<SafetyState>('resume', { address }, { body, ...call });
  }
  pay(
    address: string,
    body: {
      url: string;
      method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
      headers?: Record<string, string>;
      body?: string;
      maxAmount?: string;
    },
    call: CallOptions = {},
  ) {
    return this.call<PayResult>('pay', { address }, { body, ...call });
  }
  getNotifications(address: string) {
    return this.call<Record<string, unknown>>('getNotifications', { address });
  }
  setNotifications(
    address: string,
    body: { webhookUrl?: string | null; webhookSecret?: string; events?: string[] | null; email?: string | null },
  ) {
    return this.call<Record<string, unknown>>('setNotifications', { address }, { body });
  }
  deliveries(address: string, query: { channel?: 'webhook' | 'email'; limit?: number; cursor?: string } = {}) {
    return this.call<Page<Record<string, unknown>>>('deliveries', { address }, { query });
  }
  rotateAgentToken(address: string) {
    return this.call<{ agentToken: string }>('rotateAgentToken', { address });
  }
  getKillSwitch() {
    return this.call<{ engaged: boolean; reason: string | null }>('getKillSwitch');
  }
  setKillSwitch(body: { engaged: boolean; reason?: string }) {
    return this.call<{ engaged: boolean; reason: string | null }>('setKillSwitch', {}, { body });
  }
}
