import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startProcess, waitFor } from '@agentstack/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRuntimeClient, RuntimeHttpError } from '../src/client.js';
import type { ChatEventOf } from '../src/events.js';
import {
  chat,
  handToml,
  type LlmRequest,
  lastUserText,
  shape,
  startLlm,
  startRuntime,
  TENANT_KEY,
  type TestRuntime,
  TOKEN,
  tempDir,
  textOf,
} from './helpers.js';

let llm: Awaited<ReturnType<typeof startLlm>>;
let runtime: TestRuntime;
const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));

beforeAll(async () => {
  llm = await startLlm({ apiKeys: [TENANT_KEY] });
  llm.on({ userMessage: 'ping' }, { content: 'pong' });
  runtime = await startRuntime({
    llmUrl: llm.url,
    hands: { tester: handToml('tester'), reader: handToml('reader', { tools: ['read_file'] }) },
    env: { RUNTIME_MAX_CONCURRENT_RUNS: '2' },
  });
});

afterAll(async () => {
  await runtime?.close();
  await llm?.stop();
});

const chatBody = (content = 'ping', conversationId = 'c_http') => ({
  conversationId,
  messages: [],
  message: { role: 'user', content },
});

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${runtime.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('authentication', () => {
  it('leaves /health open', async () => {
    const res = await fetch(`${runtime.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true, tenantId: 'ten_test', version: '0.1.0', activeRuns: 0 });
  });

  it('refuses every other route without the runtime token, or with a wrong one', async () => {
    const headerSets: Record<string, string>[] = [
      {},
      { authorization: 'Bearer wrong-token-wrong-token' },
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `Basic ${TOKEN}` },
      { authorization: TOKEN },
    ];
    for (const headers of headerSets) {
      const res = await post('/v1/chat', chatBody(), headers);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(((await res.json()) as any).error.code).toBe('unauthorized');
      for (const path of ['/v1/hands', '/v1/tools']) {
        expect((await fetch(`${runtime.url}${path}`, { headers })).status).toBe(401);
      }
      expect((await post('/v1/chat/run_x/cancel', {}, headers)).status).toBe(401);
    }
    // Nothing reached the model.
    expect(llm.getRequests()).toHaveLength(0);
  });

  it('accepts the right token', async () => {
    const res = await post('/v1/chat', chatBody(), { authorization: `Bearer ${TOKEN}` });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(res.headers.get('x-run-id')).toMatch(/^run_/);
    const text = await res.text();
    expect(text).toContain('event: start\ndata: {"type":"start"');
    expect(text).toContain('event: done\n');
  });
});

describe('event stream', () => {
  it('sends keep-alive comments while a run is quiet, which clients skip', async () => {
    const quiet = await startRuntime({ llmUrl: llm.url, options: { heartbeatMs: 50 } });
    try {
      llm.on({ userMessage: 'think quietly' }, { content: 'done thinking' }, { latency: 150 });
      const res = await fetch(`${quiet.url}/v1/chat`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKEN}` },
        body: JSON.stringify(chatBody('think quietly', 'c_quiet')),
      });
      const raw = await res.text();
      expect(raw).toContain(': keep-alive\n\n');
      const { events } = await chat(quiet.client, { content: 'think quietly', conversationId: 'c_quiet' });
      expect(shape(events)).toEqual(['start', 'text', 'done']);
    } finally {
      await quiet.close();
    }
  });
});

