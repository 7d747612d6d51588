-- Signed requests (RFC 9421): the Ed25519 public key a key's owner signs with (base64 of the
-- 32 raw bytes), and whether the key demands signatures whatever the tenant's switch says.
ALTER TABLE api_keys ADD COLUMN signing_public_key TEXT;
ALTER TABLE api_keys ADD COLUMN require_signature BIGINT NOT NULL DEFAULT 0;
