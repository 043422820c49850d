import type { Metadata } from 'next';
import { headers } from 'next/headers';
import { redirect } from 'next/navigation';
import type { ReactNode } from 'react';
import { DashboardProvider } from '@/components/dashboard/context';
import { DashboardShell } from '@/components/dashboard/shell';
import { getAccount } from '@/lib/server-api';

export const metadata: Metadata = { title: 'Dashboard', robots: { index: false, follow: false } };

/** Every dashboard page: a server-side session check against the platform API, then the shell. */
export default async function DashboardLayout({ children }: { children: ReactNode }) {
  const account = await getAccount();
  if (!account) {
    const path = (await headers()).get('x-pathname') ?? '/dashboard/chat';
    redirect(`/signin?next=${encodeURIComponent(path)}`);
  }
  return (
    <DashboardProvider account={account} topUpUrl={process.env.WEB_TOP_UP_URL || undefined}>
      <DashboardShell>{children}</DashboardShell>
    </DashboardProvider>
  );
}
