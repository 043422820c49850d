import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { createLogger, waitFor } from '@agentstack/core';
import { createEgressProxy, type EgressProxy, parseAllowList, type Resolver } from '@agentstack/egress';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatEventOf } from '../src/events.js';
import { createOutboundDispatcher, type OutboundOptions } from '../src/outbound.js';
import { fetchUrlTool } from '../src/tools/fetch-url.js';
import { htmlToText } from '../src/tools/html-text.js';
import { runTool, type ToolContext } from '../src/tools/registry.js';
import { chat, shape, startLlm, startRuntime } from './helpers.js';

const PAGE = `<!doctype html><html><head><title>Test &amp; Page</title><style>body{color:red}</style>
<script>alert("no")</script></head><body><nav>menu menu</nav>
<h1>Hello</h1><p>First paragraph with a <a href="https://example.org/x">link</a>.</p>
<ul><li>one</li><li>two</li></ul><p>Caf&eacute; &#8364;5 &#x263A;</p></body></html>`;

/** A web server on 127.0.0.1: the kind of address a tenant must not reach unless allow-listed. */
let site: Server;
let siteUrl: string;
const hits: string[] = [];

beforeAll(async () => {
  site = createServer((req, res) => {
    hits.push(req.url ?? '');
    if (req.url === '/page') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(PAGE);
    }
    if (req.url === '/go') {
      res.writeHead(302, { location: '/page' });
      return res.end();
    }
    if (req.url === '/loop') {
      res.writeHead(302, { location: '/loop' });
      return res.end();
    }
    if (req.url === '/ftp') {
      res.writeHead(302, { location: 'ftp://example.org/file' });
      return res.end();
    }
    if (req.url === '/data.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"answer":42}');
    }
    if (req.url === '/image.png') {
      res.writeHead(200, { 'content-type': 'image/png', 'content-length': '4' });
      return res.end(Buffer.from([1, 2, 3, 4]));
    }
    if (req.url === '/huge') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end('z'.repeat(3_000_000));
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('no such page');
  });
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  siteUrl = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => site.close(() => resolve())));

const proxies: EgressProxy[] = [];
afterAll(async () => {
  await Promise.all(proxies.map((p) => p.close()));
});

function logSink() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: createLogger({ name: 'egress', level: 'info', destination }), lines };
}

async function startEgress(allow?: string[]) {
  const { log, lines } = logSink();
  const proxy = createEgressProxy({ ...(allow ? { allow } : {}), log });
  proxies.push(proxy);
  const { url } = await proxy.listen({ port: 0 });
  return { url: url!, lines };
}

async function fetchWith(outbound: OutboundOptions, args: { url: string; raw?: boolean }) {
  const http = createOutboundDispatcher(outbound);
  const ctx: Omit<ToolContext, 'signal' | 'timeoutMs'> = {
    workspace: '/nonexistent',
    tenantId: 'ten_fetch',
    env: {},
    http,
    platform: { url: 'http://127.0.0.1:9', apiKey: 'k' },
    log: createLogger({ name: 'fetch-test', level: 'silent' }),
  };
  try {
    return await runTool(fetchUrlTool, JSON.stringify(args), ctx, {
      signal: new AbortController().signal,
      timeoutMs: 10_000,
    });
  } finally {
    await http.close();
  }
}

describe('fetch_url through the egress proxy', () => {
  it('is refused for a private target, and the proxy logs the refusal', async () => {
    const egress = await startEgress();
    hits.length = 0;
    const result = await fetchWith({ httpProxy: egress.url }, { url: `${siteUrl}/page` });
    expect(result).toMatchObject({
      isError: true,
      output: `refused by the egress proxy: ${new URL(siteUrl).host} is not a public internet address`,
    });
    expect(hits).toEqual([]);
    await waitFor(() => egress.lines.find((l) => l.event === 'egress_refused'), { what: 'refusal log' });
    expect(egress.lines.find((l) => l.event === 'egress_refused')).toMatchObject({
      host: '127.0.0.1',
      kind: 'loopback',
    });
  });

  it('fetches and extracts text when the proxy allows the target', async () => {
    const egress = await startEgress(['127.0.0.1']);
    const result = await fetchWith({ httpProxy: egress.url, httpsProxy: egress.url }, { url: `${siteUrl}/go` });
    expect(result.isError).toBe(false);
    expect(result.output).toBe(
      `URL: ${siteUrl}/page\nStatus: 200 OK\nContent-Type: text/html; charset=utf-8\n\n` +
        'Title: Test & Page\n\n# Hello\n\nFirst paragraph with a link (https://example.org/x).\n\n• one\n• two\n\nCafé €5 ☺',
    );
    const raw = await fetchWith({ httpProxy: egress.url }, { url: `${siteUrl}/page`, raw: true });
    expect(raw.output).toContain('<script>alert("no")</script>');
  });

  it('goes through the proxy from inside the agent loop', async () => {
    const egress = await startEgress();
    const llm = await startLlm();
    llm.on(
      { userMessage: 'read the intranet', predicate: (req) => req.messages.at(-1)?.role === 'user' },
      { toolCalls: [{ id: 'call_fetch', name: 'fetch_url', arguments: { url: `${siteUrl}/page` } }] },
    );
    llm.on({ toolCallId: 'call_fetch' }, { content: 'I cannot reach that address.' });
    const runtime = await startRuntime({ llmUrl: llm.url, env: { HTTP_PROXY: egress.url, HTTPS_PROXY: egress.url } });
    hits.length = 0;
    try {
      const { events } = await chat(runtime.client, { content: 'read the intranet' });
      expect(shape(events)).toEqual(['start', 'tool_call', 'tool_result', 'text', 'done']);
      expect(events[2] as ChatEventOf<'tool_result'>).toMatchObject({
        isError: true,
        output: expect.stringContaining('refused by the egress proxy'),
      });
      expect(hits).toEqual([]);
    } finally {
      await runtime.close();
      await llm.stop();
    }
  });
});

