import type { Metadata } from 'next';
import { Chat } from '@/components/chat/chat';
import { getConversations } from '@/lib/server-api';

export const metadata: Metadata = { title: 'Chat' };

export default async function ChatPage({ searchParams }: { searchParams: Promise<{ c?: string }> }) {
  const { c } = await searchParams;
  const conversations = await getConversations();
  const initialId = c && /^cnv_[A-Za-z0-9_-]+$/.test(c) ? c : undefined;
  // Keyed by the conversation so a navigation to another one starts from a clean view.
  return <Chat key={initialId ?? 'new'} initialConversations={conversations} initialId={initialId} />;
}
