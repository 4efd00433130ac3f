-- The OpenID provider: an app's client metadata (application type, token endpoint
-- authentication, post-logout redirect URIs, scopes, grant types, first party), stored
-- whole as the engine's JSON. Apps made before it read as the engine's defaults.
ALTER TABLE apps ADD COLUMN client JSONB NOT NULL DEFAULT '{}'::jsonb;
