import { fetch } from 'undici';
import { z } from 'zod';
import { htmlToText } from './html-text.js';
import { defineTool, ToolError } from './registry.js';

export const FETCH_MAX_BYTES = 2_000_000;
export const FETCH_TEXT_CHARS = 20_000;
const MAX_REDIRECTS = 5;

const TEXTUAL =
  /^(text\/|application\/(json|xml|xhtml\+xml|javascript|ld\+json|rss\+xml|atom\+xml|x-yaml|yaml|toml|csv)|[^;]*\+(json|xml))/i;

/** What went wrong, in words the model (and the user reading the tool activity) can act on. */
function describeFailure(err: unknown, url: string): string {
  const chain: Error[] = [];
  for (let e: unknown = err; e instanceof Error && chain.length < 5; e = (e as { cause?: unknown }).cause)
    chain.push(e);
  for (const e of chain) {
    if (e.name === 'EgressRefusedError') return `refused: ${e.message}`;
    const proxy = /Proxy response \((\d+)\)/.exec(e.message);
    if (proxy) {
      return proxy[1] === '403'
        ? `refused by the egress proxy: ${new URL(url).host} is not a public internet address`
        : `the egress proxy could not reach ${new URL(url).host} (proxy answered ${proxy[1]})`;
    }
    const code = (e as { code?: string }).code;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `could not resolve ${new URL(url).hostname}`;
    if (code === 'ECONNREFUSED') return `connection refused by ${new URL(url).host}`;
    if (code && /CERT|SSL|TLS/.test(code)) return `TLS error talking to ${new URL(url).host}: ${e.message}`;
  }
  const last = chain.at(-1);
  return `request failed: ${last?.message ?? String(err)}`;
}

export const fetchUrlTool = defineTool({
  name: 'fetch_url',
  description:
    'Fetch a public web page or file over http(s) and return its text (HTML is reduced to readable text ' +
    'with link targets). Only public internet addresses can be reached.',
  parameters: z.object({
    url: z.string().min(1).max(4_000).describe('The http:// or https:// URL to fetch'),
    raw: z.boolean().optional().describe('Return HTML source instead of extracted text (default false)'),
  }),
  async execute({ url, raw = false }, ctx) {
    let current: URL;
    try {
      current = new URL(url);
    } catch {
      throw new ToolError(`not a valid URL: ${url}`);
    }
    for (let hop = 0; ; hop++) {
      if (current.protocol !== 'http:' && current.protocol !== 'https:') {
        throw new ToolError(`only http:// and https:// URLs can be fetched (got ${current.protocol})`);
      }
      if (current.username || current.password) throw new ToolError('URLs with credentials are not fetched');
      let res: Awaited<ReturnType<typeof fetch>>;
      try {
        res = await fetch(current, {
          dispatcher: ctx.http,
          redirect: 'manual',
          signal: ctx.signal,
          headers: {
            'user-agent': 'AgentSquads-Agent/1.0 (+fetch_url)',
            accept: 'text/html,application/xhtml+xml,application/json,text/plain;q=0.9,*/*;q=0.5',
          },
        });
      } catch (err) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        throw new ToolError(describeFailure(err, current.href));
      }
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel();
        if (hop >= MAX_REDIRECTS) throw new ToolError(`too many redirects (more than ${MAX_REDIRECTS})`);
        current = new URL(location, current);
        continue;
      }
      const type = res.headers.get('content-type') ?? '';
      const declared = Number(res.headers.get('content-length') ?? '0');
      const head = `URL: ${current.href}\nStatus: ${res.status} ${res.statusText}\nContent-Type: ${type || '(none)'}`;
      if (type && !TEXTUAL.test(type)) {
        await res.body?.cancel();
        const size = declared ? `, ${declared} bytes` : '';
        return {
          output: `${head}\n\n(binary content${size}: not shown. Download it with the shell tool, e.g. curl -o file URL)`,
          isError: !res.ok,
        };
      }
      const { bytes, complete } = await readCapped(res.body, FETCH_MAX_BYTES, ctx.signal);
      const body = new TextDecoder().decode(bytes);
      const isHtml = /html/i.test(type) || (!type && /^\s*<(!doctype html|html)/i.test(body));
      let text: string;
      if (isHtml && !raw) {
        const page = htmlToText(body);
        text = `${page.title ? `Title: ${page.title}\n\n` : ''}${page.text}`;
      } else {
        text = body;
      }
      const cut = text.length > FETCH_TEXT_CHARS;
      if (cut) text = text.slice(0, FETCH_TEXT_CHARS);
      const notes = [
        !complete ? `[download stopped at ${FETCH_MAX_BYTES} bytes]` : '',
        cut ? `[text cut at ${FETCH_TEXT_CHARS} characters]` : '',
      ].filter(Boolean);
      return { output: [head, '', text, ...notes].join('\n'), isError: !res.ok };
    }
  },
});

async function readCapped(
  body: ReadableStream<Uint8Array> | null,
  max: number,
  signal: AbortSignal,
): Promise<{ bytes: Uint8Array; complete: boolean }> {
  if (!body) return { bytes: new Uint8Array(), complete: true };
  const reader = body.getReader();
  const parts: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      if (signal.aborted) throw signal.reason;
      const { value, done } = await reader.read();
      if (done) return { bytes: Buffer.concat(parts), complete: true };
      const room = max - total;
      parts.push(value.length > room ? value.subarray(0, room) : value);
      total += Math.min(value.length, room);
      if (total >= max) {
        await reader.cancel();
        return { bytes: Buffer.concat(parts), complete: false };
      }
    }
  } finally {
    reader.releaseLock();
  }
}
