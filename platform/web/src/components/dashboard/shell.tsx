'use client';

import Link from 'next/link';
import { usePathname } from 'next/navigation';
import { type ReactNode, useEffect, useRef, useState } from 'react';
import { Logo } from '@/components/logo';
import { signOut } from '@/lib/auth-client';
import { formatDollars, parseMicros } from '@/lib/money';
import { useDashboard } from './context';
import { DeleteAccountDialog } from './delete-account';

/** Only pages that exist are listed. */
const NAV = [
  { href: '/dashboard/chat', label: 'Chat' },
  { href: '/dashboard/account', label: 'Account' },
];

export function Balance() {
  const { balanceMicros } = useDashboard();
  const low = parseMicros(balanceMicros) <= 0n;
  return (
    <span
      data-testid="balance"
      data-balance-micros={balanceMicros}
      title="Credit balance"
      className={`rounded-full border px-3 py-1 font-mono text-xs sm:text-sm ${
        low ? 'border-danger/50 bg-danger/10 text-danger' : 'border-line bg-surface-2 text-ink'
      }`}
    >
      {formatDollars(balanceMicros)}
    </span>
  );
}

function AccountMenu() {
  const { account } = useDashboard();
  const [open, setOpen] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const menu = useRef<HTMLDivElement>(null);
  const pathname = usePathname();

  useEffect(() => {
    if (!open) return;
    const close = (event: MouseEvent | KeyboardEvent) => {
      if (event instanceof KeyboardEvent ? event.key === 'Escape' : !menu.current?.contains(event.target as Node)) {
        setOpen(false);
      }
    };
    document.addEventListener('mousedown', close);
    document.addEventListener('keydown', close);
    return () => {
      document.removeEventListener('mousedown', close);
      document.removeEventListener('keydown', close);
    };
  }, [open]);

  const initial = (account.user.name || account.user.email).trim().charAt(0).toUpperCase();

  return (
    <div ref={menu} className="relative">
      <button
        type="button"
        aria-haspopup="menu"
        aria-expanded={open}
        onClick={() => setOpen((v) => !v)}
        className="flex h-9 w-9 items-center justify-center rounded-full bg-gradient-to-br from-accent to-accent3 font-semibold text-white"
        data-testid="account-menu-button"
        aria-label="Account menu"
      >
        {initial}
      </button>
      {open ? (
        <div
          role="menu"
          className="absolute right-0 z-30 mt-2 w-64 overflow-hidden rounded-xl border border-line bg-surface shadow-2xl shadow-black/50"
          data-testid="account-menu"
        >
          <div className="border-b border-line px-4 py-3">
            <p className="truncate text-sm font-medium">{account.user.name}</p>
            <p className="truncate text-xs text-muted" data-testid="account-email">
              {account.user.email}
            </p>
          </div>
          <div className="py-1 sm:hidden">
            {NAV.map((item) => (
              <Link
                key={item.href}
                href={item.href}
                role="menuitem"
                onClick={() => setOpen(false)}
                className={`block px-4 py-2 text-sm hover:bg-surface-2 ${pathname?.startsWith(item.href) ? 'text-accent3' : ''}`}
              >
                {item.label}
              </Link>
            ))}
          </div>
          <div className="border-t border-line py-1 sm:border-t-0">
            <Link
              href="/dashboard/account"
              role="menuitem"
              onClick={() => setOpen(false)}
              className="hidden px-4 py-2 text-sm hover:bg-surface-2 sm:block"
            >
              Account settings
            </Link>
            <button
              type="button"
              role="menuitem"
              className="block w-full px-4 py-2 text-left text-sm hover:bg-surface-2"
              data-testid="sign-out"
              onClick={async () => {
                await signOut();
                window.location.assign('/signin');
              }}
            >
              Sign out
            </button>
            <button
              type="button"
              role="menuitem"
              className="block w-full px-4 py-2 text-left text-sm text-danger hover:bg-danger/10"
              data-testid="delete-account"
              onClick={() => {
                setOpen(false);
                setDeleting(true);
              }}
            >
              Delete account…
            </button>
          </div>
        </div>
      ) : null}
      {deleting ? <DeleteAccountDialog email={account.user.email} onClose={() => setDeleting(false)} /> : null}
    </div>
  );
}

export function DashboardShell({ children }: { children: ReactNode }) {
  const pathname = usePathname();
  const { account } = useDashboard();
  return (
    <div className="flex h-dvh flex-col">
      <header className="z-20 flex h-14 shrink-0 items-center justify-between gap-3 border-b border-line bg-bg/90 px-3 backdrop-blur sm:px-5">
        <div className="flex min-w-0 items-center gap-6">
          <Logo href="/dashboard/chat" />
          <nav className="hidden items-center gap-1 sm:flex" aria-label="Dashboard">
            {NAV.map((item) => {
              const active = pathname?.startsWith(item.href);
              return (
                <Link
                  key={item.href}
                  href={item.href}
                  aria-current={active ? 'page' : undefined}
                  className={`rounded-lg px-3 py-1.5 text-sm ${active ? 'bg-surface-2 text-ink' : 'text-muted hover:text-ink'}`}
                >
                  {item.label}
                </Link>
              );
            })}
          </nav>
        </div>
        <div className="flex items-center gap-2 sm:gap-3">
          {account.impersonatedBy ? (
            <span className="hidden rounded-full bg-warn/15 px-2 py-0.5 text-xs text-warn sm:inline">
              impersonating
            </span>
          ) : null}
          <Balance />
          <AccountMenu />
        </div>
      </header>
      <div className="min-h-0 flex-1">{children}</div>
    </div>
  );
}
