import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { ProviderError } from './provider.js';

/**
 * A small client for the Hetzner Cloud API: the calls spawn.sh makes, nothing else. It keeps under the
 * project's request budget (3,600 per hour by default: a sliding window here, and the server's own
 * `RateLimit-Remaining`/`RateLimit-Reset` when it sends them), waits out `429` (`Retry-After`), retries
 * `5xx` with exponential backoff where a retry cannot do something twice, and checks every response it
 * reads against the shapes below.
 */

export const actionSchema = z.object({
  id: z.number().int(),
  command: z.string(),
  status: z.enum(['running', 'success', 'error']),
  progress: z.number().int(),
  started: z.string(),
  finished: z.string().nullable(),
  error: z.object({ code: z.string(), message: z.string() }).nullable(),
  resources: z.array(z.object({ id: z.number().int(), type: z.string() })),
});
export type HetznerAction = z.infer<typeof actionSchema>;

export const serverSchema = z.object({
  id: z.number().int(),
  name: z.string(),
  status: z.string(),
  labels: z.record(z.string(), z.string()),
  created: z.string(),
  public_net: z.object({
    ipv4: z.object({ ip: z.string() }).nullable(),
    ipv6: z.object({ ip: z.string() }).nullable(),
  }),
  server_type: z.object({ name: z.string(), cores: z.number(), memory: z.number(), disk: z.number() }),
  image: z.object({ name: z.string().nullable() }).nullable(),
  location: z.object({ name: z.string() }),
});
export type HetznerServer = z.infer<typeof serverSchema>;

export const sshKeySchema = z.object({
  id: z.number().int(),
  name: z.string(),
  fingerprint: z.string(),
  public_key: z.string(),
  labels: z.record(z.string(), z.string()),
});
export type HetznerSshKey = z.infer<typeof sshKeySchema>;

const metaSchema = z.object({
  pagination: z.object({ page: z.number().int(), next_page: z.number().int().nullable() }).partial().optional(),
});

const errorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });

export const createServerResponseSchema = z.object({
  server: serverSchema,
  action: actionSchema,
  next_actions: z.array(actionSchema),
  root_password: z.string().nullable(),
});

export interface CreateServerRequest {
  name: string;
  server_type: string;
  image: string;
  location?: string;
  ssh_keys?: string[];
  user_data?: string;
  labels?: Record<string, string>;
  start_after_create?: boolean;
}

export interface HetznerClientOptions {
  token: string;
  baseUrl?: string;
  /** The project's request budget per hour (Hetzner's default is 3,600). */
  requestsPerHour?: number;
  /** Retries for 429 and retry-safe 5xx answers. */
  maxRetries?: number;
  /** Longest single wait for the budget or a Retry-After before giving up with a 429 of our own. */
  maxWaitMs?: number;
  /** First wait between polls of a running action (then 1.5× per poll, at most 10 s). */
  pollMs?: number;
  fetch?: typeof globalThis.fetch;
  headers?: Record<string, string>;
}

export class HetznerApiError extends ProviderError {
  constructor(
    message: string,
    code: string,
    readonly status: number,
  ) {
    super(message, code, status === 429 || status >= 500);
    this.name = 'HetznerApiError';
  }
}

export class HetznerClient {
  private readonly baseUrl: string;
  private readonly budget: number;
  private readonly sent: number[] = [];
  private serverResetAt = 0;
  private readonly fetchImpl: typeof globalThis.fetch;

  constructor(private readonly options: HetznerClientOptions) {
    this.baseUrl = (options.baseUrl ?? 'https://api.hetzner.cloud/v1').replace(/\/+$/, '');
    this.budget = options.requestsPerHour ?? 3_600;
    this.fetchImpl = options.fetch ?? globalThis.fetch;
  }

  /** Requests sent in the last hour (for tests and metrics). */
  requestsInLastHour(now = Date.now()): number {
    this.prune(now);
    return this.sent.length;
  }

  private prune(now: number): void {
    while (this.sent.length > 0 && (this.sent[0] as number) <= now - 3_600_000) this.sent.shift();
  }

