import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { z } from 'zod';

/**
 * A Hand is a ready-made agent: which tools it may use, its system prompt and its settings. Hands are TOML
 * manifests in a directory (`HANDS_DIR`, default `data/hands/`):
 *
 *     name = "researcher"
 *     description = "Researches a topic on the web and writes a sourced report"
 *     tools = ["fetch_url", "write_file", "read_file", "list_files"]
 *     system_prompt = """You are …"""
 *
 *     [settings]               # every key optional
 *     model = "gpt-4o"         # default: the request's model, else RUNTIME_DEFAULT_MODEL
 *     max_iterations = 20      # model calls per message (default 12)
 *     temperature = 0.3
 *     tool_timeout_seconds = 120   # per tool call (default 60)
 *     max_repeated_tool_calls = 3  # identical calls in a row before the run stops (default 3)
 */
export const handManifestSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'lowercase letters, digits, "-" and "_", at most 64 characters'),
  description: z.string().trim().min(1).max(500),
  tools: z.array(z.string()).max(64).default([]),
  system_prompt: z.string().trim().min(1).max(50_000),
  settings: z
    .strictObject({
      model: z.string().min(1).max(200).optional(),
      max_iterations: z.number().int().min(1).max(100).default(12),
      temperature: z.number().min(0).max(2).optional(),
      tool_timeout_seconds: z.number().positive().max(3_600).default(60),
      max_repeated_tool_calls: z.number().int().min(2).max(20).default(3),
    })
    .default({ max_iterations: 12, tool_timeout_seconds: 60, max_repeated_tool_calls: 3 }),
});

export interface Hand {
  name: string;
  description: string;
  /** Tool names this Hand may use; calls to anything else are refused. */
  tools: string[];
  systemPrompt: string;
  settings: {
    model?: string;
    maxIterations: number;
    temperature?: number;
    toolTimeoutSeconds: number;
    maxRepeatedToolCalls: number;
  };
  /** The manifest it came from (file name only). */
  file: string;
}

export interface HandProblem {
  file: string;
  /** Dotted path of the offending field (`settings.max_iterations`, `tools[2]`), or `(file)`. */
  field: string;
  message: string;
}

export class HandLoadError extends Error {
  readonly problems: HandProblem[];
  constructor(dir: string, problems: HandProblem[]) {
    super(`invalid Hands in ${dir}:\n${problems.map((p) => `  ${p.file}: ${p.field}: ${p.message}`).join('\n')}`);
    this.name = 'HandLoadError';
    this.problems = problems;
  }
}

function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `${out ? '.' : ''}${String(part)}`;
  return out || '(file)';
}

/** Parses and validates one manifest; `knownTools` are the tool names the runtime has. */
export function parseHand(file: string, text: string, knownTools: readonly string[]): Hand | HandProblem[] {
  let data: unknown;
  try {
    data = parseToml(text);
  } catch (err) {
    return [{ file, field: '(toml)', message: (err as Error).message.split('\n')[0] ?? 'invalid TOML' }];
  }
  const result = handManifestSchema.safeParse(data);
  if (!result.success) {
    return result.error.issues.map((issue) => ({ file, field: fieldPath(issue.path), message: issue.message }));
  }
  const m = result.data;
  const problems: HandProblem[] = [];
  m.tools.forEach((tool, i) => {
    if (!knownTools.includes(tool)) {
      problems.push({
        file,
        field: `tools[${i}]`,
        message: `unknown tool "${tool}" (known: ${knownTools.join(', ')})`,
      });
    } else if (m.tools.indexOf(tool) !== i) {
      problems.push({ file, field: `tools[${i}]`, message: `"${tool}" is listed twice` });
    }
  });
  if (problems.length > 0) return problems;
  const s = m.settings;
  return {
    name: m.name,
    description: m.description,
    tools: m.tools,
    systemPrompt: m.system_prompt,
    settings: {
      ...(s.model ? { model: s.model } : {}),
      maxIterations: s.max_iterations,
      ...(s.temperature !== undefined ? { temperature: s.temperature } : {}),
      toolTimeoutSeconds: s.tool_timeout_seconds,
      maxRepeatedToolCalls: s.max_repeated_tool_calls,
    },
    file,
  };
}

/**
 * Loads every `*.toml` in `dir`. Any invalid manifest, unknown tool or duplicate name fails the whole load
 * with one error listing every problem by file and field: a runtime never starts with half its Hands.
 */
export async function loadHands(dir: string, knownTools: readonly string[]): Promise<Map<string, Hand>> {
  let files: string[];
  try {
    files = (await readdir(dir)).filter((f) => f.endsWith('.toml')).sort();
  } catch (err) {
    throw new HandLoadError(dir, [{ file: dir, field: '(directory)', message: (err as Error).message }]);
  }
  if (files.length === 0) {
    throw new HandLoadError(dir, [{ file: dir, field: '(directory)', message: 'no *.toml Hand manifests' }]);
  }
  const hands = new Map<string, Hand>();
  const problems: HandProblem[] = [];
  for (const file of files) {
    const parsed = parseHand(basename(file), await readFile(join(dir, file), 'utf8'), knownTools);
    if (Array.isArray(parsed)) {
      problems.push(...parsed);
      continue;
    }
    const earlier = hands.get(parsed.name);
    if (earlier) {
      problems.push({ file, field: 'name', message: `"${parsed.name}" is already defined in ${earlier.file}` });
      continue;
    }
    hands.set(parsed.name, parsed);
  }
  if (problems.length > 0) throw new HandLoadError(dir, problems);
  return hands;
}

/** What the platform shows in its Hand catalog. */
export function describeHand(hand: Hand) {
  return {
    name: hand.name,
    description: hand.description,
    tools: hand.tools,
    settings: hand.settings,
  };
}
