import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { titleFrom } from '../src/chat.js';
import { MAX_UPLOAD_BYTES, safeName } from '../src/chat-routes.js';
import { tenantWorkspaceDir } from '../src/tenants.js';
import { type ChatTestbed, FIB_ANSWER, FIB_SCRIPT, readEvents, startChatTestbed } from './support/chat.js';
import type { Browser } from './support/helpers.js';
import { ProcessOrchestrator } from './support/process-orchestrator.js';

let tb: ChatTestbed;
let orchestrator: ProcessOrchestrator;

beforeAll(async () => {
  tb = await startChatTestbed(async ({ tenantDataDir, llmProxy, platformApi }) => {
    orchestrator = new ProcessOrchestrator({
      tenantDataDir,
      llmProxyUrl: `http://${llmProxy.host}:${llmProxy.port}/v1`,
      platformApiUrl: `http://${platformApi.host}:${platformApi.port}`,
    });
    return orchestrator;
  });
}, 120_000);

afterAll(async () => {
  await orchestrator?.removeAll();
  await tb?.stop();
});

async function signUp(): Promise<{ browser: Browser; tenantId: string }> {
  const browser = tb.browser();
  const email = `chat-${Math.random().toString(36).slice(2)}@example.com`;
  const res = await browser.fetch('/api/auth/sign-up/email', {
    method: 'POST',
    json: { email, password: 'correct horse battery', name: 'Chat Tester' },
  });
  expect(res.status).toBe(200);
  const account = (await (await browser.fetch('/api/account')).json()) as { tenant: { id: string } };
  return { browser, tenantId: account.tenant.id };
}

const chat = (browser: Browser, body: Record<string, unknown>, init: RequestInit = {}) =>
  browser.fetch('/api/chat', { method: 'POST', json: body, ...init });

const balance = async (browser: Browser) =>
  BigInt(((await (await browser.fetch('/api/credits')).json()) as { balanceMicros: string }).balanceMicros);

