import { LLMock } from '@copilotkit/aimock';
import { DEMO_ANSWERS } from './answers.js';

export interface DemoModelOptions {
  port: number;
  host?: string;
  /** Pause between streamed chunks, so answers visibly stream in a UI. */
  chunkDelayMs?: number;
  /** Characters per streamed chunk. */
  chunkSize?: number;
}

export interface DemoModel {
  url: string;
  stop(): Promise<void>;
}

/**
 * The offline demo model: `@copilotkit/aimock` speaking the OpenAI chat completions API (streaming included,
 * with the final usage chunk) from the fixture answers in answers.ts. The LLM proxy routes models marked
 * `demo` here; nothing leaves the machine.
 */
export async function startDemoModel(options: DemoModelOptions): Promise<DemoModel> {
  const mock = new LLMock({
    port: options.port,
    host: options.host ?? '127.0.0.1',
    latency: options.chunkDelayMs ?? 35,
    chunkSize: options.chunkSize ?? 12,
  });
  for (const answer of DEMO_ANSWERS) mock.on(answer.match, answer.response);
  await mock.start();
  return { url: mock.url, stop: () => mock.stop() };
}
