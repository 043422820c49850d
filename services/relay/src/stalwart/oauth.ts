import { randomBytes } from 'node:crypto';
import type { Credential } from '../jmap/credentials.js';

/**
 * Bearer tokens for one Stalwart account, obtained with the account's own password and refreshed with the
 * refresh token. Stalwart's documented flow (docs/api/management/endpoints.md, "Obtain OAuth token"):
 * `POST /api/oauth` authenticated as the account with `{type: "code", client_id, redirect_uri, nonce}` answers
 * `{data: {code}}`; the code is exchanged at the OAuth token endpoint (`/auth/token`, RFC 6749 §4.1.3), and
 * later tokens come from the `refresh_token` grant (RFC 6749 §6).
 */
export interface OAuthTokens {
  accessToken: string;
  refreshToken?: string | undefined;
  expiresAt?: number | undefined;
}

const CLIENT_ID = 'relay.sh';
const REDIRECT_URI = 'stalwart://auth';

async function tokenRequest(
  baseUrl: string,
  form: Record<string, string>,
  fetchImpl: typeof fetch,
): Promise<OAuthTokens> {
  const res = await fetchImpl(new URL('/auth/token', baseUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(form).toString(),
    signal: AbortSignal.timeout(30_000),
  });
  const json = (await res.json().catch(() => ({}))) as {
    access_token?: string;
    refresh_token?: string;
    expires_in?: number;
    error?: string;
  };
  if (!res.ok || !json.access_token) throw new Error(`token endpoint refused: ${json.error ?? `HTTP ${res.status}`}`);
  return {
    accessToken: json.access_token,
    refreshToken: json.refresh_token,
    expiresAt: json.expires_in ? Date.now() + json.expires_in * 1000 : undefined,
  };
}

export async function obtainTokens(
  baseUrl: string,
  basicAuthorization: string,
  fetchImpl: typeof fetch = fetch,
): Promise<OAuthTokens> {
  const res = await fetchImpl(new URL('/api/oauth', baseUrl), {
    method: 'POST',
    headers: { authorization: basicAuthorization, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({
      type: 'code',
      client_id: CLIENT_ID,
      redirect_uri: REDIRECT_URI,
      nonce: randomBytes(8).toString('hex'),
    }),
    signal: AbortSignal.timeout(30_000),
  });
  const json = (await res.json().catch(() => ({}))) as { data?: { code?: string } };
  const code = json.data?.code;
  if (!res.ok || !code) throw new Error(`Stalwart refused an authorization code (HTTP ${res.status})`);
  return tokenRequest(
    baseUrl,
    { grant_type: 'authorization_code', code, client_id: CLIENT_ID, redirect_uri: REDIRECT_URI },
    fetchImpl,
  );
}

export function refreshTokens(
  baseUrl: string,
  refreshToken: string,
  fetchImpl: typeof fetch = fetch,
): Promise<OAuthTokens> {
  return tokenRequest(
    baseUrl,
    { grant_type: 'refresh_token', refresh_token: refreshToken, client_id: CLIENT_ID },
    fetchImpl,
  );
}

export const bearer = (tokens: OAuthTokens): Credential => ({
  authorization: `Bearer ${tokens.accessToken}`,
  expiresAt: tokens.expiresAt,
});
