import type {
  BlobUploadResponse,
  Invocation,
  Request as JmapRequest,
  Response as JmapResponse,
  Session,
} from 'jmap-rfc-types';
import type { AuthProvider, Credential } from './credentials.js';

export const CORE = 'urn:ietf:params:jmap:core';
export const MAIL = 'urn:ietf:params:jmap:mail';
export const SUBMISSION = 'urn:ietf:params:jmap:submission';

/** A JMAP failure: a request-level problem (RFC 8620 §3.6.1), a method-level error, or HTTP trouble. */
export class JmapError extends Error {
  constructor(
    message: string,
    readonly type: string,
    readonly status?: number,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'JmapError';
  }
}

export interface JmapClientOptions {
  /** The session resource, e.g. `https://mail.example.com/.well-known/jmap` (redirects are followed). */
  sessionUrl: string;
  auth: AuthProvider;
  fetch?: typeof globalThis.fetch;
  timeoutMs?: number;
}

/** RFC 6570 level-1 expansion, as JMAP's download/upload URL templates use it. */
export function expandTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(values[name] ?? ''));
}

/**
 * A small JMAP client (RFC 8620/8621) typed with `jmap-rfc-types`. It resolves the session's URLs against
 * the URL the session was actually served from (servers such as Cyrus answer with a relative `apiUrl`),
 * authenticates with whatever the provider gives (Basic or Bearer), and on a 401 asks the provider for a
 * fresh credential once and retries.
 */
export class JmapClient {
  private session: Promise<{ session: Session; base: string }> | undefined;
  private readonly fetch: typeof globalThis.fetch;

  constructor(private readonly options: JmapClientOptions) {
    this.fetch = options.fetch ?? globalThis.fetch;
  }

  async getSession(): Promise<Session> {
    return (await this.sessionAndBase()).session;
  }

  /** The account a capability is used with (the session's primary account for it). */
  async accountId(capability: string = MAIL): Promise<string> {
    const session = await this.getSession();
    const id = (session.primaryAccounts as Record<string, string | undefined>)[capability];
    if (!id) throw new JmapError(`the server offers no account for ${capability}`, 'accountNotFound');
    return id;
  }

  /** Sends method calls in one request; returns the responses in order (method errors stay in the list). */
  async request(using: string[], methodCalls: Invocation[]): Promise<Invocation[]> {
    const { session, base } = await this.sessionAndBase();
    const body: JmapRequest = { using: using as JmapRequest['using'], methodCalls } as JmapRequest;
    const res = await this.authorized(new URL(session.apiUrl, base).toString(), {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
    });
    if (!res.ok) {
      const problem = (await res.json().catch(() => undefined)) as { type?: string; detail?: string } | undefined;
      throw new JmapError(
        `JMAP request failed: HTTP ${res.status}${problem?.detail ? ` (${problem.detail})` : ''}`,
        problem?.type ?? 'http',
        res.status,
        problem,
      );
    }
    const parsed = (await res.json()) as JmapResponse;
    if (parsed.sessionState && parsed.sessionState !== session.state) this.session = undefined;
    return parsed.methodResponses as Invocation[];
  }

  /** One method call; a method-level `error` response becomes a JmapError. */
  async call<T = Record<string, unknown>>(using: string[], name: string, args: Record<string, unknown>): Promise<T> {
    const [response] = await this.request(using, [[name, args, '0'] as Invocation]);
    return unwrap<T>(response, name);
  }

  async upload(accountId: string, content: Buffer, type: string): Promise<BlobUploadResponse> {
    const { session, base } = await this.sessionAndBase();
    const url = new URL(expandTemplate(session.uploadUrl, { accountId }), base).toString();
    const res = await this.authorized(url, {
      method: 'POST',
      headers: { 'content-type': type },
      body: new Uint8Array(content),
    });
    if (!res.ok) throw new JmapError(`upload failed: HTTP ${res.status}`, 'http', res.status);
    return (await res.json()) as BlobUploadResponse;
  }

  async download(accountId: string, blobId: string, name: string, type: string): Promise<Buffer> {
    const { session, base } = await this.sessionAndBase();
    const url = new URL(expandTemplate(session.downloadUrl, { accountId, blobId, name, type }), base).toString();
    const res = await this.authorized(url, { method: 'GET' });
    if (res.status === 404) throw new JmapError('blob not found', 'notFound', 404);
    if (!res.ok) throw new JmapError(`download failed: HTTP ${res.status}`, 'http', res.status);
    return Buffer.from(await res.arrayBuffer());
  }

  private sessionAndBase(): Promise<{ session: Session; base: string }> {
    if (!this.session) {
      this.session = (async () => {
        const res = await this.authorized(this.options.sessionUrl, {
          method: 'GET',
          headers: { accept: 'application/json' },
        });
        if (!res.ok) throw new JmapError(`JMAP session failed: HTTP ${res.status}`, 'http', res.status);
        // After redirects (e.g. /.well-known/jmap → /jmap/), relative URLs resolve against the final URL.
        return { session: (await res.json()) as Session, base: res.url || this.options.sessionUrl };
      })();
      this.session.catch(() => {
        this.session = undefined;
      });
    }
    return this.session;
  }

  /** A request with the current credential; on 401 one shared refresh, then one retry. */
  private async authorized(url: string, init: RequestInit): Promise<Response> {
    let credential: Credential = await this.options.auth.current();
    for (let attempt = 0; ; attempt++) {
      const res = await this.fetch(url, {
        ...init,
        headers: { ...(init.headers as Record<string, string>), authorization: credential.authorization },
        redirect: 'follow',
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 30_000),
      });
      if (res.status !== 401 || attempt > 0) {
        if (res.status === 401) throw new JmapError('the JMAP server refused the credentials', 'unauthorized', 401);
        return res;
      }
      await res.body?.cancel();
      credential = await this.options.auth.refresh(credential);
    }
  }
}

export function unwrap<T>(response: Invocation | undefined, name: string): T {
  if (!response) throw new JmapError(`no response to ${name}`, 'serverFail');
  const [responseName, args] = response as [string, Record<string, unknown>, string];
  if (responseName === 'error') {
    const type = String(args.type ?? 'serverFail');
    throw new JmapError(
      `${name} failed: ${type}${args.description ? ` (${args.description})` : ''}`,
      type,
      undefined,
      args,
    );
  }
  return args as T;
}
