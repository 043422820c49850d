import { formatMicros } from '@agentstack/core';
import { ProviderError, UnsupportedByProvider } from './providers/types.js';

/**
 * An error the proxy answers with, in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
 * `type` follows OpenAI's vocabulary (invalid_request_error, authentication_error, permission_error,
 * insufficient_quota, rate_limit_error, api_error) so OpenAI SDKs classify it; `code` is ours and stable.
 */
export class ProxyError extends Error {
  constructor(
    readonly status: number,
    readonly type: string,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'ProxyError';
  }

  toJSON() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code = 'invalid_value') =>
  new ProxyError(400, 'invalid_request_error', code, message, param);

export const modelNotFound = (model: string, disabled: boolean) =>
  new ProxyError(
    404,
    'invalid_request_error',
    'model_not_found',
    disabled
      ? `The model \`${model}\` is disabled. GET /v1/models lists the models you can use.`
      : `The model \`${model}\` does not exist. GET /v1/models lists the models you can use.`,
    'model',
  );

/** The hold could not be made: the balance does not cover the smallest call. */
export const insufficientCredits = (model: string, balanceMicros: bigint, minimumMicros: bigint, minTokens: number) =>
  new ProxyError(
    402,
    'insufficient_quota',
    'insufficient_credits',
    `Credits exhausted: the available balance is $${formatMicros(balanceMicros)}` +
      ` and the smallest request to ${model} (this input and ${minTokens} output tokens) needs` +
      ` $${formatMicros(minimumMicros)}. Top up your credits to continue.`,
    null,
    { 'x-should-retry': 'false' },
  );

/** What a provider's failure means for the client (no charge was made: the hold is released). */
export function fromProviderError(err: ProviderError, label: string): ProxyError {
  const said = `${label} said: ${err.providerMessage}`;
  const { status } = err;
  if (status === 0 && err.options.afterOutput && !err.options.timeout) {
    return new ProxyError(
      502,
      'api_error',
      'provider_error',
      `${label}'s answer broke off (${err.providerMessage}). You were not charged.`,
    );
  }
  if (status === 0) {
    return err.options.timeout
      ? new ProxyError(504, 'api_error', 'provider_timeout', `${label} did not answer in time. You were not charged.`)
      : new ProxyError(
          502,
          'api_error',
          'provider_unreachable',
          `${label} could not be reached (${err.providerMessage}). You were not charged.`,
        );
  }
  if (status === 401 || status === 403) {
    return new ProxyError(
      502,
      'api_error',
      'provider_auth_failed',
      `${label} refused the platform's credentials; an operator must check its API key. You were not charged.`,
    );
  }
  if (status === 429) {
    return new ProxyError(
      429,
      'rate_limit_error',
      'provider_rate_limited',
      `${label} is rate limiting requests; try again shortly. You were not charged.`,
      null,
      { 'retry-after': err.options.retryAfter ?? '1' },
    );
  }
  if (status >= 400 && status < 500) {
    return new ProxyError(
      400,
      'invalid_request_error',
      'provider_rejected_request',
      `${label} rejected the request. ${said}`,
    );
  }
  if (status === 503 || status === 529) {
    return new ProxyError(503, 'api_error', 'provider_overloaded', `${label} is overloaded. You were not charged.`);
  }
  return new ProxyError(502, 'api_error', 'provider_error', `${label} failed (${status}). You were not charged.`);
}

export function toProxyError(err: unknown, label: string): ProxyError | undefined {
  if (err instanceof ProxyError) return err;
  if (err instanceof ProviderError) return fromProviderError(err, label);
  if (err instanceof UnsupportedByProvider) {
    return new ProxyError(400, 'invalid_request_error', 'unsupported_parameter', err.message, err.param);
  }
  return undefined;
}
