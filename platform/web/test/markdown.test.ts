import { describe, expect, it } from 'vitest';
import { renderMarkdown, safeHref } from '../src/lib/markdown';

describe('renderMarkdown', () => {
  it('highlights fenced code blocks and adds a copy button', () => {
    const html = renderMarkdown('Here:\n\n```python\ndef total(x):\n    return x + 1\n```\n');
    expect(html).toContain('class="hljs language-python"');
    expect(html).toContain('<span class="hljs-keyword">def</span>');
    expect(html).toContain('data-copy-code');
  });

  it('renders a still-open fence (mid-stream) as code', () => {
    const html = renderMarkdown('```typescript\nconst a = 1;');
    expect(html).toContain('language-typescript');
    expect(html).toContain('hljs-keyword');
  });

  it('never interprets raw HTML or unsafe links from a model', () => {
    const html = renderMarkdown('<img src=x onerror=alert(1)> <script>alert(2)</script>\n\n[x](javascript:alert(3))');
    expect(html).not.toContain('<img');
    expect(html).not.toContain('<script');
    expect(html).toContain('&lt;script&gt;');
    expect(html).not.toContain('javascript:');
  });

  it('opens web links in a new tab without an opener', () => {
    expect(renderMarkdown('[docs](https://example.com/a?b=1&c=2)')).toContain(
      '<a href="https://example.com/a?b=1&amp;c=2" target="_blank" rel="noopener noreferrer nofollow">docs</a>',
    );
  });

  it('shows images as links instead of loading them', () => {
    const html = renderMarkdown('![chart](https://tracker.example/pixel.png)');
    expect(html).not.toContain('<img');
    expect(html).toContain('href="https://tracker.example/pixel.png"');
  });

  it('escapes code in unknown languages', () => {
    expect(renderMarkdown('```brainfuck\n<b>\n```')).toContain('&lt;b&gt;');
  });
});

describe('safeHref', () => {
  it('allows web, mail and same-site links only', () => {
    expect(safeHref('https://a.b')).toBe('https://a.b');
    expect(safeHref('mailto:a@b.c')).toBe('mailto:a@b.c');
    expect(safeHref('/dashboard')).toBe('/dashboard');
    expect(safeHref('//evil.example')).toBeUndefined();
    expect(safeHref('data:text/html,x')).toBeUndefined();
    expect(safeHref(' JavaScript:alert(1)')).toBeUndefined();
  });
});
