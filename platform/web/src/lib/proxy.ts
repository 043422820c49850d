/**
 * The web app's `/api/*` proxy to the platform API: one origin and one cookie for the browser. Streams both
 * ways (request bodies such as uploads, SSE responses token by token), passes every Set-Cookie, never
 * follows redirects (OAuth answers 302s the browser must see) and forwards the client's address.
 */

const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  // Let the upstream answer uncompressed: the body is streamed through as is (Next compresses if it wants).
  'accept-encoding',
]);

export interface ProxyOptions {
  /** Base URL of the platform API, e.g. http://127.0.0.1:3001 */
  upstream: string;
  /** The origin the platform API trusts for cookies (PLATFORM_PUBLIC_URL). */
  publicOrigin?: string;
  fetch?: typeof fetch;
}

/** Request headers for the upstream call. */
export function upstreamHeaders(request: Request, publicOrigin: string | undefined): Headers {
  const out = new Headers();
  for (const [name, value] of request.headers) {
    if (!HOP_BY_HOP.has(name.toLowerCase())) out.set(name, value);
  }
  // The browser reached this app as e.g. http://localhost:3000 while the platform knows it as
  // http://127.0.0.1:3000: a request that is same-origin *to this app* is same-origin to the platform. Only
  // exactly that case is rewritten; a foreign Origin passes unchanged and is refused upstream.
  const origin = request.headers.get('origin');
  if (origin && publicOrigin && origin !== publicOrigin && origin === requestOrigin(request)) {
    out.set('origin', publicOrigin);
  }
  return out;
}

/** The origin the browser used to reach this app (Host + forwarded protocol). */
export function requestOrigin(request: Request): string | undefined {
  const host = request.headers.get('x-forwarded-host') ?? request.headers.get('host');
  if (!host) return undefined;
  const proto =
    request.headers.get('x-forwarded-proto')?.split(',')[0]?.trim() ?? new URL(request.url).protocol.replace(':', '');
  return `${proto}://${host}`;
}

/** Response headers back to the browser: everything but hop-by-hop framing, each Set-Cookie kept separate. */
export function downstreamHeaders(response: Response): Headers {
  const out = new Headers();
  for (const [name, value] of response.headers) {
    const lower = name.toLowerCase();
    if (lower === 'set-cookie' || HOP_BY_HOP.has(lower) || lower === 'content-encoding') continue;
    out.set(name, value);
  }
  for (const cookie of response.headers.getSetCookie()) out.append('set-cookie', cookie);
  if (response.headers.get('content-type')?.startsWith('text/event-stream')) {
    // Nothing between here and the browser may buffer or compress a stream of tokens.
    out.set('cache-control', 'no-cache, no-transform');
    out.set('x-accel-buffering', 'no');
  }
  return out;
}

export async function proxyRequest(request: Request, options: ProxyOptions): Promise<Response> {
  const url = new URL(request.url);
  const target = `${options.upstream.replace(/\/+$/, '')}${url.pathname}${url.search}`;
  const hasBody = request.method !== 'GET' && request.method !== 'HEAD' && request.body !== null;
  let response: Response;
  try {
    response = await (options.fetch ?? fetch)(target, {
      method: request.method,
      headers: upstreamHeaders(request, options.publicOrigin),
      body: hasBody ? request.body : null,
      redirect: 'manual',
      signal: request.signal,
      cache: 'no-store',
      ...(hasBody ? { duplex: 'half' } : {}),
    } as RequestInit);
  } catch (err) {
    if (request.signal.aborted) return new Response(null, { status: 499 });
    return Response.json(
      {
        error: {
          code: 'upstream_unavailable',
          message: `the platform API is not reachable (${(err as Error).message})`,
          status: 502,
        },
      },
      { status: 502 },
    );
  }
  const bodyless = response.status === 204 || response.status === 304 || request.method === 'HEAD';
  return new Response(bodyless ? null : response.body, {
    status: response.status,
    statusText: response.statusText,
    headers: downstreamHeaders(response),
  });
}
