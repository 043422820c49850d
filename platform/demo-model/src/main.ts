import { createLogger, env, loadConfig, runMain } from '@agentstack/core';
import { z } from 'zod';
import { startDemoModel } from './server.js';

const configSchema = z.object({
  DEMO_MODEL_PORT: env.port(4010),
  DEMO_MODEL_HOST: z.string().default('127.0.0.1'),
  /** Pause between streamed chunks (a UI shows the answer growing). */
  DEMO_MODEL_CHUNK_DELAY_MS: env.int(35, 0),
  DEMO_MODEL_CHUNK_SIZE: env.int(12, 1),
  LOG_LEVEL: env.logLevel(),
});

async function serve() {
  const config = loadConfig(configSchema, process.env);
  const log = createLogger({ name: 'demo-model', level: config.LOG_LEVEL });
  const model = await startDemoModel({
    port: config.DEMO_MODEL_PORT,
    host: config.DEMO_MODEL_HOST,
    chunkDelayMs: config.DEMO_MODEL_CHUNK_DELAY_MS,
    chunkSize: config.DEMO_MODEL_CHUNK_SIZE,
  });
  log.info({ url: model.url }, 'demo model listening (OpenAI-compatible, offline fixtures)');
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) process.exit(1);
    stopping = true;
    log.info({ signal }, 'demo model stopping');
    await model.stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));
}

runMain({ serve });
