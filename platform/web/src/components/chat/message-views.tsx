'use client';

import { memo, useMemo } from 'react';
import type { AssistantItem, ToolPart, UserItem } from '@/lib/chat-model';
import { renderMarkdown } from '@/lib/markdown';
import { formatDollars } from '@/lib/money';

export const Markdown = memo(function Markdown({ text, streaming }: { text: string; streaming?: boolean }) {
  const html = useMemo(() => renderMarkdown(text), [text]);
  return (
    <div
      className={`md ${streaming ? 'caret' : ''}`}
      // biome-ignore lint/security/noDangerouslySetInnerHtml: renderMarkdown escapes raw HTML and unsafe links
      dangerouslySetInnerHTML={{ __html: html }}
    />
  );
});

function prettyArguments(args: string): string {
  try {
    return JSON.stringify(JSON.parse(args), null, 2);
  } catch {
    return args;
  }
}

function shortArguments(args: string): string {
  try {
    const parsed = JSON.parse(args) as Record<string, unknown>;
    const text = Object.entries(parsed)
      .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
      .join(', ');
    return text.length > 60 ? `${text.slice(0, 57)}…` : text;
  } catch {
    return args.length > 60 ? `${args.slice(0, 57)}…` : args;
  }
}

/** One tool call, compact: name, arguments and status on a line; arguments and output when opened. */
export function ToolActivity({ part, running }: { part: ToolPart; running: boolean }) {
  const state = part.result ? (part.result.isError ? 'failed' : 'done') : running ? 'running' : 'no result';
  return (
    <details className="group rounded-lg border border-line bg-surface-2/60 text-sm" data-testid="tool-activity">
      <summary className="flex cursor-pointer list-none items-center gap-2 px-3 py-1.5 text-muted select-none">
        <span aria-hidden className="transition group-open:rotate-90">
          ▸
        </span>
        <span className="font-mono text-accent3">{part.name || 'tool'}</span>
        <span className="min-w-0 flex-1 truncate font-mono text-xs">{shortArguments(part.arguments)}</span>
        <span
          className={`shrink-0 text-xs ${state === 'failed' ? 'text-danger' : state === 'running' ? 'text-warn' : 'text-muted'}`}
        >
          {state === 'running' ? 'running…' : state}
          {part.result?.ms !== undefined ? ` · ${Math.round(part.result.ms)} ms` : ''}
        </span>
      </summary>
      <div className="space-y-2 border-t border-line px-3 py-2">
        {part.arguments ? (
          <pre className="max-h-48 overflow-auto font-mono text-xs whitespace-pre-wrap text-muted">
            {prettyArguments(part.arguments)}
          </pre>
        ) : null}
        {part.result ? (
          <pre
            className={`max-h-64 overflow-auto font-mono text-xs whitespace-pre-wrap ${part.result.isError ? 'text-danger' : 'text-ink'}`}
          >
            {part.result.output || '(no output)'}
            {part.result.truncated ? '\n… (cut for display)' : ''}
          </pre>
        ) : null}
      </div>
    </details>
  );
}

export function PaperclipIcon({ small = false }: { small?: boolean }) {
  const size = small ? 12 : 18;
  return (
    <svg
      aria-hidden="true"
      width={size}
      height={size}
      viewBox="0 0 24 24"
      fill="none"
      stroke="currentColor"
      strokeWidth="2"
      strokeLinecap="round"
      strokeLinejoin="round"
      className="inline-block shrink-0"
    >
      <path d="m21.44 11.05-9.19 9.19a6 6 0 0 1-8.49-8.49l8.57-8.57A4 4 0 1 1 18 8.84l-8.59 8.57a2 2 0 0 1-2.83-2.83l8.49-8.48" />
    </svg>
  );
}

