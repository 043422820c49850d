import { decodeCursor, newId, notFound, type Page, toPage } from '@agentstack/core';
import { withTransaction } from '@agentstack/db';
import { z } from 'zod';
import type { Channel, Executor, MessageRole, PlatformDB } from './db.js';
import { type ConversationRow, type MessageRow, PlatformStore } from './store.js';

export interface Conversation {
  id: string;
  title: string;
  createdAt: string;
  updatedAt: string;
}

export interface Message {
  id: string;
  conversationId: string;
  role: MessageRole;
  content: string;
  channel: Channel;
  metadata: Record<string, unknown>;
  createdAt: string;
}

const toConversation = (row: ConversationRow): Conversation => ({
  id: row.id,
  title: row.title,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
});

const toMessage = (row: MessageRow): Message => ({
  id: row.id,
  conversationId: row.conversation_id,
  role: row.role,
  content: row.content,
  channel: row.channel,
  metadata: row.metadata,
  createdAt: row.created_at.toISOString(),
});

const conversationCursor = z.object({ u: z.string(), i: z.string() });
const messageCursor = z.object({ s: z.string().regex(/^\d+$/) });

/**
 * A tenant's conversations and messages. Every call takes the tenant id from the authenticated caller and
 * every query filters by it, so another tenant's conversation is indistinguishable from a missing one.
 */
export class Conversations {
  constructor(private readonly db: Executor) {}

  async create(tenantId: string, title: string): Promise<Conversation> {
    const row = await new PlatformStore(this.db).insertConversation({ id: newId('cnv'), tenantId, title });
    return toConversation(row);
  }

  async list(tenantId: string, { limit, cursor }: { limit: number; cursor?: string }): Promise<Page<Conversation>> {
    const position = decodeCursor(cursor, conversationCursor);
    const rows = await new PlatformStore(this.db).listConversations(tenantId, {
      limit,
      ...(position ? { before: { updatedAt: position.u, id: position.i } } : {}),
    });
    return toPage(rows, limit, toConversation, (row) => ({ u: row.updated_at.toISOString(), i: row.id }));
  }

  async get(tenantId: string, id: string): Promise<Conversation> {
    const row = await new PlatformStore(this.db).findConversation(tenantId, id);
    if (!row) throw notFound('conversation');
    return toConversation(row);
  }

  async rename(tenantId: string, id: string, title: string): Promise<Conversation> {
    const row = await new PlatformStore(this.db).renameConversation(tenantId, id, title);
    if (!row) throw notFound('conversation');
    return toConversation(row);
  }

  async delete(tenantId: string, id: string): Promise<void> {
    if (!(await new PlatformStore(this.db).deleteConversation(tenantId, id))) throw notFound('conversation');
  }

  /** Messages oldest first; the cursor continues after the last one returned. */
  async messages(
    tenantId: string,
    conversationId: string,
    { limit, cursor }: { limit: number; cursor?: string },
  ): Promise<Page<Message>> {
    const store = new PlatformStore(this.db);
    if (!(await store.findConversation(tenantId, conversationId))) throw notFound('conversation');
    const position = decodeCursor(cursor, messageCursor);
    const rows = await store.listMessages(tenantId, conversationId, {
      limit,
      ...(position ? { afterSeq: BigInt(position.s) } : {}),
    });
    return toPage(rows, limit, toMessage, (row) => ({ s: row.seq.toString() }));
  }

  async append(
    tenantId: string,
    conversationId: string,
    message: { role: MessageRole; content: string; channel: Channel; metadata: Record<string, unknown> },
  ): Promise<Message> {
    return withTransaction<PlatformDB, Message>(this.db, async (trx) => {
      const store = new PlatformStore(trx);
      if (!(await store.findConversation(tenantId, conversationId))) throw notFound('conversation');
      return toMessage(await store.insertMessage({ id: newId('msg'), tenantId, conversationId, ...message }));
    });
  }
}
