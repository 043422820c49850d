import { ProviderError } from './types.js';

export interface UpstreamTimeouts {
  /** Until the response headers (streams) or the whole response (non-streaming calls). */
  timeoutMs: number;
  /** Longest silence allowed between two reads of a stream. */
  idleTimeoutMs: number;
}

export interface UpstreamResponse {
  response: Response;
  /** Aborts the upstream request (reading the body stops with the caller's reason). */
  abort(reason?: unknown): void;
  /** Stops the timer that covers the headers; the caller then guards reads itself. */
  headersReceived(): void;
}

const MAX_ERROR_BODY = 64 * 1024;

/** The provider's own explanation from an error body (OpenAI, Anthropic and Gemini all nest it in `error`). */
export function providerErrorMessage(text: string): string {
  let message = text;
  try {
    const parsed = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const candidate =
      typeof parsed.error === 'object' && parsed.error !== null
        ? parsed.error.message
        : (parsed.error ?? parsed.message);
    if (typeof candidate === 'string' && candidate) message = candidate;
  } catch {
    // not JSON: the text is the message
  }
  message = message.trim() || 'no details given';
  return message.length > 500 ? `${message.slice(0, 500)}…` : message;
}

async function readCapped(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      parts.push(value);
      size += value.byteLength;
      if (size >= MAX_ERROR_BODY) break;
    }
  } catch {
    // a broken error body still gets reported by status
  } finally {
    reader.cancel().catch(() => {});
  }
  return Buffer.concat(parts).toString('utf8').slice(0, MAX_ERROR_BODY);
}

/**
 * POSTs JSON to a provider. Resolves with a 2xx response; a non-2xx answer, a connection failure or a timeout
 * becomes a ProviderError. When the caller's signal aborts, the request stops and the caller's reason is
 * thrown as it is (the proxy decides what an abort means).
 */
export async function postUpstream(
  url: string,
  init: { headers: Record<string, string>; body: unknown; signal: AbortSignal; timeouts: UpstreamTimeouts },
): Promise<UpstreamResponse> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(init.signal.reason);
  if (init.signal.aborted) throw init.signal.reason;
  init.signal.addEventListener('abort', onAbort, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new Error('upstream timeout'));
  }, init.timeouts.timeoutMs);
  const clear = () => clearTimeout(timer);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...init.headers },
      body: JSON.stringify(init.body),
      signal: controller.signal,
    });
  } catch (err) {
    clear();
    init.signal.removeEventListener('abort', onAbort);
    if (init.signal.aborted) throw init.signal.reason;
    if (timedOut)
      throw new ProviderError(0, 'the model provider did not answer in time', { timeout: true, cause: err });
    throw new ProviderError(0, `could not reach the model provider (${describe(err)})`, { cause: err });
  }
  if (!response.ok) {
    const text = await readCapped(response);
    clear();
    init.signal.removeEventListener('abort', onAbort);
    throw new ProviderError(response.status, providerErrorMessage(text), {
      ...(response.headers.get('retry-after') ? { retryAfter: response.headers.get('retry-after') as string } : {}),
    });
  }
  return {
    response,
    abort: (reason) => controller.abort(reason),
    headersReceived: clear,
  };
}

/** Reads a 2xx JSON body within the call's total timeout. */
export async function readJson(upstream: UpstreamResponse, signal: AbortSignal): Promise<unknown> {
  try {
    const text = await upstream.response.text();
    upstream.headersReceived();
    try {
      return JSON.parse(text);
    } catch {
      throw new ProviderError(502, 'the model provider sent a response that is not JSON');
    }
  } catch (err) {
    upstream.headersReceived();
    if (err instanceof ProviderError) throw err;
    if (signal.aborted) throw signal.reason;
    throw new ProviderError(0, `the model provider's response broke off (${describe(err)})`, { cause: err });
  }
}

/**
 * The body of a streaming response, guarded by the idle timeout. A read error after the caller aborted is
 * the caller's reason; any other is a ProviderError marked `afterOutput`.
 */
export async function* streamBody(
  upstream: UpstreamResponse,
  signal: AbortSignal,
  idleTimeoutMs: number,
): AsyncGenerator<Uint8Array> {
  upstream.headersReceived();
  const body = upstream.response.body;
  if (!body) throw new ProviderError(502, 'the model provider sent an empty stream', { afterOutput: true });
  const reader = body.getReader();
  try {
    for (;;) {
      let timer: NodeJS.Timeout | undefined;
      const idle = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = new ProviderError(0, `the model provider sent nothing for ${idleTimeoutMs / 1000} s`, {
            timeout: true,
            afterOutput: true,
          });
          upstream.abort(error);
          reject(error);
        }, idleTimeoutMs);
      });
      let result: Awaited<ReturnType<typeof reader.read>>;
      try {
        result = await Promise.race([reader.read(), idle]);
      } catch (err) {
        if (err instanceof ProviderError) throw err;
        if (signal.aborted) throw signal.reason;
        throw new ProviderError(0, `the model provider's stream broke off (${describe(err)})`, {
          afterOutput: true,
          cause: err,
        });
      } finally {
        clearTimeout(timer);
      }
      if (result.done) return;
      yield result.value;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  return cause?.code ?? cause?.message ?? (err as Error)?.message ?? String(err);
}
