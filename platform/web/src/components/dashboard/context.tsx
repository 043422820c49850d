'use client';

import { createContext, type ReactNode, useCallback, useContext, useMemo, useState } from 'react';
import type { Account } from '@/lib/server-api';

interface DashboardState {
  account: Account;
  /** Live credit balance in micro-dollars (decimal string). */
  balanceMicros: string;
  setBalanceMicros: (micros: string) => void;
  /** Re-reads the balance from GET /api/credits (after a stopped run, which sends no `done`). */
  refreshBalance: () => Promise<void>;
  topUpUrl: string | undefined;
}

const DashboardContext = createContext<DashboardState | undefined>(undefined);

export function DashboardProvider({
  account,
  topUpUrl,
  children,
}: {
  account: Account;
  topUpUrl: string | undefined;
  children: ReactNode;
}) {
  const [balanceMicros, setBalanceMicros] = useState(account.tenant.credits.balanceMicros);
  const refreshBalance = useCallback(async () => {
    const res = await fetch('/api/credits', { cache: 'no-store' }).catch(() => undefined);
    if (!res?.ok) return;
    const body = (await res.json()) as { balanceMicros?: string };
    if (typeof body.balanceMicros === 'string') setBalanceMicros(body.balanceMicros);
  }, []);
  const value = useMemo(
    () => ({ account, balanceMicros, setBalanceMicros, refreshBalance, topUpUrl }),
    [account, balanceMicros, refreshBalance, topUpUrl],
  );
  return <DashboardContext.Provider value={value}>{children}</DashboardContext.Provider>;
}

export function useDashboard(): DashboardState {
  const state = useContext(DashboardContext);
  if (!state) throw new Error('useDashboard outside DashboardProvider');
  return state;
}
