import type { Session } from 'jmap-rfc-types';
import type { DkimKey } from '../dkim.js';

/**
 * Stalwart's management API, in both generations, behind one interface.
 *
 * Shapes followed (Stalwart documentation, stalwartlabs/website):
 * - v0.16+ (`docs/ref/object/account.md`, `domain.md`, `dkim-signature.md`): management is JMAP with the
 *   `urn:stalwart:jmap` capability and `x:` methods — `x:Domain/query|set`, `x:Account/set` (create with
 *   `@type: "User"`, `name`, `domainId`, `credentials: [{@type: "Password", secret}]`, `roles: {@type:
 *   "User"}`, `permissions: {@type: "Inherit"}`, …; update; destroy) and `x:DkimSignature/query|get|set`
 *   (`@type: "Dkim1RsaSha256"`, `domainId`, `selector`, `privateKey: {@type: "Text", secret: <PEM>}`).
 * - before v0.16 (`docs/api/management/endpoints.md`): REST under `/api` answering `{"data": …}` —
 *   `POST /api/principal` (`type` "individual" | "domain", `name`, `secrets`, `emails`, `roles`, …),
 *   `PATCH /api/principal/{name}` with `[{action: "set", field, value}]`, `DELETE /api/principal/{name}`,
 *   and `POST /api/settings` with `[{type: "insert", prefix, values: [[key, value]], assert_empty}]` for the
 *   DKIM signature `signature.<id>.*` (keys `private-key`, `domain`, `selector`, `algorithm`,
 *   `canonicalization`, `headers`), the configuration `POST /api/dkim` writes for server-generated keys.
 * Which one a server speaks is detected from its JMAP session: v0.16+ lists `urn:stalwart:jmap`.
 */
export interface StalwartManagement {
  readonly flavour: 'jmap' | 'rest';
  createAccount(input: { localPart: string; domain: string; password: string; description: string }): Promise<string>;
  setPassword(ref: string, password: string): Promise<void>;
  deleteAccount(ref: string): Promise<void>;
  ensureDomain(name: string, dkim: DkimKey): Promise<void>;
  removeDomain(name: string): Promise<void>;
}

export class StalwartError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'StalwartError';
  }
}

export interface StalwartConnection {
  url: string;
  /** Authorization header value for an administrator (Basic user:password or Bearer API key). */
  authorization: string;
  fetch?: typeof globalThis.fetch;
}

export const STALWART_CAPABILITY = 'urn:stalwart:jmap';
const USING = ['urn:ietf:params:jmap:core', STALWART_CAPABILITY];
const DKIM_HEADERS = ['From', 'To', 'Cc', 'Date', 'Subject', 'Message-ID', 'Reply-To', 'In-Reply-To', 'References'];

