import type { Metadata } from 'next';
import { redirect } from 'next/navigation';
import { AuthForm } from '@/components/auth-form';
import { AuthShell } from '@/components/auth-page';
import { getAccount, getAuthProviders } from '@/lib/server-api';

export const metadata: Metadata = {
  title: 'Create your account',
  description: 'Sign up for AgentSquads: your own AI agent in a private sandbox, with free credit to start.',
};

export default async function SignUpPage() {
  if (await getAccount()) redirect('/dashboard/chat');
  const providers = await getAuthProviders();
  return (
    <AuthShell title="Create your account" subtitle="Your own agent, in its own sandbox. Free credit to start.">
      <AuthForm mode="signup" providers={providers} />
    </AuthShell>
  );
}