describe('POST /api/chat', () => {
  let alice: { browser: Browser; tenantId: string };

  beforeAll(async () => {
    alice = await signUp();
  });

  it('sign-up starts the runtime in the background; /api/runtime reports it running', async () => {
    await waitFor(
      async () => {
        const res = await alice.browser.fetch('/api/runtime');
        return ((await res.json()) as { state: string }).state === 'running';
      },
      { timeoutMs: 30_000, what: 'runtime running' },
    );
    const tenant = await tb.store.findTenant(alice.tenantId);
    expect(tenant?.runtime_id).toBe(`proc_${alice.tenantId}`);
  });

  it('runs a multi-step tool task, streams it, persists both sides and bills the conversation', async () => {
    const before = await balance(alice.browser);
    const res = await chat(alice.browser, { message: 'Write a script that prints ten Fibonacci numbers and run it' });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await readEvents(res);
    const types = events.map((e) => e.type);
    expect(types[0]).toBe('conversation');
    expect(types.at(-1)).toBe('done');
    expect(types.filter((t) => t === 'tool_call')).toHaveLength(3);
    expect(types.filter((t) => t === 'tool_result')).toHaveLength(3);
    const opening = events[0]!;
    expect(opening).toMatchObject({
      created: true,
      title: 'Write a script that prints ten Fibonacci numbers and run it',
    });
    const done = events.at(-1)!;
    expect(done.finishReason).toBe('stop');
    expect(done.iterations).toBe(4);

    // The work happened in the tenant's workspace.
    const workspace = tenantWorkspaceDir(tb.tenantDataDir, alice.tenantId);
    expect(readFileSync(join(workspace, 'scripts/fib.sh'), 'utf8')).toBe(FIB_SCRIPT);
    expect(readFileSync(join(workspace, 'out/fib.txt'), 'utf8')).toBe('0 1 1 2 3 5 8 13 21 34 \n');

    // Billing: the proxy booked 4 calls on this conversation; the charge reported is exactly the debit.
    const after = await balance(alice.browser);
    expect(BigInt(done.chargedMicros)).toBeGreaterThan(0n);
    expect(before - after).toBe(BigInt(done.chargedMicros));
    expect(BigInt(done.balanceMicros)).toBe(after);
    const usage = await tb.database.db
      .selectFrom('usage_logs')
      .selectAll()
      .where('tenant_id', '=', alice.tenantId)
      .execute();
    expect(usage.filter((u) => u.conversation_id === opening.conversationId)).toHaveLength(4);

    // Persisted: user, assistant+call, tool, assistant+call, tool, assistant+call, tool, assistant.
    const page = (await (
      await alice.browser.fetch(`/api/conversations/${opening.conversationId}/messages`)
    ).json()) as { items: { id: string; role: string; content: string; metadata: Record<string, any> }[] };
    expect(page.items.map((m) => m.role)).toEqual([
      'user',
      'assistant',
      'tool',
      'assistant',
      'tool',
      'assistant',
      'tool',
      'assistant',
    ]);
    expect(page.items[0]!.id).toBe(opening.userMessageId);
    expect(page.items[1]!.metadata.toolCalls[0].name).toBe('write_file');
    expect(page.items[6]!.content).toBe('0 1 1 2 3 5 8 13 21 34 \n');
    expect(page.items.at(-1)).toMatchObject({ content: FIB_ANSWER, metadata: { finishReason: 'stop' } });
    expect(done.messageIds).toEqual(page.items.slice(1).map((m) => m.id));
  });

  it('continues a conversation with its history as context', async () => {
    const first = await readEvents(await chat(alice.browser, { message: 'hi there' }));
    const conversationId = first[0]!.conversationId;
    tb.mock.clearRequests();
    const second = await readEvents(await chat(alice.browser, { conversationId, message: 'and again' }));
    expect(second[0]).toMatchObject({ conversationId, created: false });
    expect(second.at(-1)!.type).toBe('done');
    const sent = tb.mock.getRequests().at(-1)!.body as { messages: { role: string; content: string }[] };
    const texts = sent.messages.filter((m) => m.role !== 'system').map((m) => [m.role, m.content]);
    expect(texts).toEqual([
      ['user', 'hi there'],
      ['assistant', 'Hello from the test model.'],
      ['user', 'and again'],
    ]);
  });

  it('refuses bad input before any stream, naming the field', async () => {
    const empty = await chat(alice.browser, { message: '   ' });
    expect(empty.status).toBe(400);
    expect(((await empty.json()) as any).error.field).toBe('body.message');
    const badPath = await chat(alice.browser, { message: 'x', attachments: [{ path: '../../etc/passwd' }] });
    expect(badPath.status).toBe(400);
    expect(((await badPath.json()) as any).error.field).toMatch(/^body\.attachments/);
    const badId = await chat(alice.browser, { message: 'x', conversationId: 'nope' });
    expect(badId.status).toBe(400);
    const anonymous = await fetch(`${tb.api.url}/api/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ message: 'hi' }),
    });
    expect(anonymous.status).toBe(401);
  });

  it("another tenant's conversation is not found, and nothing is written to it", async () => {
    const first = await readEvents(await chat(alice.browser, { message: 'private thoughts' }));
    const conversationId = first[0]!.conversationId;
    const mallory = await signUp();
    const res = await chat(mallory.browser, { conversationId, message: 'let me in' });
    expect(res.status).toBe(404);
    const messages = await tb.database.db
      .selectFrom('messages')
      .select('content')
      .where('conversation_id', '=', conversationId)
      .execute();
    expect(messages.map((m) => m.content)).not.toContain('let me in');
  });

  it('answers 402 before streaming when the credit is used up', async () => {
    const broke = await signUp();
    const credits = await tb.store.findCredits(broke.tenantId);
    await tb.store.postLedgerEntry({
      tenantId: broke.tenantId,
      amountMicros: -credits!.balance_micros,
      kind: 'adjustment',
      reference: 'drain',
    });
    const res = await chat(broke.browser, { message: 'hello?' });
    expect(res.status).toBe(402);
    expect(((await res.json()) as any).error.code).toBe('insufficient_credits');
  });

  it('a stopped run keeps the partial answer, marked stopped; a second run meanwhile is refused with 409', async () => {
    const abort = new AbortController();
    const res = await chat(alice.browser, { message: 'tell me a long story' }, { signal: abort.signal });
    const conversationId = res.headers.get('x-conversation-id')!;
    const reader = res.body!.getReader();
    let seen = '';
    while (!seen.includes('"type":"text"')) seen += new TextDecoder().decode((await reader.read()).value);
    const busy = await chat(alice.browser, { conversationId, message: 'me too' });
    expect(busy.status).toBe(409);
    expect(((await busy.json()) as any).error.code).toBe('conversation_busy');
    abort.abort();
    await reader.cancel().catch(() => undefined);
    const stored = await waitFor(
      async () => {
        const rows = await tb.database.db
          .selectFrom('messages')
          .selectAll()
          .where('conversation_id', '=', conversationId)
          .where('role', '=', 'assistant')
          .execute();
        return rows.length ? rows : undefined;
      },
      { timeoutMs: 15_000, what: 'the partial answer persisted' },
    );
    expect(stored[0]!.content).toMatch(/^Once upo/);
    expect(stored[0]!.content.length).toBeLessThan('Once upon a time '.repeat(40).length);
    expect(stored[0]!.metadata).toMatchObject({ stopped: true });
    // The conversation is free again.
    await waitFor(
      async () => {
        const again = await chat(alice.browser, { conversationId, message: 'hi' });
        await again.body?.cancel();
        return again.status === 200;
      },
      { timeoutMs: 15_000 },
    );
  });

  it('restarts a runtime that died, telling the client it is starting', async () => {
    const before = orchestrator.starts.filter((t) => t === alice.tenantId).length;
    await orchestrator.crash(alice.tenantId);
    expect((await orchestrator.status(alice.tenantId)).state).toBe('stopped');
    const events = await readEvents(await chat(alice.browser, { message: 'are you there' }));
    expect(events.map((e) => e.type)).toContain('runtime');
    expect(events.at(-1)!.type).toBe('done');
    expect(orchestrator.starts.filter((t) => t === alice.tenantId).length).toBe(before + 1);
  });
});

describe('after a platform restart', () => {
  it('resumeAll starts the runtimes of active tenants again, not of suspended ones', async () => {
    const active = await signUp();
    const suspended = await signUp();
    for (const t of [active, suspended]) {
      await waitFor(async () => (await tb.platform.runtimes!.status(t.tenantId)).state === 'running', {
        timeoutMs: 30_000,
      });
    }
    await tb.platform.lifecycle.suspend(suspended.tenantId, { reason: 'test', by: 'test' });
    await waitFor(async () => (await orchestrator.status(suspended.tenantId)).state === 'stopped');
    // A restart ends every runtime.
    await orchestrator.crash(active.tenantId);
    const { started } = await tb.platform.runtimes!.resumeAll();
    expect(started).toBeGreaterThanOrEqual(1);
    expect((await orchestrator.status(active.tenantId)).state).toBe('running');
    expect((await orchestrator.status(suspended.tenantId)).state).toBe('stopped');
  });
});

describe('POST /api/files', () => {
  it('stores an upload in the workspace under a safe, unique name, and the agent gets it as an attachment', async () => {
    const { browser, tenantId } = await signUp();
    const upload = async (name: string, body: Blob) => {
      const form = new FormData();
      form.append('file', body, name);
      return browser.fetch('/api/files', { method: 'POST', body: form });
    };
    const first = await upload('../../My Report (final).txt', new Blob(['quarterly numbers'], { type: 'text/plain' }));
    expect(first.status).toBe(201);
    expect(await first.json()).toEqual({ path: 'uploads/My-Report-final.txt', size: 17, contentType: 'text/plain' });
    const second = await upload('My Report (final).txt', new Blob(['v2']));
    expect(((await second.json()) as { path: string }).path).toBe('uploads/My-Report-final-1.txt');
    const workspace = tenantWorkspaceDir(tb.tenantDataDir, tenantId);
    expect(readFileSync(join(workspace, 'uploads/My-Report-final.txt'), 'utf8')).toBe('quarterly numbers');

    const tooBig = await upload('big.bin', new Blob([new Uint8Array(MAX_UPLOAD_BYTES + 1)]));
    expect(tooBig.status).toBe(413);
    expect(((await tooBig.json()) as any).error.code).toBe('file_too_large');
    expect(existsSync(join(workspace, 'uploads/big.bin'))).toBe(false);
    const noFile = await browser.fetch('/api/files', { method: 'POST', body: new FormData() });
    expect(noFile.status).toBe(400);

    tb.mock.clearRequests();
    const events = await readEvents(
      await chat(browser, { message: 'summarise this', attachments: [{ path: 'uploads/My-Report-final.txt' }] }),
    );
    expect(events.at(-1)!.type).toBe('done');
    const sent = JSON.stringify(tb.mock.getRequests().at(-1)!.body);
    expect(sent).toContain('uploads/My-Report-final.txt');
  });

  it('names are made safe', () => {
    expect(safeName('..')).toBe('file');
    expect(safeName('.bashrc')).toBe('bashrc');
    expect(safeName('a/b\\c.PNG')).toBe('c.PNG');
    expect(titleFrom('  first line\nsecond')).toBe('first line');
    expect(titleFrom('x'.repeat(100))).toHaveLength(80);
  });
});