async function http(
  conn: StalwartConnection,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown; url: string }> {
  const res = await (conn.fetch ?? fetch)(new URL(path, conn.url), {
    method,
    headers: {
      authorization: conn.authorization,
      accept: 'application/json',
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    redirect: 'follow',
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = text;
  }
  return { status: res.status, json, url: res.url };
}

/** Asks the server which management API it speaks and returns a client for it. */
export async function connectStalwart(conn: StalwartConnection): Promise<StalwartManagement> {
  const session = await http(conn, 'GET', '/.well-known/jmap');
  if (session.status === 401 || session.status === 403) {
    throw new StalwartError('Stalwart refused the administrator credentials', session.status);
  }
  const capabilities = (session.json as Partial<Session> | undefined)?.capabilities ?? {};
  if (session.status === 200 && STALWART_CAPABILITY in capabilities) {
    const apiUrl = new URL((session.json as Session).apiUrl, session.url || conn.url).toString();
    return new JmapManagement(conn, apiUrl);
  }
  return new RestManagement(conn);
}

type Invocation = [string, Record<string, unknown>, string];

/** v0.16+: JMAP `x:` methods. */
export class JmapManagement implements StalwartManagement {
  readonly flavour = 'jmap' as const;
  private readonly domainIds = new Map<string, string>();

  constructor(
    private readonly conn: StalwartConnection,
    private readonly apiUrl: string,
  ) {}

  private async call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
    const res = await http(this.conn, 'POST', this.apiUrl, { using: USING, methodCalls: [[name, args, 'c1']] });
    if (res.status !== 200) throw new StalwartError(`${name}: HTTP ${res.status}`, res.status, res.json);
    const [response] = (res.json as { methodResponses: Invocation[] }).methodResponses;
    if (!response) throw new StalwartError(`${name}: empty response`);
    const [kind, result] = response;
    if (kind === 'error')
      throw new StalwartError(
        `${name}: ${String(result.type)} ${String(result.description ?? '')}`.trim(),
        400,
        result,
      );
    return result;
  }

  private async set(object: string, args: Record<string, unknown>, key: string, mode: 'create' | 'update' | 'destroy') {
    const result = await this.call(`x:${object}/set`, args);
    const failures = (result[mode === 'create' ? 'notCreated' : mode === 'update' ? 'notUpdated' : 'notDestroyed'] ??
      {}) as Record<string, { type?: string; description?: string }>;
    const failure = failures[key];
    if (failure) {
      throw new StalwartError(
        `x:${object}/set ${mode} refused: ${failure.type ?? 'unknown'} ${failure.description ?? ''}`.trim(),
        400,
        failure,
      );
    }
    return result;
  }

  async domainId(name: string): Promise<string | undefined> {
    const known = this.domainIds.get(name);
    if (known) return known;
    const result = await this.call('x:Domain/query', { filter: { name } });
    const id = (result.ids as string[] | undefined)?.[0];
    if (id) this.domainIds.set(name, id);
    return id;
  }

  async createAccount(input: {
    localPart: string;
    domain: string;
    password: string;
    description: string;
  }): Promise<string> {
    const domainId = await this.domainId(input.domain);
    if (!domainId) throw new StalwartError(`domain ${input.domain} does not exist on the Stalwart server`);
    const result = await this.set(
      'Account',
      {
        create: {
          a: {
            '@type': 'User',
            name: input.localPart,
            domainId,
            description: input.description,
            credentials: [{ '@type': 'Password', secret: input.password }],
            roles: { '@type': 'User' },
            permissions: { '@type': 'Inherit' },
            encryptionAtRest: { '@type': 'Disabled' },
            memberGroupIds: [],
            aliases: [],
            quotas: {},
            locale: 'en_US',
          },
        },
      },
      'a',
      'create',
    );
    const id = (result.created as Record<string, { id: string }> | undefined)?.a?.id;
    if (!id) throw new StalwartError('x:Account/set created no account');
    return id;
  }

  async setPassword(ref: string, password: string): Promise<void> {
    await this.set(
      'Account',
      { update: { [ref]: { credentials: [{ '@type': 'Password', secret: password }] } } },
      ref,
      'update',
    );
  }

  async deleteAccount(ref: string): Promise<void> {
    const result = await this.call('x:Account/set', { destroy: [ref] });
    const failure = (result.notDestroyed as Record<string, { type?: string }> | undefined)?.[ref];
    // Already gone is what we wanted.
    if (failure && failure.type !== 'notFound')
      throw new StalwartError(`x:Account/set destroy refused: ${failure.type}`, 400, failure);
  }

  async ensureDomain(name: string, dkim: DkimKey): Promise<void> {
    let domainId = await this.domainId(name);
    if (!domainId) {
      const result = await this.set(
        'Domain',
        {
          create: {
            d: {
              name,
              aliases: [],
              isEnabled: true,
              allowRelaying: false,
              certificateManagement: { '@type': 'Manual' },
              // Our own key: relay generated it and returned its record to the domain's owner.
              dkimManagement: { '@type': 'Manual' },
              dnsManagement: { '@type': 'Manual' },
              subAddressing: { '@type': 'Enabled' },
              reportAddressUri: 'mailto:postmaster',
            },
          },
        },
        'd',
        'create',
      );
      domainId = (result.created as Record<string, { id: string }> | undefined)?.d?.id;
      if (!domainId) throw new StalwartError('x:Domain/set created no domain');
      this.domainIds.set(name, domainId);
    }
    const existing = await this.call('x:DkimSignature/query', { filter: { domainId } });
    const ids = (existing.ids as string[] | undefined) ?? [];
    if (ids.length > 0) {
      const got = await this.call('x:DkimSignature/get', { ids, properties: ['selector'] });
      if ((got.list as { selector?: string }[]).some((s) => s.selector === dkim.selector)) return;
    }
    await this.set(
      'DkimSignature',
      {
        create: {
          k: {
            '@type': 'Dkim1RsaSha256',
            domainId,
            selector: dkim.selector,
            privateKey: { '@type': 'Text', secret: dkim.privateKeyPem },
            canonicalization: 'relaxed/relaxed',
            headers: DKIM_HEADERS,
            report: false,
            stage: 'active',
          },
        },
      },
      'k',
      'create',
    );
  }

  async removeDomain(name: string): Promise<void> {
    const id = await this.domainId(name);
    if (!id) return;
    await this.call('x:Domain/set', { destroy: [id] });
    this.domainIds.delete(name);
  }
}

/** Before v0.16: REST under /api. Accounts are named by their full address (unique across domains). */
export class RestManagement implements StalwartManagement {
  readonly flavour = 'rest' as const;

  constructor(private readonly conn: StalwartConnection) {}

  private async api(method: string, path: string, body?: unknown): Promise<unknown> {
    const res = await http(this.conn, method, `/api${path}`, body);
    const json = res.json as { data?: unknown; error?: string; details?: string } | undefined;
    if (res.status === 404 && method === 'DELETE') return null;
    if (res.status !== 200 || (json && typeof json === 'object' && 'error' in json)) {
      throw new StalwartError(
        `${method} /api${path}: ${res.status !== 200 ? `HTTP ${res.status}` : json?.error} ${json?.details ?? ''}`.trim(),
        res.status,
        json,
      );
    }
    return json?.data;
  }

  async createAccount(input: {
    localPart: string;
    domain: string;
    password: string;
    description: string;
  }): Promise<string> {
    const address = `${input.localPart}@${input.domain}`;
    await this.api('POST', '/principal', {
      type: 'individual',
      name: address,
      description: input.description,
      quota: 0,
      secrets: [input.password],
      emails: [address],
      urls: [],
      memberOf: [],
      roles: ['user'],
      lists: [],
      members: [],
      enabledPermissions: [],
      disabledPermissions: [],
      externalMembers: [],
    });
    return address;
  }

  async setPassword(ref: string, password: string): Promise<void> {
    await this.api('PATCH', `/principal/${encodeURIComponent(ref)}`, [
      { action: 'set', field: 'secrets', value: [password] },
    ]);
  }

  async deleteAccount(ref: string): Promise<void> {
    try {
      await this.api('DELETE', `/principal/${encodeURIComponent(ref)}`);
    } catch (err) {
      if ((err as StalwartError).details && JSON.stringify((err as StalwartError).details).includes('notFound')) return;
      throw err;
    }
  }

  async ensureDomain(name: string, dkim: DkimKey): Promise<void> {
    try {
      await this.api('POST', '/principal', {
        type: 'domain',
        name,
        description: 'relay.sh domain',
        quota: 0,
        secrets: [],
        emails: [],
        urls: [],
        memberOf: [],
        roles: [],
        lists: [],
        members: [],
        enabledPermissions: [],
        disabledPermissions: [],
        externalMembers: [],
      });
    } catch (err) {
      // Already there (a second replica, or a restart): fine.
      if (!JSON.stringify((err as StalwartError).details ?? '').includes('fieldAlreadyExists')) throw err;
    }
    const id = `rsa-${name}`;
    await this.api('POST', '/settings', [
      { type: 'clear', prefix: `signature.${id}.` },
      {
        type: 'insert',
        prefix: `signature.${id}`,
        values: [
          ['algorithm', 'rsa-sha256'],
          ['domain', name],
          ['selector', dkim.selector],
          ['private-key', dkim.privateKeyPem],
          ['canonicalization', 'relaxed/relaxed'],
          ...DKIM_HEADERS.map((h, i) => [`headers.${i}`, h]),
          ['report', 'false'],
        ],
        assert_empty: false,
      },
    ]);
  }

  async removeDomain(name: string): Promise<void> {
    await this.api('POST', '/settings', [{ type: 'clear', prefix: `signature.rsa-${name}.` }]);
    await this.api('DELETE', `/principal/${encodeURIComponent(name)}`);
  }
}
