-- Single sign-on: organizations' connections to identity providers, the email domains
-- they claim, and the federated identities users sign in with.
--
-- Times as in 0001: the engine's clock in milliseconds since the Unix epoch (BIGINT).

-- A connection is stored whole, as the engine's JSON; its organization and revision are
-- columns too, for the cascade and the compare-and-swap.
CREATE TABLE sso_connections (
    id        UUID PRIMARY KEY,
    org_id    UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    revision  BIGINT NOT NULL,
    doc       JSONB NOT NULL
);
CREATE INDEX sso_connections_org ON sso_connections (org_id, id);

-- Any number of organizations may claim a domain; at most one may have proven it.
CREATE TABLE domain_claims (
    org_id       UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    domain       TEXT NOT NULL,
    token        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    verified_at  BIGINT,
    PRIMARY KEY (org_id, domain)
);
CREATE INDEX domain_claims_domain ON domain_claims (domain);
CREATE UNIQUE INDEX domain_claims_verified ON domain_claims (domain)
    WHERE verified_at IS NOT NULL;

-- Keyed by the provider's subject, compared byte for byte (TEXT's default, deterministic
-- collation), never by email.
CREATE TABLE federated_identities (
    provider    TEXT NOT NULL,
    subject     TEXT NOT NULL,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (provider, subject)
);
CREATE INDEX federated_identities_user ON federated_identities (user_id, created_at);
