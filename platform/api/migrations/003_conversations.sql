-- Conversations and their messages (seed P1-02), shared by every channel of a tenant.

CREATE TABLE conversations (
  id text PRIMARY KEY,
  tenant_id text NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  title text NOT NULL DEFAULT '' CHECK (length(title) <= 200),
  created_at timestamptz NOT NULL DEFAULT now(),
  -- Moves with every message, so "recent conversations" is one index scan.
  updated_at timestamptz NOT NULL DEFAULT now(),
  -- Target of messages' composite key: a message can only sit in a conversation of its own tenant.
  CONSTRAINT conversations_id_tenant_key UNIQUE (id, tenant_id)
);
CREATE INDEX conversations_tenant_recent_idx ON conversations (tenant_id, updated_at DESC, id DESC);

CREATE TABLE messages (
  id text PRIMARY KEY,
  -- Arrival order (ids are random).
  seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  conversation_id text NOT NULL,
  tenant_id text NOT NULL,
  role text NOT NULL CHECK (role IN ('user', 'assistant', 'system', 'tool')),
  content text NOT NULL,
  channel text NOT NULL DEFAULT 'web' CHECK (channel IN ('web', 'telegram', 'whatsapp')),
  metadata jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT messages_conversation_fkey FOREIGN KEY (conversation_id, tenant_id)
    REFERENCES conversations (id, tenant_id) ON DELETE CASCADE
);
CREATE INDEX messages_conversation_idx ON messages (conversation_id, seq);
CREATE INDEX messages_tenant_idx ON messages (tenant_id);