describe('catalogs', () => {
  it('lists the Hands and tools', async () => {
    const hands = await runtime.client.hands();
    expect(hands.defaultHand).toBe('tester');
    expect(hands.hands.map((h) => [h.name, h.tools])).toEqual([
      ['reader', ['read_file']],
      ['tester', ['shell', 'read_file', 'write_file', 'list_files', 'fetch_url']],
    ]);
    expect(hands.hands[0]!.settings).toEqual({ maxIterations: 12, toolTimeoutSeconds: 60, maxRepeatedToolCalls: 3 });
    const res = await fetch(`${runtime.url}/v1/tools`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const { tools } = (await res.json()) as { tools: { name: string; parameters: { required?: string[] } }[] };
    expect(tools.map((t) => t.name)).toEqual(['shell', 'read_file', 'write_file', 'list_files', 'fetch_url']);
    expect(tools.find((t) => t.name === 'write_file')!.parameters.required).toEqual(['path', 'content']);
  });
});

describe('request validation', () => {
  const auth = { authorization: `Bearer ${TOKEN}` };

  it('names the offending field', async () => {
    const cases: [unknown, string][] = [
      [{ messages: [], message: { role: 'user', content: 'x' } }, 'body.conversationId'],
      [{ conversationId: 'c', message: { role: 'assistant', content: 'x' } }, 'body.message.role'],
      [{ conversationId: 'c', message: { role: 'user' } }, 'body.message.content'],
      [
        { conversationId: 'c', messages: [{ role: 'robot', content: 'x' }], message: { role: 'user', content: 'x' } },
        'body.messages.0.role',
      ],
      [{ ...chatBody(), hand: 'nope' }, 'body.hand'],
    ];
    for (const [body, field] of cases) {
      const res = await post('/v1/chat', body, auth);
      expect(res.status, field).toBe(400);
      const { error } = (await res.json()) as any;
      expect(error.field).toBe(field);
    }
    const unknownHand: any = await (await post('/v1/chat', { ...chatBody(), hand: 'nope' }, auth)).json();
    expect(unknownHand.error.message).toBe('unknown Hand "nope" (available: reader, tester)');
    const notJson = await post('/v1/chat', '{"conversationId":', auth);
    expect(notJson.status).toBe(400);
    const tooBig = await post(
      '/v1/chat',
      { ...chatBody(), message: { role: 'user', content: 'x'.repeat(9_000_000) } },
      auth,
    );
    expect(tooBig.status).toBe(413);
  });

  it('refuses attachments outside the workspace or missing, and shows the model what is attached', async () => {
    mkdirSync(join(runtime.workspace, 'uploads'));
    writeFileSync(join(runtime.workspace, 'uploads', 'notes.txt'), 'remember the milk');
    // A 1×1 PNG: small images are shown to the model itself.
    const png = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==',
      'base64',
    );
    writeFileSync(join(runtime.workspace, 'uploads', 'dot.png'), png);
    symlinkSync('/etc/passwd', join(runtime.workspace, 'uploads', 'passwd'));
    const bad: [string, string][] = [
      ['../outside.txt', 'points outside the workspace'],
      ['/etc/passwd', 'outside the workspace'],
      ['uploads/passwd', 'symbolic link to outside the workspace'],
      ['uploads/missing.txt', 'uploads/missing.txt is not a file in the workspace'],
      ['uploads', 'uploads is not a file in the workspace'],
    ];
    for (const [path, message] of bad) {
      const body = {
        ...chatBody(),
        message: { role: 'user', content: 'look', attachments: [{ path: 'uploads/notes.txt' }, { path }] },
      };
      const res = await post('/v1/chat', body, auth);
      expect(res.status, path).toBe(400);
      const { error } = (await res.json()) as any;
      expect(error.field).toBe('body.message.attachments.1.path');
      expect(error.message).toContain(message);
    }

    llm.on({ userMessage: 'what did I attach' }, { content: 'A note and a dot.' });
    const { events } = await chat(runtime.client, {
      conversationId: 'c_attach',
      message: {
        role: 'user',
        content: 'what did I attach',
        attachments: [{ path: 'uploads/notes.txt' }, { path: 'uploads/dot.png' }],
      },
    });
    expect(textOf(events)).toBe('A note and a dot.');
    const sent = llm.getLastRequest()!.body as unknown as {
      messages: { role: string; content: string | { type: string; text?: string; image_url?: { url: string } }[] }[];
    };
    const user = sent.messages.at(-1)!;
    expect(Array.isArray(user.content)).toBe(true);
    const parts = user.content as { type: string; text?: string; image_url?: { url: string } }[];
    expect(parts[0]!.text).toBe(
      'what did I attach\n\n[Attached files, in the workspace:\n- uploads/notes.txt (file, 17 B)\n- uploads/dot.png (image/png, 70 B)]',
    );
    expect(parts[1]!.image_url!.url).toBe(`data:image/png;base64,${png.toString('base64')}`);
  });
});

describe('concurrency', () => {
  it('runs one turn per conversation and at most RUNTIME_MAX_CONCURRENT_RUNS at once', async () => {
    llm.on({ userMessage: 'take your time' }, { content: 'slow '.repeat(30) }, { chunkSize: 5, latency: 50 });
    const first = await runtime.client.chat(chatBody('take your time', 'c_busy') as never);
    await expect(runtime.client.chat(chatBody('ping', 'c_busy') as never)).rejects.toMatchObject({
      status: 409,
      code: 'conversation_busy',
    });
    const second = await runtime.client.chat(chatBody('take your time', 'c_busy_2') as never);
    const third = runtime.client.chat(chatBody('ping', 'c_busy_3') as never);
    await expect(third).rejects.toBeInstanceOf(RuntimeHttpError);
    await expect(third).rejects.toMatchObject({ status: 429, code: 'rate_limited' });
    const res = await post('/v1/chat', chatBody('ping', 'c_busy_4'), { authorization: `Bearer ${TOKEN}` });
    expect(res.headers.get('retry-after')).toBe('2');
    for (const run of [first, second]) {
      const types: string[] = [];
      for await (const event of run.events) types.push(event.type);
      expect(types.at(-1)).toBe('done');
    }
    expect((await chat(runtime.client, { conversationId: 'c_busy', content: 'ping' })).events.at(-1)).toMatchObject({
      type: 'done',
    });
  });
});

