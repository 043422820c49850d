import type { Metadata } from 'next';
import { redirect } from 'next/navigation';
import { AuthForm } from '@/components/auth-form';
import { AuthShell } from '@/components/auth-page';
import { safeNext } from '@/lib/auth-client';
import { getAccount, getAuthProviders } from '@/lib/server-api';

export const metadata: Metadata = { title: 'Sign in', robots: { index: false } };

export default async function SignInPage({
  searchParams,
}: {
  searchParams: Promise<{ next?: string; error?: string }>;
}) {
  const { next, error } = await searchParams;
  if (await getAccount()) redirect(safeNext(next));
  const providers = await getAuthProviders();
  return (
    <AuthShell title="Welcome back" subtitle="Sign in to talk to your agents.">
      {error ? (
        <p role="alert" className="mb-4 rounded-lg border border-danger/40 bg-danger/10 px-3 py-2 text-sm text-danger">
          {error === 'oauth' ? 'That sign-in did not complete. Try again, or use your email and password.' : error}
        </p>
      ) : null}
      <AuthForm mode="signin" providers={providers} next={safeNext(next)} />
    </AuthShell>
  );
}
