'use client';

import { useState } from 'react';
import { formatDollars } from '@/lib/money';
import { useDashboard } from './context';
import { DeleteAccountDialog } from './delete-account';

export function AccountPanel() {
  const { account, balanceMicros, topUpUrl } = useDashboard();
  const [deleting, setDeleting] = useState(false);
  const rows: [string, string][] = [
    ['Name', account.user.name],
    ['Email', account.user.email],
    ['Two-factor authentication', account.user.twoFactorEnabled ? 'On (authenticator app)' : 'Off'],
    ['Account status', account.tenant.status],
    ['Credit balance', formatDollars(balanceMicros)],
  ];
  return (
    <div className="mx-auto max-w-2xl space-y-8 px-4 py-8 sm:px-6">
      <section>
        <h1 className="text-2xl font-semibold tracking-tight">Account</h1>
        <dl className="mt-6 divide-y divide-line rounded-2xl border border-line bg-surface">
          {rows.map(([label, value]) => (
            <div key={label} className="flex flex-col gap-1 px-5 py-3 sm:flex-row sm:justify-between">
              <dt className="text-sm text-muted">{label}</dt>
              <dd className="text-sm break-all">{value}</dd>
            </div>
          ))}
        </dl>
        {topUpUrl ? (
          <a
            href={topUpUrl}
            className="mt-4 inline-block rounded-lg bg-accent px-4 py-2 text-sm font-medium text-white"
          >
            Top up credits
          </a>
        ) : null}
      </section>
      <section className="rounded-2xl border border-danger/40 p-5">
        <h2 className="font-semibold text-danger">Delete account</h2>
        <p className="mt-1 text-sm text-muted">
          Removes your agent, workspace, conversations, keys and remaining credit. This cannot be undone.
        </p>
        <button
          type="button"
          onClick={() => setDeleting(true)}
          className="mt-4 rounded-lg border border-danger/60 px-4 py-2 text-sm text-danger hover:bg-danger/10"
        >
          Delete my account…
        </button>
      </section>
      {deleting ? <DeleteAccountDialog email={account.user.email} onClose={() => setDeleting(false)} /> : null}
    </div>
  );
}
