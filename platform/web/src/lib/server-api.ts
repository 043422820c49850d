import { headers } from 'next/headers';
import type { ModelPrice } from './money';

/** The platform API the web app proxies `/api/*` to (`start` passes it; default the platform API's port). */
export const apiBase = () => (process.env.PLATFORM_API_URL ?? 'http://127.0.0.1:3001').replace(/\/+$/, '');

export interface Account {
  user: { id: string; name: string; email: string; role: string; twoFactorEnabled: boolean; image: string | null };
  impersonatedBy: string | null;
  tenant: {
    id: string;
    status: string;
    statusReason: string | null;
    credits: { balance: string; balanceMicros: string; freeCreditUsed: boolean };
  };
}

/** Server-side call to the platform API as the signed-in browser (its cookie), never cached. */
async function asUser(path: string): Promise<Response> {
  const incoming = await headers();
  return fetch(`${apiBase()}${path}`, {
    headers: {
      cookie: incoming.get('cookie') ?? '',
      accept: 'application/json',
      ...(incoming.get('x-forwarded-for') ? { 'x-forwarded-for': incoming.get('x-forwarded-for') as string } : {}),
    },
    cache: 'no-store',
    signal: AbortSignal.timeout(10_000),
  });
}

/** The signed-in account, or undefined when there is no valid session (or the tenant may not act). */
export async function getAccount(): Promise<Account | undefined> {
  const incoming = await headers();
  if (!incoming.get('cookie')) return undefined;
  const res = await asUser('/api/account').catch(() => undefined);
  if (!res?.ok) return undefined;
  return (await res.json()) as Account;
}

export interface ConversationSummary {
  id: string;
  title: string;
  updatedAt?: string;
  createdAt?: string;
}

export async function getConversations(): Promise<ConversationSummary[]> {
  const res = await asUser('/api/conversations?limit=100').catch(() => undefined);
  if (!res?.ok) return [];
  const body = (await res.json()) as { items?: ConversationSummary[] };
  return body.items ?? [];
}

export interface AuthProviders {
  emailPassword: boolean;
  twoFactor: string[];
  social: string[];
  oidc?: { id: string; name: string };
}

let providersCache: { at: number; value: AuthProviders } | undefined;
export async function getAuthProviders(): Promise<AuthProviders> {
  if (providersCache && Date.now() - providersCache.at < 30_000) return providersCache.value;
  try {
    const res = await fetch(`${apiBase()}/api/public/auth-providers`, {
      cache: 'no-store',
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(String(res.status));
    const value = (await res.json()) as AuthProviders;
    providersCache = { at: Date.now(), value };
    return value;
  } catch {
    return { emailPassword: true, twoFactor: ['totp'], social: [] };
  }
}

let modelsCache: { at: number; value: ModelPrice[] } | undefined;
/** The public price list (cached for a minute like the API's own Cache-Control); empty when unreachable. */
export async function getPublicModels(): Promise<ModelPrice[]> {
  if (modelsCache && Date.now() - modelsCache.at < 60_000) return modelsCache.value;
  try {
    const res = await fetch(`${apiBase()}/api/public/models`, {
      cache: 'no-store',
      signal: AbortSignal.timeout(5_000),
    });
    if (!res.ok) throw new Error(String(res.status));
    const value = ((await res.json()) as { items: ModelPrice[] }).items;
    modelsCache = { at: Date.now(), value };
    return value;
  } catch {
    return [];
  }
}
