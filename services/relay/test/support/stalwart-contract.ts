import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';

/**
 * Stalwart's management API as its documentation describes it, for checking relay's client without a Stalwart
 * server: every request is validated against the documented shape (unknown fields refused, required fields
 * required) and answered in the documented response shape. Sources: see test/fixtures/stalwart/README.md.
 */

const variant = <T extends string>(...types: T[]) => z.object({ '@type': z.enum(types) }).loose();

// docs/ref/object/domain.md (fields; `required` ones without `?`)
export const domainCreate = z
  .object({
    name: z.string().min(1),
    aliases: z.array(z.string()).optional(),
    isEnabled: z.boolean().optional(),
    description: z.string().nullable().optional(),
    logo: z.string().nullable().optional(),
    certificateManagement: variant('Manual', 'Automatic'),
    dkimManagement: variant('Automatic', 'Manual'),
    dnsManagement: variant('Manual', 'Automatic'),
    memberTenantId: z.string().nullable().optional(),
    directoryId: z.string().nullable().optional(),
    catchAllAddress: z.string().nullable().optional(),
    subAddressing: variant('Enabled', 'Custom', 'Disabled'),
    allowRelaying: z.boolean().optional(),
    reportAddressUri: z.string().nullable().optional(),
  })
  .strict();

// docs/ref/object/account.md, @type "User"
const credential = z.discriminatedUnion('@type', [
  z
    .object({
      '@type': z.literal('Password'),
      secret: z.string().min(1),
      otpAuth: z.string().nullable().optional(),
      expiresAt: z.string().nullable().optional(),
      allowedIps: z.array(z.string()).optional(),
    })
    .strict(),
  z.object({ '@type': z.enum(['AppPassword', 'ApiKey']), description: z.string() }).loose(),
]);

export const accountCreate = z
  .object({
    '@type': z.literal('User'),
    name: z.string().regex(/^[^@\s]+$/, 'an email local part'),
    domainId: z.string().min(1),
    credentials: z.array(credential).optional(),
    memberGroupIds: z.array(z.string()).optional(),
    memberTenantId: z.string().nullable().optional(),
    roles: variant('User', 'Admin', 'Custom'),
    permissions: variant('Inherit', 'Merge', 'Replace'),
    quotas: z.record(z.string(), z.number()).optional(),
    aliases: z.array(z.object({ name: z.string(), domainId: z.string() }).loose()).optional(),
    description: z.string().nullable().optional(),
    locale: z.string().optional(),
    timeZone: z.string().nullable().optional(),
    encryptionAtRest: variant('Disabled', 'Aes128', 'Aes256'),
  })
  .strict();

export const accountUpdate = accountCreate.omit({ '@type': true }).partial().strict();

// docs/ref/object/dkim-signature.md
export const dkimCreate = z
  .object({
    '@type': z.enum(['Dkim1Ed25519Sha256', 'Dkim1RsaSha256']),
    auid: z.string().nullable().optional(),
    canonicalization: z.enum(['relaxed/relaxed', 'simple/simple', 'relaxed/simple', 'simple/relaxed']).optional(),
    expire: z.union([z.string(), z.number()]).nullable().optional(),
    headers: z.array(z.string()).optional(),
    privateKey: z.discriminatedUnion('@type', [
      z.object({ '@type': z.literal('Text'), secret: z.string().min(1) }).strict(),
      z.object({ '@type': z.literal('EnvironmentVariable'), variableName: z.string() }).strict(),
      z.object({ '@type': z.literal('File'), filePath: z.string() }).strict(),
    ]),
    report: z.boolean().optional(),
    thirdParty: z.string().nullable().optional(),
    thirdPartyHash: z.enum(['sha256', 'sha1']).nullable().optional(),
    domainId: z.string().min(1),
    memberTenantId: z.string().nullable().optional(),
    selector: z.string().min(1),
    nextTransitionAt: z.string().nullable().optional(),
    stage: z.enum(['active', 'pending', 'retiring', 'retired']).optional(),
  })
  .strict();

const setArgs = (create: z.ZodType, update: z.ZodType = z.record(z.string(), z.unknown())) =>
  z
    .object({
      create: z.record(z.string(), create).optional(),
      update: z.record(z.string(), update).optional(),
      destroy: z.array(z.string()).optional(),
    })
    .strict();

export const jmapMethods: Record<string, z.ZodType> = {
  'x:Domain/query': z
    .object({ filter: z.object({ text: z.string(), name: z.string(), memberTenantId: z.string() }).partial().strict() })
    .strict(),
  'x:Domain/set': setArgs(domainCreate),
  'x:Account/set': setArgs(accountCreate, accountUpdate),
  'x:DkimSignature/query': z
    .object({ filter: z.object({ domainId: z.string(), memberTenantId: z.string() }).partial().strict() })
    .strict(),
  'x:DkimSignature/get': z.object({ ids: z.array(z.string()), properties: z.array(z.string()).optional() }).strict(),
  'x:DkimSignature/set': setArgs(dkimCreate),
};

