'use client';

import { type FormEvent, useEffect, useRef, useState } from 'react';
import { describeAuthError } from '@/lib/auth-client';

/** Deleting the account: type the email to confirm → DELETE /api/account → back to the landing page. */
export function DeleteAccountDialog({ email, onClose }: { email: string; onClose: () => void }) {
  const [typed, setTyped] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    dialog.current?.showModal();
  }, []);
  const matches = typed.trim().toLowerCase() === email.toLowerCase();

  async function onSubmit(event: FormEvent) {
    event.preventDefault();
    if (!matches) return;
    setBusy(true);
    setError(undefined);
    try {
      const res = await fetch('/api/account', {
        method: 'DELETE',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ confirm: typed.trim() }),
      });
      if (!res.ok) {
        setError(describeAuthError(res, await res.json().catch(() => null)));
        return;
      }
      window.location.assign('/?deleted=1');
    } catch {
      setError('Could not reach the server. Nothing was deleted.');
    } finally {
      setBusy(false);
    }
  }

  return (
    <dialog
      ref={dialog}
      onClose={onClose}
      className="m-auto w-[min(28rem,calc(100vw-2rem))] rounded-2xl border border-line bg-surface p-0 text-ink backdrop:bg-black/70"
      data-testid="delete-account-dialog"
    >
      <form onSubmit={onSubmit} className="space-y-4 p-6">
        <h2 className="text-lg font-semibold text-danger">Delete your account?</h2>
        <p className="text-sm text-muted">
          This removes your agent, its workspace and files, every conversation, your API keys and your remaining credit.
          It cannot be undone.
        </p>
        <label className="block space-y-1.5">
          <span className="text-sm text-muted">
            Type <span className="font-mono text-ink">{email}</span> to confirm
          </span>
          <input
            value={typed}
            onChange={(e) => setTyped(e.target.value)}
            autoComplete="off"
            className="w-full rounded-lg border border-line bg-surface-2 px-3 py-2 focus:border-danger focus:outline-none"
            data-testid="delete-confirm-input"
          />
        </label>
        {error ? (
          <p role="alert" className="text-sm text-danger">
            {error}
          </p>
        ) : null}
        <div className="flex justify-end gap-2">
          <button
            type="button"
            onClick={onClose}
            className="rounded-lg border border-line px-4 py-2 text-sm hover:border-accent"
          >
            Cancel
          </button>
          <button
            type="submit"
            disabled={!matches || busy}
            className="rounded-lg bg-danger px-4 py-2 text-sm font-medium text-white disabled:opacity-50"
            data-testid="delete-confirm-button"
          >
            {busy ? 'Deleting…' : 'Delete my account'}
          </button>
        </div>
      </form>
    </dialog>
  );
}
