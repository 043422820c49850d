'use client';

import { readSseJson } from '@agentsquads/runtime/events';
import { type ChangeEvent, type KeyboardEvent, useCallback, useEffect, useLayoutEffect, useRef, useState } from 'react';
import { useDashboard } from '@/components/dashboard/context';
import { asChatEvent, errorMessage } from '@/lib/chat-events';
import { type AssistantItem, applyEvent, type ChatItem, itemsFromHistory, type StoredMessage } from '@/lib/chat-model';
import { parseMicros } from '@/lib/money';
import type { ConversationSummary } from '@/lib/server-api';
import { AssistantMessage, CreditsExhausted, PaperclipIcon, UserMessage } from './message-views';

interface Attachment {
  path: string;
  size: number;
  name: string;
}

type Banner =
  | { kind: 'exhausted' }
  | { kind: 'error'; message: string }
  | { kind: 'runtime'; state: 'starting' | 'error' | 'stopped'; message?: string };

const NEAR_BOTTOM_PX = 80;

function chatUrl(id: string | undefined) {
  return id ? `/dashboard/chat?c=${encodeURIComponent(id)}` : '/dashboard/chat';
}

async function fetchHistory(id: string, signal: AbortSignal): Promise<StoredMessage[]> {
  const all: StoredMessage[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const res = await fetch(`/api/conversations/${encodeURIComponent(id)}/messages?${query}`, {
      signal,
      cache: 'no-store',
    });
    if (!res.ok) throw new Error(errorMessage(await res.json().catch(() => null), `HTTP ${res.status}`).message);
    const page = (await res.json()) as { items: StoredMessage[]; nextCursor: string | null };
    all.push(...page.items);
    cursor = page.nextCursor;
  } while (cursor && all.length < 2_000);
  return all;
}