export const jmapRequest = z
  .object({
    using: z
      .array(z.string())
      .refine((u) => u.includes('urn:ietf:params:jmap:core') && u.includes('urn:stalwart:jmap'), {
        message: 'must use urn:ietf:params:jmap:core and urn:stalwart:jmap',
      }),
    methodCalls: z.array(z.tuple([z.string(), z.record(z.string(), z.unknown()), z.string()])),
  })
  .strict();

// docs/api/management/endpoints.md
export const restPrincipalCreate = z
  .object({
    type: z.enum([
      'individual',
      'group',
      'domain',
      'list',
      'role',
      'tenant',
      'resource',
      'location',
      'apiKey',
      'oauthClient',
    ]),
    name: z.string().min(1),
    quota: z.number().optional(),
    description: z.string().optional(),
    secrets: z.array(z.string()).optional(),
    emails: z.array(z.string()).optional(),
    urls: z.array(z.string()).optional(),
    memberOf: z.array(z.string()).optional(),
    roles: z.array(z.string()).optional(),
    lists: z.array(z.string()).optional(),
    members: z.array(z.string()).optional(),
    enabledPermissions: z.array(z.string()).optional(),
    disabledPermissions: z.array(z.string()).optional(),
    externalMembers: z.array(z.string()).optional(),
  })
  .strict();

export const restPrincipalPatch = z.array(
  z.object({ action: z.enum(['set', 'addItem', 'removeItem']), field: z.string(), value: z.unknown() }).strict(),
);

export const restSettings = z.array(
  z.discriminatedUnion('type', [
    z.object({ type: z.literal('clear'), prefix: z.string() }).strict(),
    z
      .object({
        type: z.literal('insert'),
        prefix: z.string().nullable(),
        values: z.array(z.tuple([z.string(), z.string()])),
        assert_empty: z.boolean(),
      })
      .strict(),
    z.object({ type: z.literal('delete'), keys: z.array(z.string()) }).strict(),
  ]),
);

export interface ContractServer {
  url: string;
  /** Every request received, with the method name (JMAP) or route (REST). */
  calls: { call: string; args: unknown }[];
  state: {
    domains: Map<string, { id: string; name: string }>;
    accounts: Map<string, { id: string; name: string; domainId?: string; password?: string }>;
    dkim: Map<string, { id: string; domainId: string; selector: string }>;
    settings: Map<string, string>;
  };
  close(): Promise<void>;
}