describe('the runtime process', () => {
  beforeAll(() => {
    execFileSync(process.execPath, ['scripts/build.mjs'], { cwd: PACKAGE_DIR, stdio: 'pipe' });
  }, 60_000);

  it.each([
    ['from source', 'bin/agentsquads-runtime.mjs'],
    ['bundled', 'dist/agentsquads-runtime.mjs'],
  ])('starts %s from env, listens on a unix socket and reaches the LLM proxy over one', async (_how, entry) => {
    const dir = tempDir('proc');
    const workspace = join(dir, 'workspace');
    const socketPath = join(dir, 'runtime.sock');
    const llmSocket = join(dir, 'llm.sock');
    // The LLM proxy handed in as a unix socket (here: relayed to aimock).
    const llmPort = Number(new URL(llm.url).port);
    const relay: Server = createServer((client) => {
      const upstream = connect(llmPort, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(llmSocket, resolve));
    llm.on(
      {
        predicate: (req) => lastUserText(req as LlmRequest) === 'over sockets' && req.messages.at(-1)?.role === 'user',
      },
      {
        toolCalls: [
          {
            id: 'call_sock',
            name: 'shell',
            // biome-ignore lint/suspicious/noTemplateCurlyInString: a bash expansion, not a template
            arguments: { command: 'echo "$TENANT_ID:${RUNTIME_AUTH_TOKEN:-hidden}:${PLATFORM_API_KEY:-hidden}"' },
          },
        ],
      },
    );
    llm.on({ toolCallId: 'call_sock' }, { content: 'done over sockets' });

    const proc = startProcess(process.execPath, [entry, 'serve'], {
      cwd: PACKAGE_DIR,
      env: {
        PATH: process.env.PATH,
        TENANT_ID: 'ten_proc',
        PLATFORM_API_URL: 'http://127.0.0.1:9',
        PLATFORM_API_KEY: TENANT_KEY,
        LLM_PROXY_URL: 'http://llm-proxy.internal',
        LLM_PROXY_SOCKET: llmSocket,
        RUNTIME_AUTH_TOKEN: TOKEN,
        RUNTIME_SOCKET: socketPath,
        WORKSPACE_DIR: workspace,
        LOG_LEVEL: 'warn',
      },
    });
    const client = createRuntimeClient({ socketPath, token: TOKEN });
    try {
      const health = await waitFor(() => client.health().catch(() => undefined), {
        what: 'runtime health',
        timeoutMs: 20_000,
      });
      expect(health).toEqual({ ok: true, tenantId: 'ten_proc', version: '0.1.0', activeRuns: 0 });
      // The shipped Hands load by default.
      expect((await client.hands()).hands.map((h) => h.name)).toEqual(['assistant', 'coder', 'researcher']);
      const { events } = await chat(client, { content: 'over sockets' });
      expect(shape(events)).toEqual(['start', 'tool_call', 'tool_result', 'text', 'done']);
      expect((events[0] as ChatEventOf<'start'>).hand).toBe('assistant');
      expect((events[2] as ChatEventOf<'tool_result'>).output).toContain('ten_proc:hidden:hidden');
      expect(textOf(events)).toBe('done over sockets');
      const unauthenticated = createRuntimeClient({ socketPath, token: 'not-the-token-at-all' });
      await expect(unauthenticated.hands()).rejects.toMatchObject({ status: 401 });
      await unauthenticated.close();
    } finally {
      await client.close();
      // SIGTERM, as an orchestrator stopping it would.
      process.kill(proc.pid, 'SIGTERM');
      relay.close();
    }
    // SIGTERM is a clean shutdown: exit 0, socket removed.
    expect(await proc.exited).toBe(0);
    expect(existsSync(socketPath)).toBe(false);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses to start with bad configuration or a bad Hand, naming the variable, file and field', async () => {
    const dir = tempDir('badcfg');
    const run = async (env: Record<string, string>) => {
      const proc = startProcess(process.execPath, ['dist/agentsquads-runtime.mjs', 'serve'], {
        cwd: PACKAGE_DIR,
        env: { PATH: process.env.PATH, ...env },
      });
      const code = await proc.exited;
      return { code, output: proc.output() };
    };
    const missing = await run({ TENANT_ID: 'ten_x' });
    expect(missing.code).toBe(1);
    expect(missing.output).toContain('PLATFORM_API_URL');
    expect(missing.output).toContain('RUNTIME_AUTH_TOKEN');
    expect(missing.output).not.toContain('    at ');

    const handsDir = join(dir, 'hands');
    mkdirSync(handsDir);
    writeFileSync(join(handsDir, 'broken.toml'), handToml('broken', { settings: 'max_iterations = "many"' }));
    const badHand = await run({
      TENANT_ID: 'ten_x',
      PLATFORM_API_URL: 'http://127.0.0.1:9',
      PLATFORM_API_KEY: 'k',
      LLM_PROXY_URL: 'http://127.0.0.1:9',
      RUNTIME_AUTH_TOKEN: TOKEN,
      WORKSPACE_DIR: join(dir, 'ws'),
      HANDS_DIR: handsDir,
      RUNTIME_SOCKET: join(dir, 'never.sock'),
    });
    expect(badHand.code).toBe(1);
    expect(badHand.output).toContain('broken.toml: settings.max_iterations:');
    expect(badHand.output).not.toContain('    at ');
    rmSync(dir, { recursive: true, force: true });
  });
});