export function UserMessage({ item }: { item: UserItem }) {
  return (
    <div className="flex justify-end" data-testid="user-message">
      <div className="max-w-[85%] rounded-2xl rounded-br-md bg-accent/90 px-4 py-2.5 text-white">
        <p className="break-words whitespace-pre-wrap">{item.content}</p>
        {item.attachments.length > 0 ? (
          <ul className="mt-2 flex flex-wrap gap-1.5">
            {item.attachments.map((path) => (
              <li key={path} className="flex items-center gap-1 rounded-md bg-white/15 px-2 py-0.5 font-mono text-xs">
                <PaperclipIcon small /> {path}
              </li>
            ))}
          </ul>
        ) : null}
      </div>
    </div>
  );
}

export function AssistantMessage({ item, topUpUrl }: { item: AssistantItem; topUpUrl?: string | undefined }) {
  const streaming = item.status === 'streaming';
  const lastText = [...item.parts].reverse().find((p) => p.type === 'text');
  const empty = item.parts.length === 0;
  return (
    <div
      className="flex justify-start"
      data-testid="assistant-message"
      data-status={item.status}
      data-charged-micros={item.chargedMicros}
    >
      <div className="w-full max-w-[92%] min-w-0 space-y-2 sm:max-w-[85%]">
        {item.parts.map((part, i) =>
          part.type === 'text' ? (
            // biome-ignore lint/suspicious/noArrayIndexKey: parts only grow at the end
            <Markdown key={i} text={part.text} streaming={streaming && part === lastText} />
          ) : (
            <ToolActivity key={part.id || i} part={part} running={streaming} />
          ),
        )}
        {streaming && item.runtimeStarting ? (
          <p className="flex items-center gap-2 text-sm text-warn" data-testid="runtime-starting">
            <span className="h-2 w-2 animate-pulse rounded-full bg-warn" /> Your agent is starting — this takes a few
            seconds the first time…
          </p>
        ) : streaming && empty ? (
          <p
            className="flex items-center gap-1.5 text-muted"
            data-testid="thinking"
            role="status"
            aria-label="Thinking"
          >
            <span className="h-2 w-2 animate-bounce rounded-full bg-accent" />
            <span className="h-2 w-2 animate-bounce rounded-full bg-accent [animation-delay:120ms]" />
            <span className="h-2 w-2 animate-bounce rounded-full bg-accent [animation-delay:240ms]" />
          </p>
        ) : null}
        {item.status === 'stopped' ? <p className="text-xs text-muted">Stopped.</p> : null}
        {item.notice ? <p className="text-xs text-warn">{item.notice}</p> : null}
        {item.status === 'error' && item.error ? (
          item.error.code === 'credits_exhausted' ? (
            <CreditsExhausted topUpUrl={topUpUrl} />
          ) : (
            <p
              role="alert"
              className="rounded-lg border border-danger/40 bg-danger/10 px-3 py-2 text-sm text-danger"
              data-testid="chat-error"
            >
              {item.error.message}
            </p>
          )
        ) : null}
        {!streaming && (item.model || item.chargedMicros) ? (
          <p className="text-xs text-muted/80">
            {item.model ?? ''}
            {item.model && item.chargedMicros ? ' · ' : ''}
            {item.chargedMicros ? `${formatDollars(item.chargedMicros)} charged` : ''}
          </p>
        ) : null}
      </div>
    </div>
  );
}

export function CreditsExhausted({ topUpUrl }: { topUpUrl?: string | undefined }) {
  return (
    <div
      role="alert"
      className="rounded-xl border border-warn/40 bg-warn/10 px-4 py-3 text-sm"
      data-testid="credits-exhausted"
    >
      <p className="font-medium text-warn">Credits exhausted — top up to continue.</p>
      <p className="mt-1 text-muted">
        Your agent cannot call a model until your balance is above zero.
        {topUpUrl ? '' : ' Credit is added by an administrator of this installation.'}
      </p>
      {topUpUrl ? (
        <a href={topUpUrl} className="mt-3 inline-block rounded-lg bg-accent px-3 py-1.5 font-medium text-white">
          Top up credits
        </a>
      ) : null}
    </div>
  );
}