/** A server speaking the documented v0.16 JMAP management (`flavour: 'jmap'`) or the older REST API. */
export async function startStalwartContract({
  flavour,
  adminAuthorization,
}: {
  flavour: 'jmap' | 'rest';
  adminAuthorization: string;
}): Promise<ContractServer> {
  const calls: ContractServer['calls'] = [];
  const state: ContractServer['state'] = {
    domains: new Map(),
    accounts: new Map(),
    dkim: new Map(),
    settings: new Map(),
  };
  let next = 1;
  const id = () => `i${next++}`;

  const jmap = (name: string, args: Record<string, unknown>): [string, Record<string, unknown>] => {
    const schema = jmapMethods[name];
    if (!schema) return ['error', { type: 'unknownMethod' }];
    const parsed = schema.safeParse(args);
    if (!parsed.success) return ['error', { type: 'invalidArguments', description: parsed.error.message }];
    calls.push({ call: name, args });
    const a = args as {
      filter?: Record<string, string>;
      create?: Record<string, any>;
      update?: Record<string, any>;
      destroy?: string[];
      ids?: string[];
    };
    if (name === 'x:Domain/query') {
      return [
        name,
        {
          ids: [...state.domains.values()].filter((d) => !a.filter?.name || d.name === a.filter.name).map((d) => d.id),
        },
      ];
    }
    if (name === 'x:DkimSignature/query') {
      return [
        name,
        { ids: [...state.dkim.values()].filter((k) => k.domainId === a.filter?.domainId).map((k) => k.id) },
      ];
    }
    if (name === 'x:DkimSignature/get') {
      return [
        name,
        { list: (a.ids ?? []).flatMap((i) => (state.dkim.has(i) ? [state.dkim.get(i)] : [])), notFound: [] },
      ];
    }
    const store = name === 'x:Domain/set' ? state.domains : name === 'x:Account/set' ? state.accounts : state.dkim;
    const created: Record<string, { id: string }> = {};
    const updated: Record<string, null> = {};
    const destroyed: string[] = [];
    const notUpdated: Record<string, unknown> = {};
    const notDestroyed: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(a.create ?? {})) {
      const record = { id: id(), ...value };
      store.set(record.id, record);
      created[key] = { id: record.id };
    }
    for (const [key, value] of Object.entries(a.update ?? {})) {
      const existing = store.get(key);
      if (!existing) notUpdated[key] = { type: 'notFound' };
      else {
        store.set(key, { ...existing, ...value });
        updated[key] = null;
      }
    }
    for (const key of a.destroy ?? []) {
      if (store.delete(key)) destroyed.push(key);
      else notDestroyed[key] = { type: 'notFound' };
    }
    return [name, { created, updated, destroyed, notUpdated, notDestroyed, newState: String(next) }];
  };

  const rest = (method: string, path: string, body: unknown): { status: number; json: unknown } => {
    const route = `${method} ${path.replace(/^\/api\/principal\/[^/]+$/, '/api/principal/{name}')}`;
    const schema =
      route === 'POST /api/principal'
        ? restPrincipalCreate
        : route === 'PATCH /api/principal/{name}'
          ? restPrincipalPatch
          : route === 'POST /api/settings'
            ? restSettings
            : route === 'DELETE /api/principal/{name}'
              ? z.undefined()
              : undefined;
    if (!schema) return { status: 404, json: { type: 'about:blank', status: 404, title: 'Not Found' } };
    const parsed = schema.safeParse(body);
    if (!parsed.success)
      return {
        status: 400,
        json: { type: 'about:blank', status: 400, title: 'Invalid parameters', detail: parsed.error.message },
      };
    calls.push({ call: route, args: body });
    const name = decodeURIComponent(path.split('/').pop() ?? '');
    if (route === 'POST /api/principal') {
      const b = body as z.infer<typeof restPrincipalCreate>;
      const map = b.type === 'domain' ? state.domains : state.accounts;
      if ([...map.values()].some((p) => p.name === b.name)) {
        // The error shape is the documented `{error, details}` body with HTTP 200; the code is Stalwart's.
        return { status: 200, json: { error: 'fieldAlreadyExists', field: 'name', value: b.name } };
      }
      const record = { id: id(), name: b.name, password: b.secrets?.[0] };
      map.set(record.id, record);
      return { status: 200, json: { data: Number(record.id.slice(1)) } };
    }
    if (route === 'PATCH /api/principal/{name}') {
      const account = [...state.accounts.values()].find((p) => p.name === name);
      if (!account) return { status: 404, json: { error: 'notFound', item: name } };
      for (const op of body as z.infer<typeof restPrincipalPatch>)
        if (op.field === 'secrets') account.password = (op.value as string[])[0];
      return { status: 200, json: { data: null } };
    }
    if (route === 'DELETE /api/principal/{name}') {
      for (const map of [state.accounts, state.domains]) {
        for (const [key, p] of map) if (p.name === name) map.delete(key);
      }
      return { status: 200, json: { data: null } };
    }
    for (const op of body as z.infer<typeof restSettings>) {
      if (op.type === 'clear')
        for (const key of [...state.settings.keys()]) if (key.startsWith(op.prefix)) state.settings.delete(key);
      if (op.type === 'insert') for (const [k, v] of op.values) state.settings.set(`${op.prefix}.${k}`, v);
    }
    return { status: 200, json: { data: null } };
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, json: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(json));
      };
      if (req.headers.authorization !== adminAuthorization) {
        return send(401, {
          type: 'about:blank',
          status: 401,
          title: 'Unauthorized',
          detail: 'You have to authenticate first.',
        });
      }
      const text = Buffer.concat(chunks).toString();
      const body = text ? JSON.parse(text) : undefined;
      const url = new URL(req.url ?? '/', 'http://x');
      if (req.method === 'GET' && url.pathname === '/.well-known/jmap') {
        res.writeHead(307, { location: '/jmap/session' });
        return res.end();
      }
      if (req.method === 'GET' && url.pathname === '/jmap/session') {
        return send(200, {
          capabilities: {
            'urn:ietf:params:jmap:core': {},
            'urn:ietf:params:jmap:mail': {},
            ...(flavour === 'jmap' ? { 'urn:stalwart:jmap': {} } : {}),
          },
          accounts: {},
          primaryAccounts: {},
          username: 'admin',
          apiUrl: '/jmap/',
          downloadUrl: '/jmap/download/{accountId}/{blobId}/{name}?accept={type}',
          uploadUrl: '/jmap/upload/{accountId}/',
          eventSourceUrl: '/jmap/eventsource/?types={types}&closeafter={closeafter}&ping={ping}',
          state: '1',
        });
      }
      if (req.method === 'POST' && url.pathname === '/jmap/' && flavour === 'jmap') {
        const parsed = jmapRequest.safeParse(body);
        if (!parsed.success)
          return send(400, {
            type: 'urn:ietf:params:jmap:error:notRequest',
            status: 400,
            detail: parsed.error.message,
          });
        return send(200, {
          methodResponses: parsed.data.methodCalls.map(([name, args, tag]) => [...jmap(name, args), tag]),
          sessionState: '1',
        });
      }
      if (url.pathname.startsWith('/api/') && flavour === 'rest') {
        const out = rest(req.method ?? 'GET', url.pathname, body);
        return send(out.status, out.json);
      }
      send(404, { type: 'about:blank', status: 404, title: 'Not Found' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    calls,
    state,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