export function Chat({
  initialConversations,
  initialId,
}: {
  initialConversations: ConversationSummary[];
  initialId: string | undefined;
}) {
  const { balanceMicros, setBalanceMicros, refreshBalance, topUpUrl } = useDashboard();
  const [conversations, setConversations] = useState(initialConversations);
  const [activeId, setActiveId] = useState<string | undefined>(initialId);
  const [items, setItems] = useState<ChatItem[]>([]);
  const [loadingHistory, setLoadingHistory] = useState(Boolean(initialId));
  const [input, setInput] = useState('');
  const [attachments, setAttachments] = useState<Attachment[]>([]);
  const [uploading, setUploading] = useState(0);
  const [streaming, setStreaming] = useState(false);
  const [banner, setBanner] = useState<Banner | undefined>(
    parseMicros(balanceMicros) <= 0n ? { kind: 'exhausted' } : undefined,
  );
  const [showList, setShowList] = useState(false);
  const [pinned, setPinned] = useState(true);
  const scroller = useRef<HTMLDivElement>(null);
  const textarea = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const abort = useRef<AbortController | undefined>(undefined);
  const pinnedRef = useRef(true);

  // ---- history ---------------------------------------------------------------------------------------
  // Loading follows the selected conversation only; a stream in progress already holds its items.
  // biome-ignore lint/correctness/useExhaustiveDependencies: deliberately not re-run when streaming ends
  useEffect(() => {
    if (!activeId || streaming) return;
    const controller = new AbortController();
    setLoadingHistory(true);
    fetchHistory(activeId, controller.signal)
      .then((messages) => {
        setItems(itemsFromHistory(messages));
        pinnedRef.current = true;
        setPinned(true);
      })
      .catch((err: Error) => {
        if (controller.signal.aborted) return;
        setItems([]);
        setBanner({ kind: 'error', message: `Could not load this conversation: ${err.message}` });
      })
      .finally(() => {
        if (!controller.signal.aborted) setLoadingHistory(false);
      });
    return () => controller.abort();
  }, [activeId]);

  // ---- runtime state before the first message --------------------------------------------------------
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      const res = await fetch('/api/runtime', { cache: 'no-store' }).catch(() => undefined);
      if (stopped || !res?.ok) return; // No runtime route (older API) or unreachable: nothing to show.
      const body = (await res.json().catch(() => ({}))) as {
        state?: string;
        backend?: string | null;
        message?: string;
      };
      if (body.state === 'none' && body.backend === null && body.message) {
        // This installation runs no agent runtimes at all: say so before the user types.
        setBanner((b) => (b?.kind === 'exhausted' ? b : { kind: 'runtime', state: 'error', message: body.message }));
      } else if (body.state === 'starting') {
        setBanner((b) => (b?.kind === 'exhausted' ? b : { kind: 'runtime', state: 'starting' }));
        timer = setTimeout(poll, 2_000);
      } else if (body.state === 'error') {
        setBanner((b) =>
          b?.kind === 'exhausted'
            ? b
            : { kind: 'runtime', state: 'error', ...(body.message ? { message: body.message } : {}) },
        );
      } else {
        setBanner((b) => (b?.kind === 'runtime' ? undefined : b));
      }
    };
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, []);

  // ---- auto-scroll that respects a user who scrolled up ---------------------------------------------
  const onScroll = useCallback(() => {
    const el = scroller.current;
    if (!el) return;
    const near = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
    if (near !== pinnedRef.current) {
      pinnedRef.current = near;
      setPinned(near);
    }
  }, []);
  // biome-ignore lint/correctness/useExhaustiveDependencies: scroll whenever the items change
  useLayoutEffect(() => {
    const el = scroller.current;
    if (el && pinnedRef.current) el.scrollTop = el.scrollHeight;
  }, [items]);
  const jumpToLatest = () => {
    const el = scroller.current;
    if (!el) return;
    pinnedRef.current = true;
    setPinned(true);
    el.scrollTo({ top: el.scrollHeight, behavior: 'smooth' });
  };

  // ---- conversations -----------------------------------------------------------------------------------
  const openConversation = (id: string | undefined) => {
    if (streaming) return;
    setShowList(false);
    if (id === activeId) return;
    window.history.pushState(null, '', chatUrl(id));
    setBanner((b) => (b?.kind === 'error' ? undefined : b));
    setItems([]);
    setActiveId(id);
    if (!id) {
      setLoadingHistory(false);
      textarea.current?.focus();
    }
  };
  useEffect(() => {
    const onPop = () => {
      const id = new URLSearchParams(window.location.search).get('c') ?? undefined;
      if (!abort.current) setActiveId(id);
    };
    window.addEventListener('popstate', onPop);
    return () => window.removeEventListener('popstate', onPop);
  }, []);

  // ---- files --------------------------------------------------------------------------------------------
  async function onFiles(event: ChangeEvent<HTMLInputElement>) {
    const files = [...(event.target.files ?? [])];
    event.target.value = '';
    for (const file of files) {
      if (file.size > 10 * 1024 * 1024) {
        setBanner({ kind: 'error', message: `${file.name} is larger than 10 MB.` });
        continue;
      }
      setUploading((n) => n + 1);
      try {
        const form = new FormData();
        form.append('file', file, file.name);
        const res = await fetch('/api/files', { method: 'POST', body: form });
        const body = (await res.json().catch(() => null)) as { path?: string; size?: number } | null;
        if (!res.ok || !body?.path) {
          const reason =
            res.status === 404
              ? 'file upload is not available on this server yet'
              : errorMessage(body, `HTTP ${res.status}`).message;
          setBanner({ kind: 'error', message: `Could not upload ${file.name}: ${reason}` });
          continue;
        }
        const uploaded = { path: body.path, size: body.size ?? file.size, name: file.name };
        setAttachments((list) => [...list.filter((a) => a.path !== uploaded.path), uploaded].slice(0, 10));
      } catch {
        setBanner({ kind: 'error', message: `Could not upload ${file.name}: the server is not reachable.` });
      } finally {
        setUploading((n) => n - 1);
      }
    }
  }

  // ---- sending and streaming ----------------------------------------------------------------------------
  const updateAssistant = (id: string, update: (block: AssistantItem) => AssistantItem) =>
    setItems((list) => list.map((item) => (item.role === 'assistant' && item.id === id ? update(item) : item)));

  async function send() {
    const text = input.trim();
    if (!text || streaming || uploading > 0) return;
    const controller = new AbortController();
    abort.current = controller;
    const userId = `local-user-${Date.now()}`;
    const assistantId = `local-assistant-${Date.now()}`;
    const sentAttachments = attachments;
    setItems((list) => [
      ...list,
      { role: 'user', id: userId, content: text, attachments: sentAttachments.map((a) => a.path) },
      { role: 'assistant', id: assistantId, parts: [], status: 'streaming' },
    ]);
    setInput('');
    setAttachments([]);
    setStreaming(true);
    setBanner((b) => (b?.kind === 'error' || b?.kind === 'runtime' ? undefined : b));
    pinnedRef.current = true;
    setPinned(true);

    let finished = false;
    let currentId = assistantId;
    try {
      const res = await fetch('/api/chat', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
        body: JSON.stringify({
          ...(activeId ? { conversationId: activeId } : {}),
          message: text,
          ...(sentAttachments.length ? { attachments: sentAttachments.map((a) => ({ path: a.path })) } : {}),
        }),
        signal: controller.signal,
      });
      if (!res.ok || !res.body) {
        const body = await res.json().catch(() => null);
        const { code, message } = errorMessage(body, `The server answered HTTP ${res.status}.`);
        // Nothing was sent: take the turn back and give the text back to the input.
        setItems((list) => list.filter((item) => item.id !== userId && item.id !== assistantId));
        setInput(text);
        setAttachments(sentAttachments);
        if (res.status === 402 || code === 'insufficient_credits') {
          setBanner({ kind: 'exhausted' });
          setBalanceMicros('0');
          void refreshBalance();
        } else if (res.status === 404 && !activeId) {
          setBanner({ kind: 'error', message: 'Chat is not available on this server yet.' });
        } else if (res.status === 404) {
          setBanner({ kind: 'error', message: 'This conversation no longer exists. Start a new chat.' });
        } else if (res.status === 409) {
          setBanner({
            kind: 'error',
            message: 'This conversation is still answering in another window. Wait for it to finish.',
          });
        } else if (res.status === 503) {
          setBanner({ kind: 'runtime', state: 'error', message });
        } else if (res.status === 401) {
          window.location.assign(`/signin?next=${encodeURIComponent(chatUrl(activeId))}`);
        } else {
          setBanner({ kind: 'error', message });
        }
        finished = true;
        return;
      }
      for await (const raw of readSseJson(res.body)) {
        const event = asChatEvent(raw);
        if (!event) continue;
        if (event.type === 'conversation') {
          setActiveIdQuietly(event.conversationId);
          setItems((list) => list.map((item) => (item.id === userId ? { ...item, id: event.userMessageId } : item)));
          setConversations((list) => [
            { id: event.conversationId, title: event.title, updatedAt: new Date().toISOString() },
            ...list.filter((c) => c.id !== event.conversationId),
          ]);
          continue;
        }
        if (event.type === 'done' || event.type === 'error') {
          finished = true;
          if (event.balanceMicros !== undefined) setBalanceMicros(event.balanceMicros);
          if (event.type === 'error' && event.code === 'credits_exhausted') setBanner({ kind: 'exhausted' });
        }
        const updatedId = event.type === 'done' && event.messageIds?.[0] ? event.messageIds[0] : currentId;
        const previousId = currentId;
        currentId = updatedId;
        updateAssistant(previousId, (block) => applyEvent(block, event));
      }
      if (!finished) {
        updateAssistant(currentId, (block) => ({
          ...block,
          status: 'error',
          error: { code: 'interrupted', message: 'The connection was interrupted before the answer finished.' },
        }));
        void refreshBalance();
      }
    } catch (err) {
      if (controller.signal.aborted) {
        updateAssistant(currentId, (block) => ({ ...block, status: 'stopped', runtimeStarting: false }));
      } else {
        updateAssistant(currentId, (block) => ({
          ...block,
          status: 'error',
          runtimeStarting: false,
          error: { code: 'network', message: `The connection failed: ${(err as Error).message}` },
        }));
      }
      void refreshBalance();
    } finally {
      abort.current = undefined;
      setStreaming(false);
      textarea.current?.focus();
    }
  }

  /** The first answer of a new conversation names it: the URL follows without reloading history. */
  const setActiveIdQuietly = (id: string) => {
    window.history.replaceState(null, '', chatUrl(id));
    setActiveId(id);
  };

  const stop = () => abort.current?.abort();

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      void send();
    }
  };

  // Grow the input with its text, up to a limit.
  // biome-ignore lint/correctness/useExhaustiveDependencies: re-measure when the text changes
  useLayoutEffect(() => {
    const el = textarea.current;
    if (!el) return;
    el.style.height = 'auto';
    el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
  }, [input]);

  // Copy buttons inside rendered code blocks (one listener for all of them).
  const onMessagesClick = async (event: React.MouseEvent<HTMLDivElement>) => {
    const button = (event.target as HTMLElement).closest<HTMLButtonElement>('[data-copy-code]');
    if (!button) return;
    const code = button.closest('[data-code-block]')?.querySelector('code')?.textContent ?? '';
    try {
      await navigator.clipboard.writeText(code);
    } catch {
      const area = document.createElement('textarea');
      area.value = code;
      document.body.appendChild(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    button.textContent = 'Copied';
    setTimeout(() => {
      button.textContent = 'Copy';
    }, 1_500);
  };

  const activeTitle = conversations.find((c) => c.id === activeId)?.title;

  return (
    <div className="flex h-full min-h-0 flex-col">
      {/* the small-screen bar: conversations are a page of their own there */}
      <div className="flex items-center gap-2 border-b border-line px-3 py-2 md:hidden">
        <button
          type="button"
          onClick={() => setShowList((v) => !v)}
          aria-expanded={showList}
          className="rounded-lg border border-line px-2.5 py-1 text-sm"
          data-testid="toggle-conversations"
        >
          {showList ? 'Back to chat' : 'Chats'}
        </button>
        <p className="min-w-0 flex-1 truncate text-sm text-muted">
          {showList ? 'Conversations' : activeTitle || 'New chat'}
        </p>
      </div>
      <div className="flex min-h-0 flex-1">
        {/* conversations */}
        <aside
          className={`${showList ? 'flex' : 'hidden'} min-h-0 w-full flex-col border-r border-line bg-bg md:flex md:w-72 md:shrink-0`}
          data-testid="conversation-list"
        >
          <div className="p-3">
            <button
              type="button"
              onClick={() => openConversation(undefined)}
              disabled={streaming}
              className="w-full rounded-lg border border-line px-3 py-2 text-sm hover:border-accent disabled:opacity-50"
              data-testid="new-chat"
            >
              + New chat
            </button>
          </div>
          <nav className="min-h-0 flex-1 overflow-y-auto px-2 pb-3" aria-label="Conversations">
            {conversations.length === 0 ? (
              <p className="px-3 py-2 text-sm text-muted">No conversations yet.</p>
            ) : (
              <ul className="space-y-0.5">
                {conversations.map((c) => (
                  <li key={c.id}>
                    <button
                      type="button"
                      onClick={() => openConversation(c.id)}
                      disabled={streaming && c.id !== activeId}
                      aria-current={c.id === activeId ? 'page' : undefined}
                      className={`w-full truncate rounded-lg px-3 py-2 text-left text-sm ${
                        c.id === activeId ? 'bg-surface-2 text-ink' : 'text-muted hover:bg-surface hover:text-ink'
                      }`}
                      data-testid="conversation-item"
                    >
                      {c.title || 'New conversation'}
                    </button>
                  </li>
                ))}
              </ul>
            )}
          </nav>
        </aside>

        {/* messages */}
        <section className={`${showList ? 'hidden' : 'flex'} relative min-w-0 flex-1 flex-col md:flex`}>
          {/* biome-ignore lint/a11y/useKeyWithClickEvents: delegates clicks of the (keyboard-focusable) copy buttons inside */}
          {/* biome-ignore lint/a11y/noStaticElementInteractions: same */}
          <div
            ref={scroller}
            onScroll={onScroll}
            onClick={onMessagesClick}
            className="min-h-0 flex-1 overflow-x-hidden overflow-y-auto"
            data-testid="messages"
          >
            <div className="mx-auto w-full max-w-3xl space-y-5 px-3 py-6 sm:px-6">
              {loadingHistory ? (
                <p className="text-center text-sm text-muted" data-testid="loading-history">
                  Loading conversation…
                </p>
              ) : items.length === 0 ? (
                <div className="py-16 text-center" data-testid="empty-chat">
                  <h1 className="text-2xl font-semibold tracking-tight">
                    What should your <span className="text-gradient">agent</span> do?
                  </h1>
                  <p className="mt-2 text-sm text-muted">
                    Ask a question, attach a file, or give it a task. It works in its own private workspace.
                  </p>
                </div>
              ) : (
                items.map((item) =>
                  item.role === 'user' ? (
                    <UserMessage key={item.id} item={item} />
                  ) : (
                    <AssistantMessage key={item.id} item={item} topUpUrl={topUpUrl} />
                  ),
                )
              )}
            </div>
          </div>

          {!pinned && streaming ? (
            <button
              type="button"
              onClick={jumpToLatest}
              className="absolute bottom-36 left-1/2 -translate-x-1/2 rounded-full border border-line bg-surface px-3 py-1 text-xs shadow-lg"
              data-testid="jump-to-latest"
            >
              ↓ Latest
            </button>
          ) : null}

          {/* composer */}
          <div className="border-t border-line bg-bg px-3 pt-3 pb-[max(0.75rem,env(safe-area-inset-bottom))] sm:px-6">
            <div className="mx-auto w-full max-w-3xl space-y-2">
              {banner?.kind === 'exhausted' ? <CreditsExhausted topUpUrl={topUpUrl} /> : null}
              {banner?.kind === 'error' ? (
                <p
                  role="alert"
                  className="flex items-start justify-between gap-3 rounded-lg border border-danger/40 bg-danger/10 px-3 py-2 text-sm text-danger"
                  data-testid="chat-banner-error"
                >
                  <span>{banner.message}</span>
                  <button
                    type="button"
                    onClick={() => setBanner(undefined)}
                    aria-label="Dismiss"
                    className="text-danger/80"
                  >
                    ✕
                  </button>
                </p>
              ) : null}
              {banner?.kind === 'runtime' ? (
                <p
                  className={`rounded-lg border px-3 py-2 text-sm ${banner.state === 'error' ? 'border-danger/40 bg-danger/10 text-danger' : 'border-warn/40 bg-warn/10 text-warn'}`}
                  data-testid="runtime-banner"
                >
                  {banner.state === 'starting'
                    ? 'Your agent is starting…'
                    : `Your agent could not start${banner.message ? `: ${banner.message}` : '.'}`}
                </p>
              ) : null}
              {attachments.length > 0 || uploading > 0 ? (
                <ul className="flex flex-wrap gap-1.5" data-testid="attachments">
                  {attachments.map((a) => (
                    <li
                      key={a.path}
                      className="flex items-center gap-1 rounded-md bg-surface-2 px-2 py-1 font-mono text-xs"
                    >
                      <PaperclipIcon small /> {a.path}
                      <button
                        type="button"
                        aria-label={`Remove ${a.name}`}
                        className="ml-1 text-muted hover:text-ink"
                        onClick={() => setAttachments((list) => list.filter((x) => x.path !== a.path))}
                      >
                        ✕
                      </button>
                    </li>
                  ))}
                  {uploading > 0 ? <li className="px-2 py-1 text-xs text-muted">Uploading…</li> : null}
                </ul>
              ) : null}
              <form
                className="flex items-end gap-2 rounded-2xl border border-line bg-surface p-2 focus-within:border-accent"
                onSubmit={(e) => {
                  e.preventDefault();
                  void send();
                }}
              >
                <input
                  ref={fileInput}
                  type="file"
                  multiple
                  className="hidden"
                  onChange={onFiles}
                  data-testid="file-input"
                />
                <button
                  type="button"
                  onClick={() => fileInput.current?.click()}
                  className="shrink-0 rounded-xl px-2.5 py-2 text-muted hover:bg-surface-2 hover:text-ink"
                  aria-label="Attach a file"
                  title="Attach a file"
                  disabled={streaming}
                >
                  <PaperclipIcon />
                </button>
                <textarea
                  ref={textarea}
                  value={input}
                  onChange={(e) => setInput(e.target.value)}
                  onKeyDown={onKeyDown}
                  rows={1}
                  maxLength={32_000}
                  placeholder="Message your agent…"
                  className="max-h-[200px] min-h-[2.5rem] min-w-0 flex-1 resize-none bg-transparent px-1 py-2 text-ink placeholder:text-muted/70 focus:outline-none focus-visible:outline-none"
                  data-testid="chat-input"
                  aria-label="Message"
                />
                {streaming ? (
                  <button
                    type="button"
                    onClick={stop}
                    className="shrink-0 rounded-xl border border-line px-3 py-2 text-sm hover:border-danger hover:text-danger"
                    data-testid="stop-button"
                  >
                    ■ Stop
                  </button>
                ) : (
                  <button
                    type="submit"
                    disabled={!input.trim() || uploading > 0}
                    className="shrink-0 rounded-xl bg-accent px-4 py-2 text-sm font-medium text-white hover:bg-accent-soft disabled:opacity-50"
                    data-testid="send-button"
                  >
                    Send
                  </button>
                )}
              </form>
              <p className="hidden text-center text-xs text-muted/70 sm:block">
                Enter to send · Shift+Enter for a new line
              </p>
            </div>
          </div>
        </section>
      </div>
    </div>
  );
}
