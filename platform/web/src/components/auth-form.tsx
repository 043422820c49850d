'use client';

import Link from 'next/link';
import { useRouter } from 'next/navigation';
import { type FormEvent, useState } from 'react';
import { safeNext, signInEmail, signInOidc, signInSocial, signUpEmail, verifyTotp } from '@/lib/auth-client';

export interface ProvidersProp {
  social: string[];
  oidc?: { id: string; name: string };
}

const PROVIDER_LABELS: Record<string, string> = {
  google: 'Google',
  github: 'GitHub',
  facebook: 'Facebook',
  twitter: 'X',
  linkedin: 'LinkedIn',
};

const inputClass =
  'w-full rounded-lg border border-line bg-surface-2 px-3 py-2.5 text-ink placeholder:text-muted/70 focus:border-accent focus:outline-none';
const buttonClass =
  'w-full rounded-lg bg-accent px-4 py-2.5 font-medium text-white transition hover:bg-accent-soft disabled:cursor-not-allowed disabled:opacity-60';

/** Email + password sign-up or sign-in, the configured OAuth providers, and the TOTP step when enrolled. */
export function AuthForm({
  mode,
  providers,
  next,
  compact = false,
  idPrefix = mode,
}: {
  mode: 'signin' | 'signup';
  providers: ProvidersProp;
  next?: string;
  compact?: boolean;
  idPrefix?: string;
}) {
  const router = useRouter();
  const destination = safeNext(next);
  const [step, setStep] = useState<'credentials' | 'totp'>('credentials');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);

  const arrive = () => {
    router.replace(destination);
    router.refresh();
  };

  async function onCredentials(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const email = String(data.get('email') ?? '').trim();
    const password = String(data.get('password') ?? '');
    setError(undefined);
    if (!email) return setError('Enter your email address.');
    if (password.length < 8) return setError('The password must be at least 8 characters.');
    setBusy(true);
    try {
      if (mode === 'signup') {
        const name = String(data.get('name') ?? '').trim() || email.split('@')[0] || 'New user';
        const result = await signUpEmail({ name, email, password });
        if (!result.ok) return setError(result.error);
        return arrive();
      }
      const result = await signInEmail({ email, password, rememberMe: data.get('remember') === 'on' });
      if (!result.ok) return setError(result.error);
      if (result.body?.twoFactorRedirect) {
        setStep('totp');
        return;
      }
      arrive();
    } finally {
      setBusy(false);
    }
  }

  async function onTotp(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const data = new FormData(event.currentTarget);
    const code = String(data.get('code') ?? '').replace(/\s+/g, '');
    setError(undefined);
    if (!/^\d{6}$/.test(code)) return setError('Enter the 6-digit code from your authenticator app.');
    setBusy(true);
    try {
      const result = await verifyTotp({ code, trustDevice: data.get('trust') === 'on' });
      if (!result.ok) return setError(result.error);
      arrive();
    } finally {
      setBusy(false);
    }
  }

  async function onProvider(id: string, kind: 'social' | 'oidc') {
    setError(undefined);
    setBusy(true);
    const result = kind === 'social' ? await signInSocial(id, destination) : await signInOidc(id, destination);
    if (result.ok && result.body?.url) {
      window.location.assign(result.body.url);
      return;
    }
    setBusy(false);
    setError(result.error ?? 'That sign-in method did not answer. Try again or use email.');
  }

  const errorBox = error ? (
    <p
      role="alert"
      data-testid="auth-error"
      className="rounded-lg border border-danger/40 bg-danger/10 px-3 py-2 text-sm text-danger"
    >
      {error}
    </p>
  ) : null;

  if (step === 'totp') {
    return (
      <form onSubmit={onTotp} className="space-y-4" data-testid="totp-form" noValidate>
        <div>
          <h2 className="text-lg font-semibold">Two-factor authentication</h2>
          <p className="mt-1 text-sm text-muted">Enter the 6-digit code from your authenticator app.</p>
        </div>
        <label className="block space-y-1.5">
          <span className="text-sm text-muted">Code</span>
          <input
            name="code"
            inputMode="numeric"
            autoComplete="one-time-code"
            pattern="[0-9]*"
            maxLength={8}
            // biome-ignore lint/a11y/noAutofocus: the only field of this step
            autoFocus
            className={`${inputClass} tracking-[0.4em]`}
            placeholder="123456"
          />
        </label>
        <label className="flex items-center gap-2 text-sm text-muted">
          <input type="checkbox" name="trust" className="accent-accent" /> Trust this device for 30 days
        </label>
        {errorBox}
        <button type="submit" className={buttonClass} disabled={busy}>
          {busy ? 'Checking…' : 'Verify'}
        </button>
        <button
          type="button"
          className="w-full text-sm text-muted hover:text-ink"
          onClick={() => {
            setStep('credentials');
            setError(undefined);
          }}
        >
          Back
        </button>
      </form>
    );
  }

  const oauth = [
    ...providers.social.map((id) => ({ id, label: PROVIDER_LABELS[id] ?? id, kind: 'social' as const })),
    ...(providers.oidc ? [{ id: providers.oidc.id, label: providers.oidc.name, kind: 'oidc' as const }] : []),
  ];

  return (
    <div className="space-y-5">
      {oauth.length > 0 && !compact ? (
        <>
          <div className="grid gap-2 sm:grid-cols-2" data-testid="oauth-buttons">
            {oauth.map((p) => (
              <button
                key={p.id}
                type="button"
                disabled={busy}
                onClick={() => onProvider(p.id, p.kind)}
                className="rounded-lg border border-line bg-surface-2 px-3 py-2.5 text-sm hover:border-accent disabled:opacity-60"
              >
                Continue with {p.label}
              </button>
            ))}
          </div>
          <div className="flex items-center gap-3 text-xs text-muted">
            <span className="h-px flex-1 bg-line" /> or with email <span className="h-px flex-1 bg-line" />
          </div>
        </>
      ) : null}
      <form onSubmit={onCredentials} className="space-y-4" data-testid={`${idPrefix}-form`} noValidate>
        {mode === 'signup' ? (
          <label className="block space-y-1.5">
            <span className="text-sm text-muted">Name</span>
            <input name="name" autoComplete="name" className={inputClass} placeholder="Ada Lovelace" />
          </label>
        ) : null}
        <label className="block space-y-1.5">
          <span className="text-sm text-muted">Email</span>
          <input
            name="email"
            type="email"
            autoComplete="email"
            required
            className={inputClass}
            placeholder="you@example.com"
          />
        </label>
        <label className="block space-y-1.5">
          <span className="text-sm text-muted">Password</span>
          <input
            name="password"
            type="password"
            autoComplete={mode === 'signup' ? 'new-password' : 'current-password'}
            required
            minLength={8}
            className={inputClass}
            placeholder={mode === 'signup' ? 'At least 8 characters' : '••••••••'}
          />
        </label>
        {mode === 'signin' ? (
          <label className="flex items-center gap-2 text-sm text-muted">
            <input type="checkbox" name="remember" defaultChecked className="accent-accent" /> Keep me signed in
          </label>
        ) : null}
        {errorBox}
        <button type="submit" className={buttonClass} disabled={busy}>
          {busy ? 'Please wait…' : mode === 'signup' ? 'Create account' : 'Sign in'}
        </button>
        <p className="text-center text-sm text-muted">
          {mode === 'signup' ? (
            <>
              Already have an account?{' '}
              <Link href="/signin" className="text-accent3 hover:underline">
                Sign in
              </Link>
            </>
          ) : (
            <>
              New here?{' '}
              <Link href="/signup" className="text-accent3 hover:underline">
                Create an account
              </Link>
            </>
          )}
        </p>
      </form>
    </div>
  );
}
