-- A passkey registered on an organization's login domain names that relying party; NULL
-- for the installation's (every passkey made before).
ALTER TABLE passkeys ADD COLUMN rp_id TEXT;