  /** Waits until one more request fits the hourly budget (ours and the server's view of it). */
  private async takeBudget(): Promise<void> {
    const maxWait = this.options.maxWaitMs ?? 60_000;
    for (;;) {
      const now = Date.now();
      this.prune(now);
      let waitMs = 0;
      if (this.sent.length >= this.budget) waitMs = (this.sent[0] as number) + 3_600_000 - now;
      if (this.serverResetAt > now) waitMs = Math.max(waitMs, this.serverResetAt - now);
      if (waitMs <= 0) break;
      if (waitMs > maxWait) {
        throw new HetznerApiError(
          `Hetzner API request budget exhausted; next slot in ${Math.ceil(waitMs / 1000)} s`,
          'rate_limited',
          429,
        );
      }
      await sleep(waitMs);
    }
    this.sent.push(Date.now());
  }

  async request<T>(
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    path: string,
    {
      query,
      body,
      schema,
      retrySafe = method !== 'POST',
    }: {
      query?: Record<string, string | number | undefined>;
      body?: unknown;
      schema: z.ZodType<T>;
      retrySafe?: boolean;
    },
  ): Promise<T> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [key, value] of Object.entries(query ?? {}))
      if (value !== undefined) url.searchParams.set(key, String(value));
    const maxRetries = this.options.maxRetries ?? 4;
    for (let attempt = 0; ; attempt++) {
      await this.takeBudget();
      let response: Response;
      try {
        response = await this.fetchImpl(url, {
          method,
          headers: {
            authorization: `Bearer ${this.options.token}`,
            accept: 'application/json',
            ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
            ...this.options.headers,
          },
          ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (err) {
        // The request may or may not have reached Hetzner: only retry what is safe to do twice.
        if (retrySafe && attempt < maxRetries) {
          await sleep(backoff(attempt));
          continue;
        }
        throw new HetznerApiError(`Hetzner API unreachable: ${(err as Error).message}`, 'unavailable', 503);
      }
      this.noteRateLimit(response);
      if (response.status === 429 && attempt < maxRetries) {
        const wait = retryAfterMs(response) ?? backoff(attempt);
        if (wait <= (this.options.maxWaitMs ?? 60_000)) {
          await response.body?.cancel();
          await sleep(wait);
          continue;
        }
      }
      if (response.status >= 500 && retrySafe && attempt < maxRetries) {
        await response.body?.cancel();
        await sleep(backoff(attempt));
        continue;
      }
      const text = await response.text();
      let json: unknown;
      try {
        json = text ? JSON.parse(text) : {};
      } catch {
        throw new HetznerApiError(`Hetzner answered ${response.status} with a non-JSON body`, 'invalid_response', 502);
      }
      if (!response.ok) {
        const parsed = errorSchema.safeParse(json);
        const code = parsed.success ? parsed.data.error.code : `http_${response.status}`;
        const message = parsed.success ? parsed.data.error.message : `Hetzner answered ${response.status}`;
        throw new HetznerApiError(message, code, response.status);
      }
      const parsed = schema.safeParse(json);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new HetznerApiError(
          `unexpected Hetzner response for ${method} ${path}: ${issue?.path.join('.')}: ${issue?.message}`,
          'invalid_response',
          502,
        );
      }
      return parsed.data;
    }
  }

  private noteRateLimit(response: Response): void {
    const remaining = response.headers.get('ratelimit-remaining');
    const reset = response.headers.get('ratelimit-reset');
    if (remaining !== null && Number(remaining) <= 0 && reset !== null && /^\d+$/.test(reset)) {
      this.serverResetAt = Number(reset) * 1000;
    }
  }

  createServer(body: CreateServerRequest) {
    // Not retried on 5xx: a second POST could create a second server (the provider looks it up by name instead).
    return this.request('POST', '/servers', { body, schema: createServerResponseSchema, retrySafe: false });
  }

  getServer(id: number) {
    return this.request('GET', `/servers/${id}`, { schema: z.object({ server: serverSchema }) }).then((r) => r.server);
  }

  /** Every server matching the label selector (all pages). */
  async listServers(query: { labelSelector?: string; name?: string }): Promise<HetznerServer[]> {
    const servers: HetznerServer[] = [];
    for (let page = 1; ; ) {
      const result = await this.request('GET', '/servers', {
        query: { label_selector: query.labelSelector, name: query.name, page, per_page: 50 },
        schema: z.object({ servers: z.array(serverSchema), meta: metaSchema.optional() }),
      });
      servers.push(...result.servers);
      const next = result.meta?.pagination?.next_page;
      if (!next || next <= page) return servers;
      page = next;
    }
  }

  deleteServer(id: number) {
    return this.request('DELETE', `/servers/${id}`, { schema: z.object({ action: actionSchema }) }).then(
      (r) => r.action,
    );
  }

  /** `poweron`, `shutdown` (ACPI, graceful), `poweroff` (hard) or `reboot` (ACPI). */
  serverAction(id: number, action: 'poweron' | 'shutdown' | 'poweroff' | 'reboot') {
    return this.request('POST', `/servers/${id}/actions/${action}`, {
      schema: z.object({ action: actionSchema }),
      retrySafe: true,
    }).then((r) => r.action);
  }

  changeType(id: number, body: { server_type: string; upgrade_disk: boolean }) {
    return this.request('POST', `/servers/${id}/actions/change_type`, {
      body,
      schema: z.object({ action: actionSchema }),
    }).then((r) => r.action);
  }

  rebuild(id: number, body: { image: string; user_data?: string }) {
    return this.request('POST', `/servers/${id}/actions/rebuild`, {
      body,
      schema: z.object({ action: actionSchema, root_password: z.string().nullable().optional() }),
    });
  }

  getAction(id: number) {
    return this.request('GET', `/actions/${id}`, { schema: z.object({ action: actionSchema }) }).then((r) => r.action);
  }

  /** Polls an action until it finishes (1 s, then slower, to spare the budget); throws when it failed. */
  async waitForAction(action: HetznerAction, { timeoutMs = 600_000 } = {}): Promise<HetznerAction> {
    const deadline = Date.now() + timeoutMs;
    let current = action;
    for (let poll = 0; current.status === 'running'; poll++) {
      if (Date.now() > deadline)
        throw new ProviderError(`Hetzner action ${current.command} did not finish in time`, 'timeout', true);
      await sleep(Math.min((this.options.pollMs ?? 1_000) * 1.5 ** poll, 10_000));
      current = await this.getAction(current.id);
    }
    if (current.status === 'error') {
      throw new ProviderError(
        `Hetzner action ${current.command} failed: ${current.error?.message ?? 'unknown error'}`,
        current.error?.code ?? 'action_failed',
      );
    }
    return current;
  }

  listSshKeys(query: { fingerprint?: string; labelSelector?: string; name?: string }) {
    return this.request('GET', '/ssh_keys', {
      query: { fingerprint: query.fingerprint, label_selector: query.labelSelector, name: query.name },
      schema: z.object({ ssh_keys: z.array(sshKeySchema) }),
    }).then((r) => r.ssh_keys);
  }

  createSshKey(body: { name: string; public_key: string; labels?: Record<string, string> }) {
    return this.request('POST', '/ssh_keys', { body, schema: z.object({ ssh_key: sshKeySchema }) }).then(
      (r) => r.ssh_key,
    );
  }

  deleteSshKey(id: number) {
    return this.request('DELETE', `/ssh_keys/${id}`, { schema: z.unknown() });
  }
}

function backoff(attempt: number): number {
  return Math.min(500 * 2 ** attempt, 8_000) + Math.floor(Math.random() * 250);
}

function retryAfterMs(response: Response): number | undefined {
  const header = response.headers.get('retry-after');
  if (header) {
    if (/^\d+$/.test(header)) return Number(header) * 1000;
    const at = Date.parse(header);
    if (!Number.isNaN(at)) return Math.max(0, at - Date.now());
  }
  const reset = response.headers.get('ratelimit-reset');
  if (reset && /^\d+$/.test(reset)) return Math.max(0, Number(reset) * 1000 - Date.now());
  return undefined;
}
