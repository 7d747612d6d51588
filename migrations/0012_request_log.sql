-- The request log: what a raw usage event shows of its request. Raw events are kept for every
-- request of a tenant that logs all requests, else for errors and a sample of successes.
ALTER TABLE usage_events ADD COLUMN method TEXT;
ALTER TABLE usage_events ADD COLUMN path TEXT;
ALTER TABLE usage_events ADD COLUMN client_ip TEXT;
ALTER TABLE usage_events ADD COLUMN user_agent TEXT;
ALTER TABLE usage_events ADD COLUMN request_id TEXT;
ALTER TABLE usage_events ADD COLUMN client_id TEXT;
CREATE INDEX usage_events_request_id ON usage_events (tenant_id, request_id);
