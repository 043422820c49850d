/**
 * The seam every agent tool plugs into.
 *
 * A tool is a name, a description for the model, zod parameters (sent to the model as JSON Schema and used
 * to validate what it sends back) and `execute(args, ctx)`. Tools return text for the model, or throw
 * `ToolError` for an expected failure the model should read and react to. The registry runs them with a
 * time budget and an abort signal (cancel, client disconnect, timeout), so a tool only has to honour
 * `ctx.signal` for anything long-running (child processes, network).
 *
 * Adding a tool (e.g. AgentStack wallet/relay/spawn, sub-agents): write `src/tools/<name>.ts` exporting a
 * `defineTool({...})`, add it to `builtinTools()` in `src/tools/index.ts`, and list its name in the Hands
 * that may use it (`data/hands/*.toml`). Calls to the platform use `ctx.platform` (URL + the tenant's key);
 * outbound web traffic uses `ctx.http` (goes through the egress proxy when one is configured).
 */
import type { Logger } from '@agentstack/core';
import type { Dispatcher } from 'undici';
import { z } from 'zod';

export interface ToolContext {
  /** Real path of the tenant's workspace; file tools confine every path to it. */
  workspace: string;
  /** Aborted when the call times out, the run is cancelled or the client hangs up. */
  signal: AbortSignal;
  /** This call's time budget (the Hand's `tool_timeout_seconds`). */
  timeoutMs: number;
  tenantId: string;
  /** Environment for child processes: the runtime's own minus its secrets. */
  env: Record<string, string>;
  /** Outbound HTTP for tools that fetch from the web (honours HTTP(S)_PROXY / NO_PROXY). */
  http: Dispatcher;
  /** The platform API, for tools that act on the tenant's account (wallet, relay, spawn, …). */
  platform: { url: string; apiKey: string };
  log: Logger;
}

/** What a tool hands back: text for the model, flagged when it describes a failure. */
export interface ToolOutput {
  output: string;
  isError?: boolean;
}

export interface Tool<S extends z.ZodType = z.ZodType> {
  name: string;
  description: string;
  parameters: S;
  execute(args: z.output<S>, ctx: ToolContext): Promise<string | ToolOutput>;
}

/** An expected failure (bad path, refused URL, non-zero exit): shown to the model as the tool's result. */
export class ToolError extends Error {
  override name = 'ToolError';
}

export function defineTool<S extends z.ZodType>(tool: Tool<S>): Tool<S> {
  return tool;
}

/** The function definition sent to an OpenAI-compatible model. */
export interface ToolDefinition {
  type: 'function';
  function: { name: string; description: string; parameters: Record<string, unknown> };
}

export interface ToolResult {
  output: string;
  isError: boolean;
  ms: number;
}

/** The most text one tool result may put into the model's context; the middle is cut beyond it. */
export const MODEL_OUTPUT_CHARS = 24_000;

export class ToolRegistry {
  readonly #tools = new Map<string, Tool>();

  constructor(tools: readonly Tool[]) {
    for (const tool of tools) {
      if (!/^[a-zA-Z0-9_-]{1,64}$/.test(tool.name)) throw new Error(`bad tool name "${tool.name}"`);
      if (this.#tools.has(tool.name)) throw new Error(`tool "${tool.name}" registered twice`);
      this.#tools.set(tool.name, tool as Tool);
    }
  }

  get(name: string): Tool | undefined {
    return this.#tools.get(name);
  }

  names(): string[] {
    return [...this.#tools.keys()];
  }

  /** Definitions for the named tools (a Hand's allow-list), in the order given. */
  definitions(names: readonly string[]): ToolDefinition[] {
    return names.flatMap((name) => {
      const tool = this.#tools.get(name);
      return tool ? [toDefinition(tool)] : [];
    });
  }
}

function toDefinition(tool: Tool): ToolDefinition {
  const { $schema: _ignored, ...parameters } = z.toJSONSchema(tool.parameters, { io: 'input' }) as Record<
    string,
    unknown
  >;
  return { type: 'function', function: { name: tool.name, description: tool.description, parameters } };
}

/** Thrown into a tool's signal when its time budget runs out. */
export class ToolTimeoutError extends Error {
  override name = 'ToolTimeoutError';
}

/**
 * Runs one tool call: parses and validates the model's JSON arguments, enforces the time budget, and turns
 * every failure into a result the model can read. Rethrows only when the run itself was aborted (cancel or
 * disconnect), so the loop stops.
 */
export async function runTool(
  tool: Tool,
  rawArguments: string,
  ctx: Omit<ToolContext, 'signal' | 'timeoutMs'>,
  { signal, timeoutMs }: { signal: AbortSignal; timeoutMs: number },
): Promise<ToolResult> {
  const started = performance.now();
  const finish = (output: string, isError: boolean): ToolResult => ({
    output: capOutput(output),
    isError,
    ms: Math.round(performance.now() - started),
  });

  let parsed: unknown;
  try {
    parsed = rawArguments.trim() === '' ? {} : JSON.parse(rawArguments);
  } catch {
    return finish(`invalid arguments: not valid JSON (${rawArguments.slice(0, 200)})`, true);
  }
  const args = tool.parameters.safeParse(parsed);
  if (!args.success) {
    const problems = args.error.issues.map((i) => `${i.path.join('.') || '(arguments)'}: ${i.message}`);
    return finish(`invalid arguments for ${tool.name}: ${problems.join('; ')}`, true);
  }

  const controller = new AbortController();
  const onParentAbort = () => controller.abort(signal.reason);
  if (signal.aborted) onParentAbort();
  else signal.addEventListener('abort', onParentAbort, { once: true });
  const seconds = Math.round(timeoutMs / 100) / 10;
  const timer = setTimeout(
    () => controller.abort(new ToolTimeoutError(`${tool.name} timed out after ${seconds} s`)),
    timeoutMs,
  );
  // A tool that ignores its signal still cannot hold the run past its budget.
  const aborted = new Promise<never>((_, reject) => {
    const fail = () => reject(controller.signal.reason);
    if (controller.signal.aborted) fail();
    else controller.signal.addEventListener('abort', fail, { once: true });
  });
  try {
    const result = await Promise.race([
      tool.execute(args.data, { ...ctx, signal: controller.signal, timeoutMs }),
      aborted,
    ]);
    return typeof result === 'string' ? finish(result, false) : finish(result.output, result.isError ?? false);
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    if (err instanceof ToolTimeoutError || controller.signal.reason instanceof ToolTimeoutError) {
      return finish(`${(controller.signal.reason as Error).message}; it was stopped`, true);
    }
    if (err instanceof ToolError) return finish(err.message, true);
    ctx.log.warn({ err, tool: tool.name }, 'tool failed');
    return finish(`${tool.name} failed: ${err instanceof Error ? err.message : String(err)}`, true);
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onParentAbort);
    aborted.catch(() => undefined);
  }
}

/** Keeps the head and the tail of an over-long output (errors tend to be at the end). */
export function capOutput(text: string, max = MODEL_OUTPUT_CHARS): string {
  if (text.length <= max) return text;
  const head = Math.floor(max * 0.7);
  const tail = max - head;
  const cut = text.length - head - tail;
  return `${text.slice(0, head)}\n[… ${cut} characters cut …]\n${text.slice(text.length - tail)}`;
}
