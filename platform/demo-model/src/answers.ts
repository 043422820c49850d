import type { LLMock } from '@copilotkit/aimock';

type Match = Parameters<LLMock['on']>[0];
type Response = Parameters<LLMock['on']>[1];

/** The text of the last user message (strings or content parts). */
function lastUserText(messages: { role: string; content?: unknown }[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i]!;
    if (message.role !== 'user') continue;
    if (typeof message.content === 'string') return message.content;
    if (Array.isArray(message.content)) {
      return message.content.map((p) => (typeof p?.text === 'string' ? p.text : '')).join(' ');
    }
  }
  return '';
}

const afterToolResult = (messages: { role: string }[]) => messages.at(-1)?.role === 'tool';
const offersTool = (tools: { function?: { name?: string } }[] | undefined, name: string) =>
  (tools ?? []).some((tool) => tool.function?.name === name);

const GREETING = `Hello! 👋 I'm the **demo model** of AgentSquads, running entirely on this machine — no API key, no internet.

I can't really think, but I can show you how the product works:

- answers **stream** in as they are written,
- code comes back as highlighted blocks (ask me for *some code*),
- agents call **tools** (ask me *what files are in my workspace*),
- and every answer is billed from the token counts the model reports, to the micro-dollar.

Switch to a real model by setting \`OPENAI_API_KEY\`, \`ANTHROPIC_API_KEY\` or \`GEMINI_API_KEY\` (or point \`OPENAI_COMPAT_BASE_URL\` at Ollama).`;

const CODE = `Here's a small, complete example — a Python function that reads a CSV file and sums one column:

\`\`\`python
import csv
from pathlib import Path


def column_total(path: str, column: str) -> float:
    """Sum the numeric values of one column of a CSV file."""
    total = 0.0
    with Path(path).open(newline="") as handle:
        for row in csv.DictReader(handle):
            value = row.get(column, "").strip()
            if value:
                total += float(value)
    return total


if __name__ == "__main__":
    print(column_total("sales.csv", "amount"))
\`\`\`

Run it with \`python3 totals.py\`. The same thing in TypeScript:

\`\`\`typescript
import { readFileSync } from 'node:fs';

export function columnTotal(path: string, column: string): number {
  const [header, ...rows] = readFileSync(path, 'utf8').trim().split('\\n');
  const index = header.split(',').indexOf(column);
  return rows.reduce((sum, row) => sum + Number(row.split(',')[index] ?? 0), 0);
}
\`\`\`

*(This is the offline demo model: the answer is a fixture, but it was streamed and billed like a real one.)*`;

const FILES_DONE = `Here's what I found in your workspace (listed with the \`list_files\` tool, which ran inside your own sandbox).

In the real product the agent would now read, edit or run those files for you. With the demo model that's as far as it goes — switch to a real model to let the agent actually work on them.`;

const FALLBACK = `You're talking to the **offline demo model** — it answers from a few fixtures instead of thinking, so it didn't really understand that, sorry!

Things to try:

1. say *hello*,
2. ask for *some code* (you'll get a highlighted block),
3. ask *what files are in my workspace* (watch the tool call).

To talk to a real model, an operator sets one of these and restarts:

\`\`\`bash
export OPENAI_API_KEY=sk-...        # OpenAI
export ANTHROPIC_API_KEY=sk-ant-... # Anthropic
export GEMINI_API_KEY=...           # Google Gemini
export OPENAI_COMPAT_BASE_URL=http://127.0.0.1:11434/v1  # Ollama, vLLM, LM Studio
\`\`\``;

/** First match wins. */
export const DEMO_ANSWERS: { match: Match; response: Response }[] = [
  {
    // A tool result came back: the agent's second step.
    match: { predicate: (req) => afterToolResult(req.messages) },
    response: { content: FILES_DONE },
  },
  {
    match: {
      predicate: (req) =>
        /\b(files?|workspace|folder|directory)\b/i.test(lastUserText(req.messages)) &&
        offersTool(req.tools, 'list_files'),
    },
    response: {
      content: 'Let me look at your workspace.',
      toolCalls: [{ name: 'list_files', arguments: { path: '.' } }],
    },
  },
  {
    match: {
      predicate: (req) =>
        /\b(code|python|typescript|javascript|script|function|program|example)\b/i.test(lastUserText(req.messages)),
    },
    response: { content: CODE },
  },
  {
    match: { predicate: (req) => /\b(hi|hello|hey|hallo|bonjour|hola|help|start)\b/i.test(lastUserText(req.messages)) },
    response: { content: GREETING },
  },
  { match: { predicate: () => true }, response: { content: FALLBACK } },
];
