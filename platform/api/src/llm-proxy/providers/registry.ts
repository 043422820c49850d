import type { ModelProvider } from '../../db.js';
import type { ModelRow } from '../../store.js';
import type { ProxySettings } from '../config.js';
import { ProxyError } from '../errors.js';
import type { UpstreamTimeouts } from './http.js';
import { AnthropicProvider, GeminiProvider, OpenAIProvider } from './transports.js';
import type { Provider } from './types.js';

export interface ProviderEnv {
  OPENAI_API_KEY?: string | undefined;
  OPENAI_BASE_URL?: string | undefined;
  ANTHROPIC_API_KEY?: string | undefined;
  ANTHROPIC_BASE_URL?: string | undefined;
  GEMINI_API_KEY?: string | undefined;
  GOOGLE_API_KEY?: string | undefined;
  GEMINI_BASE_URL?: string | undefined;
  OPENAI_COMPAT_BASE_URL?: string | undefined;
  OPENAI_COMPAT_API_KEY?: string | undefined;
  OPENAI_COMPAT_NAME?: string | undefined;
  DEMO_MODEL_URL?: string | undefined;
}

/** The variables that switch each provider on, for messages. */
export const PROVIDER_ENV: Record<ModelProvider, string> = {
  openai: 'OPENAI_API_KEY',
  anthropic: 'ANTHROPIC_API_KEY',
  google: 'GEMINI_API_KEY',
  'openai-compatible': 'OPENAI_COMPAT_BASE_URL',
};

const PROVIDER_NAMES: Record<ModelProvider, string> = {
  openai: 'OpenAI',
  anthropic: 'Anthropic',
  google: 'Google Gemini',
  'openai-compatible': 'an OpenAI-compatible server',
};

export const NO_PROVIDER_MESSAGE =
  'No model provider is configured on this platform. An operator must set OPENAI_API_KEY, ANTHROPIC_API_KEY, ' +
  'GEMINI_API_KEY (or GOOGLE_API_KEY) or OPENAI_COMPAT_BASE_URL (Ollama, vLLM, LM Studio) — or start the ' +
  'stack with --demo to use the offline demo model.';

/**
 * Which upstream serves a model row, from configuration alone: the row's `provider` picks the wire format
 * and the env its key and base URL; rows marked `demo` go to the demo model server (DEMO_MODEL_URL) whatever
 * their provider. Providers are built once; the model row is read per request, so edits apply at once.
 */
export class ProviderRegistry {
  private readonly providers = new Map<string, Provider>();
  private readonly configured: Record<ModelProvider, boolean>;

  constructor(
    readonly env: ProviderEnv,
    settings: Pick<ProxySettings, 'upstreamTimeoutMs' | 'streamIdleTimeoutMs'>,
  ) {
    const timeouts: UpstreamTimeouts = {
      timeoutMs: settings.upstreamTimeoutMs,
      idleTimeoutMs: settings.streamIdleTimeoutMs,
    };
    const geminiKey = env.GEMINI_API_KEY ?? env.GOOGLE_API_KEY;
    this.configured = {
      openai: Boolean(env.OPENAI_API_KEY || env.OPENAI_BASE_URL),
      anthropic: Boolean(env.ANTHROPIC_API_KEY || env.ANTHROPIC_BASE_URL),
      google: Boolean(geminiKey || env.GEMINI_BASE_URL),
      'openai-compatible': Boolean(env.OPENAI_COMPAT_BASE_URL),
    };
    if (this.configured.openai) {
      this.providers.set(
        'openai',
        new OpenAIProvider('OpenAI', {
          baseUrl: env.OPENAI_BASE_URL ?? 'https://api.openai.com/v1',
          apiKey: env.OPENAI_API_KEY,
          flavour: 'openai',
          timeouts,
        }),
      );
    }
    if (this.configured.anthropic) {
      this.providers.set(
        'anthropic',
        new AnthropicProvider({
          baseUrl: env.ANTHROPIC_BASE_URL ?? 'https://api.anthropic.com',
          apiKey: env.ANTHROPIC_API_KEY,
          timeouts,
        }),
      );
    }
    if (this.configured.google) {
      this.providers.set(
        'google',
        new GeminiProvider({
          baseUrl: env.GEMINI_BASE_URL ?? 'https://generativelanguage.googleapis.com',
          apiKey: geminiKey,
          timeouts,
        }),
      );
    }
    if (env.OPENAI_COMPAT_BASE_URL) {
      this.providers.set(
        'openai-compatible',
        new OpenAIProvider(env.OPENAI_COMPAT_NAME ?? 'the OpenAI-compatible server', {
          baseUrl: env.OPENAI_COMPAT_BASE_URL,
          apiKey: env.OPENAI_COMPAT_API_KEY,
          flavour: 'compatible',
          timeouts,
        }),
      );
    }
    if (env.DEMO_MODEL_URL) {
      this.providers.set(
        'demo',
        new OpenAIProvider('the demo model server', {
          baseUrl: `${env.DEMO_MODEL_URL.replace(/\/+$/, '')}/v1`,
          apiKey: undefined,
          flavour: 'compatible',
          timeouts,
        }),
      );
    }
  }

  /** True when the demo model server is available (`start --demo`). */
  get demo(): boolean {
    return this.providers.has('demo');
  }

  /** Whether a model row can be served here. */
  available(model: Pick<ModelRow, 'provider' | 'demo'>): boolean {
    return this.providers.has(model.demo ? 'demo' : model.provider);
  }

  /** The provider for a model row, or a 503 that names the variables to set. */
  forModel(model: Pick<ModelRow, 'name' | 'provider' | 'demo'>): Provider {
    const provider = this.providers.get(model.demo ? 'demo' : model.provider);
    if (provider) return provider;
    const headers = { 'x-should-retry': 'false' };
    if (model.demo) {
      throw new ProxyError(
        503,
        'api_error',
        'demo_model_unavailable',
        `\`${model.name}\` is the offline demo model; it runs only when the stack is started with --demo ` +
          '(DEMO_MODEL_URL is not set).',
        'model',
        headers,
      );
    }
    if (this.providers.size === 0 || (this.providers.size === 1 && this.demo)) {
      const demoHint = this.demo ? ' The offline demo model is available: use the model `demo`.' : '';
      throw new ProxyError(
        503,
        'api_error',
        'no_provider_configured',
        `${NO_PROVIDER_MESSAGE}${demoHint}`,
        'model',
        headers,
      );
    }
    throw new ProxyError(
      503,
      'api_error',
      'provider_not_configured',
      `\`${model.name}\` is served by ${PROVIDER_NAMES[model.provider]}, which is not configured on this platform ` +
        `(an operator must set ${PROVIDER_ENV[model.provider]}). GET /v1/models shows which models are available.`,
      'model',
      headers,
    );
  }
}
