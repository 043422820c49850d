import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_HANDS_DIR } from '../src/config.js';
import { HandLoadError, loadHands, parseHand } from '../src/hands.js';
import { builtinTools } from '../src/tools/index.js';
import { handToml, tempDir } from './helpers.js';

const TOOLS = builtinTools().map((t) => t.name);
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function handsDir(files: Record<string, string>): string {
  const dir = tempDir('hands');
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

describe('Hands', () => {
  it('loads the Hands shipped in data/hands', async () => {
    const hands = await loadHands(DEFAULT_HANDS_DIR, TOOLS);
    expect([...hands.keys()]).toEqual(['assistant', 'coder', 'researcher']);
    const researcher = hands.get('researcher')!;
    expect(researcher.tools).toEqual(['fetch_url', 'write_file', 'read_file', 'list_files']);
    expect(researcher.settings).toEqual({
      maxIterations: 24,
      temperature: 0.3,
      toolTimeoutSeconds: 60,
      maxRepeatedToolCalls: 3,
    });
    expect(researcher.systemPrompt).toMatch(/^You are a meticulous research agent/);
    expect(hands.get('coder')!.settings.toolTimeoutSeconds).toBe(300);
    expect(hands.get('assistant')!.tools).toEqual(TOOLS);
  });

  it('parses a full manifest and applies defaults', () => {
    const full = parseHand(
      'full.toml',
      `name = "full"
description = "Everything set"
tools = ["shell", "read_file"]
system_prompt = """
Multi-line
prompt.
"""

[settings]
model = "gpt-4o"
max_iterations = 5
temperature = 0.7
tool_timeout_seconds = 2.5
max_repeated_tool_calls = 4
`,
      TOOLS,
    );
    expect(full).toEqual({
      name: 'full',
      description: 'Everything set',
      tools: ['shell', 'read_file'],
      systemPrompt: 'Multi-line\nprompt.',
      settings: {
        model: 'gpt-4o',
        maxIterations: 5,
        temperature: 0.7,
        toolTimeoutSeconds: 2.5,
        maxRepeatedToolCalls: 4,
      },
      file: 'full.toml',
    });
    const minimal = parseHand('min.toml', 'name = "min"\ndescription = "d"\nsystem_prompt = "p"\n', TOOLS);
    expect(minimal).toMatchObject({
      tools: [],
      settings: { maxIterations: 12, toolTimeoutSeconds: 60, maxRepeatedToolCalls: 3 },
    });
  });

  it('reports each problem by file and field', () => {
    const problems = (text: string) => parseHand('bad.toml', text, TOOLS) as { field: string; message: string }[];
    const base = 'name = "x"\ndescription = "d"\nsystem_prompt = "p"\n';
    expect(problems('name = "x"\ndescription = \n')[0]).toMatchObject({ field: '(toml)' });
    expect(problems('description = "d"\nsystem_prompt = "p"\n')).toEqual([
      { file: 'bad.toml', field: 'name', message: expect.stringContaining('expected string') },
    ]);
    expect(problems(base.replace('"x"', '"Bad Name!"'))[0]).toMatchObject({
      field: 'name',
      message: expect.stringContaining('lowercase'),
    });
    expect(problems(`${base}sytem_prompt = "typo"\n`)[0]).toMatchObject({
      field: '(file)',
      message: expect.stringContaining('sytem_prompt'),
    });
    expect(problems(`${base}[settings]\nmax_iterations = "many"\n`)[0]).toMatchObject({
      field: 'settings.max_iterations',
    });
    expect(problems(`${base}[settings]\nmax_iterations = 1000\n`)[0]).toMatchObject({
      field: 'settings.max_iterations',
    });
    expect(problems(`${base}[settings]\ntemperature = 3\n`)[0]).toMatchObject({ field: 'settings.temperature' });
    expect(problems(`${base}[settings]\nmodle = "x"\n`)[0]).toMatchObject({
      field: 'settings',
      message: expect.stringContaining('modle'),
    });
    expect(problems(`${base}tools = ["shell", "teleport"]\n`)).toEqual([
      { file: 'bad.toml', field: 'tools[1]', message: `unknown tool "teleport" (known: ${TOOLS.join(', ')})` },
    ]);
    expect(problems(`${base}tools = ["shell", "shell"]\n`)).toEqual([
      { file: 'bad.toml', field: 'tools[1]', message: '"shell" is listed twice' },
    ]);
    expect(problems(`${base}tools = "shell"\n`)[0]).toMatchObject({ field: 'tools' });
  });

  it('fails the whole load with one message naming every bad file and field', async () => {
    const dir = handsDir({
      'good.toml': handToml('good'),
      'broken.toml': handToml('broken', { settings: 'max_iterations = 0' }),
      'worse.toml': handToml('worse', { tools: ['fly'] }),
      'twin.toml': handToml('good'),
      'README.md': 'not a Hand',
    });
    const error = await loadHands(dir, TOOLS).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(HandLoadError);
    const message = (error as HandLoadError).message;
    expect(message).toContain(`invalid Hands in ${dir}:`);
    expect(message).toContain('broken.toml: settings.max_iterations: Too small');
    expect(message).toContain('twin.toml: name: "good" is already defined in good.toml');
    expect(message).toContain('worse.toml: tools[0]: unknown tool "fly"');
    expect((error as HandLoadError).problems).toHaveLength(3);
  });

  it('refuses an empty or missing directory', async () => {
    const empty = tempDir('nohands');
    dirs.push(empty);
    await expect(loadHands(empty, TOOLS)).rejects.toThrow('no *.toml Hand manifests');
    mkdirSync(join(empty, 'sub'));
    await expect(loadHands(join(empty, 'missing'), TOOLS)).rejects.toThrow('(directory): ENOENT');
  });
});
