import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listenOn, type RunningServer } from '@agentstack/core';
import { LLMock } from '@copilotkit/aimock';
import { createRuntimeClient, type RuntimeClient } from '../src/client.js';
import { loadRuntimeConfig } from '../src/config.js';
import type { ChatEvent, ChatRequest } from '../src/events.js';
import { buildRuntime, type RuntimeOptions } from '../src/runtime.js';

export const TOKEN = 'runtime-test-token-0123456789';
export const TENANT_KEY = 'sk-tenant-test-key';

/** An aimock LLM upstream speaking the OpenAI wire format, standing in for the LLM proxy. */
export async function startLlm({ apiKeys }: { apiKeys?: string[] } = {}): Promise<LLMock & { url: string }> {
  const mock = new LLMock({ port: 0, host: '127.0.0.1', ...(apiKeys ? { auth: { apiKeys } } : {}) });
  await mock.start();
  return mock as LLMock & { url: string };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `runtime-${prefix}-`));
}

/** A Hand manifest for tests, with every tool unless told otherwise. */
export function handToml(
  name: string,
  {
    tools = ['shell', 'read_file', 'write_file', 'list_files', 'fetch_url'],
    settings = '',
  }: { tools?: string[]; settings?: string } = {},
): string {
  return `name = "${name}"
description = "Test Hand ${name}"
tools = ${JSON.stringify(tools)}
system_prompt = "You are the ${name} test agent."
${settings ? `\n[settings]\n${settings}\n` : ''}`;
}

export interface TestRuntime {
  url: string;
  workspace: string;
  client: RuntimeClient;
  activeRuns(): number;
  close(): Promise<void>;
}

/** Builds the real runtime (config → Hands → tools → app) in-process and serves it on a free port. */
export async function startRuntime({
  llmUrl,
  hands = { tester: handToml('tester') },
  env = {},
  options = {},
}: {
  llmUrl: string;
  hands?: Record<string, string>;
  env?: Record<string, string>;
  options?: RuntimeOptions;
}): Promise<TestRuntime> {
  const root = tempDir('rt');
  const workspace = join(root, 'workspace');
  const handsDir = join(root, 'hands');
  mkdirSync(workspace);
  mkdirSync(handsDir);
  for (const [name, text] of Object.entries(hands)) writeFileSync(join(handsDir, `${name}.toml`), text);
  const config = loadRuntimeConfig({
    TENANT_ID: 'ten_test',
    PLATFORM_API_URL: 'http://127.0.0.1:9',
    PLATFORM_API_KEY: TENANT_KEY,
    LLM_PROXY_URL: llmUrl,
    RUNTIME_AUTH_TOKEN: TOKEN,
    WORKSPACE_DIR: workspace,
    HANDS_DIR: handsDir,
    RUNTIME_DEFAULT_HAND: Object.keys(hands)[0],
    RUNTIME_DEFAULT_MODEL: 'test-model',
    RUNTIME_LLM_MAX_RETRIES: '0',
    LOG_LEVEL: 'silent',
    ...env,
  });
  const runtime = await buildRuntime(config, options);
  const server: RunningServer = await listenOn(runtime.app, { port: 0 });
  const client = createRuntimeClient({ baseUrl: server.url, token: TOKEN });
  return {
    url: server.url,
    workspace: runtime.workspace,
    client,
    activeRuns: runtime.activeRuns,
    async close() {
      await client.close();
      await server.close();
      await runtime.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** Runs one chat to the end and returns every event. */
export async function chat(client: RuntimeClient, request: Partial<ChatRequest> & { content?: string }) {
  const { content = 'hello', ...rest } = request;
  const { runId, events } = await client.chat({
    conversationId: 'conv_1',
    messages: [],
    message: { role: 'user', content },
    ...rest,
  });
  const all: ChatEvent[] = [];
  for await (const event of events) all.push(event);
  return { runId, events: all };
}

/** Event types with consecutive `text` events merged (how many deltas arrive depends on chunking). */
export function shape(events: ChatEvent[]): string[] {
  return events.map((e) => e.type).filter((t, i, all) => !(t === 'text' && all[i - 1] === 'text'));
}

export function textOf(events: ChatEvent[]): string {
  return events.map((e) => (e.type === 'text' ? e.delta : '')).join('');
}

/** Whether a process still runs (a zombie waiting to be reaped by init counts as gone). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The messages of the request aimock received, to check what the model was sent. */
export type LlmRequest = { messages: { role: string; content?: unknown; tool_call_id?: string }[] };

export function lastUserText(req: LlmRequest): string {
  const user = [...req.messages].reverse().find((m) => m.role === 'user');
  return typeof user?.content === 'string' ? user.content : JSON.stringify(user?.content ?? '');
}

/** Tool results after the last user message (the current turn). */
export function toolResultsInTurn(req: LlmRequest): number {
  const lastUser = req.messages.map((m) => m.role).lastIndexOf('user');
  return req.messages.slice(lastUser + 1).filter((m) => m.role === 'tool').length;
}
