/**
 * Per-mailbox credentials for JMAP (a Basic password or a Bearer token), cached and refreshed.
 *
 * The rule (seed R-4): when a call answers 401, exactly one refresh runs for that mailbox and every caller
 * that was using the rejected credential waits for it, then retries once with the new one. A caller holding
 * a credential that was already replaced gets the replacement without another refresh.
 */
export interface Credential {
  /** The value of the Authorization header. */
  authorization: string;
  /** When it stops working (epoch ms); refreshed ahead of time when known. */
  expiresAt?: number | undefined;
}

/** Obtains a credential for a key; `stale` is the one that was just rejected (undefined on first use). */
export type CredentialSource = (key: string, stale: Credential | undefined) => Promise<Credential>;

interface Entry {
  promise: Promise<Credential>;
  value?: Credential;
}

export interface AuthProvider {
  current(): Promise<Credential>;
  /** Called with the credential a server rejected; resolves to the one to retry with. */
  refresh(rejected: Credential): Promise<Credential>;
}

export class CredentialCache {
  private readonly entries = new Map<string, Entry>();
  /** How many times the source was asked, per key (visible for tests and metrics). */
  readonly fetches = new Map<string, number>();

  constructor(
    private readonly source: CredentialSource,
    private readonly options: { refreshBeforeExpiryMs?: number; now?: () => number } = {},
  ) {}

  async current(key: string): Promise<Credential> {
    const entry = this.entries.get(key);
    if (!entry) return this.load(key, undefined);
    const value = entry.value ?? (await entry.promise);
    if (this.expiring(value)) return this.refresh(key, value);
    return value;
  }

  /** The single-flight refresh: only the first caller holding `rejected` triggers the source. */
  async refresh(key: string, rejected: Credential): Promise<Credential> {
    const entry = this.entries.get(key);
    if (entry) {
      // A refresh is already running, or finished with a different credential: share it.
      if (entry.value === undefined || entry.value !== rejected) return entry.promise;
    }
    return this.load(key, rejected);
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  provider(key: string): AuthProvider {
    return { current: () => this.current(key), refresh: (rejected) => this.refresh(key, rejected) };
  }

  private load(key: string, stale: Credential | undefined): Promise<Credential> {
    this.fetches.set(key, (this.fetches.get(key) ?? 0) + 1);
    const entry: Entry = { promise: this.source(key, stale) };
    this.entries.set(key, entry);
    entry.promise.then(
      (value) => {
        if (this.entries.get(key) === entry) entry.value = value;
      },
      () => {
        // A failed refresh is not cached: the next caller tries again.
        if (this.entries.get(key) === entry) this.entries.delete(key);
      },
    );
    return entry.promise;
  }

  private expiring(value: Credential): boolean {
    if (value.expiresAt === undefined) return false;
    const now = this.options.now?.() ?? Date.now();
    return value.expiresAt - (this.options.refreshBeforeExpiryMs ?? 30_000) <= now;
  }
}

export const basicAuthorization = (login: string, password: string) =>
  `Basic ${Buffer.from(`${login}:${password}`).toString('base64')}`;
