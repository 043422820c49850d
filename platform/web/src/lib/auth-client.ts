import { errorMessage } from './chat-events';

/** Browser calls to Better Auth through the web app's /api proxy (same origin, cookie set by the answer). */

export interface AuthResult<T = unknown> {
  ok: boolean;
  status: number;
  body: T | null;
  error?: string;
}

async function post<T>(path: string, body: unknown): Promise<AuthResult<T>> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    return {
      ok: false,
      status: 0,
      body: null,
      error: 'Could not reach the server. Check your connection and try again.',
    };
  }
  const json = (await res.json().catch(() => null)) as T | null;
  if (res.ok) return { ok: true, status: res.status, body: json };
  return { ok: false, status: res.status, body: json, error: describeAuthError(res, json) };
}

export function describeAuthError(res: Response, body: unknown): string {
  if (res.status === 429) {
    const wait = res.headers.get('retry-after');
    return `Too many attempts. Try again${wait ? ` in ${wait} s` : ' in a minute'}.`;
  }
  const { code, message } = errorMessage(body, `Something went wrong (HTTP ${res.status}).`);
  const known: Record<string, string> = {
    INVALID_EMAIL_OR_PASSWORD: 'Wrong email or password.',
    USER_ALREADY_EXISTS: 'An account with this email already exists. Sign in instead.',
    USER_ALREADY_EXISTS_USE_ANOTHER_EMAIL: 'An account with this email already exists. Sign in instead.',
    PASSWORD_TOO_SHORT: 'The password must be at least 8 characters.',
    PASSWORD_TOO_LONG: 'The password must be at most 128 characters.',
    INVALID_EMAIL: 'That does not look like an email address.',
    INVALID_CODE: 'That code is not right (or it expired). Enter the current 6-digit code.',
    INVALID_TWO_FACTOR_COOKIE: 'The sign-in took too long. Start again with your email and password.',
    account_banned: `This account is banned. ${message}`,
    account_suspended: 'This account is suspended.',
  };
  return known[code] ?? message;
}

export const signUpEmail = (input: { name: string; email: string; password: string }) =>
  post<{ token?: string; user?: { id: string } }>('/api/auth/sign-up/email', { ...input, callbackURL: '/dashboard' });

export const signInEmail = (input: { email: string; password: string; rememberMe?: boolean }) =>
  post<{ twoFactorRedirect?: boolean; redirect?: boolean; url?: string }>('/api/auth/sign-in/email', input);

export const verifyTotp = (input: { code: string; trustDevice?: boolean }) =>
  post('/api/auth/two-factor/verify-totp', input);

export const signInSocial = (provider: string, callbackURL: string) =>
  post<{ url?: string; redirect?: boolean }>('/api/auth/sign-in/social', {
    provider,
    callbackURL,
    errorCallbackURL: '/signin?error=oauth',
    newUserCallbackURL: callbackURL,
  });

export const signInOidc = (providerId: string, callbackURL: string) =>
  post<{ url?: string; redirect?: boolean }>('/api/auth/sign-in/oauth2', {
    providerId,
    callbackURL,
    errorCallbackURL: '/signin?error=oauth',
  });

export const signOut = () => post('/api/auth/sign-out', {});

/** Only paths inside this site (never `//host` or a scheme) may be a post-sign-in destination. */
export function safeNext(next: string | null | undefined, fallback = '/dashboard/chat'): string {
  if (!next?.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return fallback;
  return next;
}