describe('fetch_url without a proxy (the runtime checks addresses itself)', () => {
  it('refuses loopback and names resolving to private addresses', async () => {
    hits.length = 0;
    expect(await fetchWith({}, { url: `${siteUrl}/page` })).toMatchObject({
      isError: true,
      output: 'refused: 127.0.0.1 is a loopback address; only public addresses may be reached',
    });
    const resolve: Resolver = async () => [{ address: '10.0.0.8', family: 4 }];
    expect(await fetchWith({ resolve }, { url: 'http://intranet.example/' })).toMatchObject({
      isError: true,
      output: expect.stringContaining('intranet.example resolves to 10.0.0.8, which is a private address'),
    });
    expect(await fetchWith({}, { url: 'http://[::1]:80/' })).toMatchObject({
      isError: true,
      output: expect.stringContaining('loopback'),
    });
    expect(hits).toEqual([]);
  });

  it('connects to the address it checked, keeping the name for the Host header', async () => {
    const port = new URL(siteUrl).port;
    const resolve: Resolver = async () => [{ address: '127.0.0.1', family: 4 }];
    const allow = parseAllowList(['127.0.0.1']);
    const result = await fetchWith({ resolve, allow }, { url: `http://docs.example:${port}/data.json` });
    expect(result.output).toBe(
      `URL: http://docs.example:${port}/data.json\nStatus: 200 OK\nContent-Type: application/json\n\n{"answer":42}`,
    );
  });

  it('handles redirects, binary bodies, size caps, errors and bad URLs', async () => {
    const allow = parseAllowList(['127.0.0.1']);
    expect((await fetchWith({ allow }, { url: `${siteUrl}/loop` })).output).toBe('too many redirects (more than 5)');
    expect((await fetchWith({ allow }, { url: `${siteUrl}/ftp` })).output).toBe(
      'only http:// and https:// URLs can be fetched (got ftp:)',
    );
    expect((await fetchWith({ allow }, { url: `${siteUrl}/image.png` })).output).toContain(
      '(binary content, 4 bytes: not shown',
    );
    const huge = await fetchWith({ allow }, { url: `${siteUrl}/huge` });
    expect(huge.output).toContain('[download stopped at 2000000 bytes]');
    expect(huge.output).toContain('[text cut at 20000 characters]');
    expect(await fetchWith({ allow }, { url: `${siteUrl}/missing` })).toMatchObject({
      isError: true,
      output: expect.stringContaining('Status: 404 Not Found'),
    });
    expect((await fetchWith({ allow }, { url: 'file:///etc/passwd' })).output).toBe(
      'only http:// and https:// URLs can be fetched (got file:)',
    );
    expect((await fetchWith({ allow }, { url: 'not a url' })).output).toBe('not a valid URL: not a url');
    expect((await fetchWith({ allow }, { url: `http://user:pw@127.0.0.1:1/` })).output).toBe(
      'URLs with credentials are not fetched',
    );
  });
});

describe('htmlToText', () => {
  it('keeps content, drops chrome and decodes entities', () => {
    expect(htmlToText(PAGE)).toEqual({
      title: 'Test & Page',
      text: '# Hello\n\nFirst paragraph with a link (https://example.org/x).\n\n• one\n• two\n\nCafé €5 ☺',
    });
    expect(htmlToText('&Uuml;ber &ccedil;a &Aring;').text).toBe('Über ça Å');
    expect(htmlToText('<table><tr><td>a</td><td>b</td></tr></table><br>x&nbsp;y &bogus; &#0;').text).toBe(
      '| a | b\n\nx y &bogus; &#0;',
    );
  });
});
