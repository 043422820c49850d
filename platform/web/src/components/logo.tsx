import Link from 'next/link';

export function Logo({ href = '/' }: { href?: string }) {
  return (
    <Link href={href} className="flex items-center gap-2 font-semibold tracking-tight text-ink">
      {/* biome-ignore lint/performance/noImgElement: a tiny static SVG */}
      <img src="/icon.svg" alt="" width={28} height={28} className="rounded-md" />
      <span>
        Agent<span className="text-gradient">Squads</span>
      </span>
    </Link>
  );
}
