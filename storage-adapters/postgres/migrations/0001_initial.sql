-- The first schema: every store of portcullis.
--
-- Times are the engine's clock in milliseconds since the Unix epoch (BIGINT), compared as
-- passed in, never with now(). Keyed secret hashes and sealed secrets are BYTEA. Every
-- uniqueness the storage contract promises is a unique index here, every cascade a
-- foreign key, so that concurrent instances are kept honest by the database itself.

-- Users and what they sign in with.
CREATE TABLE users (
    id              UUID PRIMARY KEY,
    email           TEXT,
    email_verified  BOOLEAN NOT NULL,
    phone           TEXT,
    phone_verified  BOOLEAN NOT NULL,
    name            TEXT,
    metadata        JSONB NOT NULL,
    -- A PHC string (algorithm, parameters, salt, hash): a one-way hash, kept as text.
    password_hash   TEXT,
    blocked         BOOLEAN NOT NULL,
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    revision        BIGINT NOT NULL,
    security_stamp  BIGINT NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email),
    CONSTRAINT users_phone_key UNIQUE (phone)
);
-- list_users filters by email prefix: text_pattern_ops makes `LIKE 'prefix%'` an index scan.
CREATE INDEX users_email_prefix ON users (email text_pattern_ops);

CREATE TABLE passkeys (
    credential_id       BYTEA PRIMARY KEY,
    user_id             UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name                TEXT NOT NULL,
    passkey             BYTEA NOT NULL,
    counter             BIGINT NOT NULL,
    backup_eligible     BOOLEAN NOT NULL,
    backup_state        BOOLEAN NOT NULL,
    registered_with_uv  BOOLEAN NOT NULL,
    created_at          BIGINT NOT NULL,
    last_used_at        BIGINT
);
CREATE INDEX passkeys_user ON passkeys (user_id, created_at);

CREATE TABLE totp_factors (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- Sealed with the engine's keyring.
    secret      BYTEA NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'active')),
    last_step   BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX totp_factors_user ON totp_factors (user_id, created_at);

CREATE TABLE backup_codes (
    user_id  UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    hash     BYTEA NOT NULL,
    PRIMARY KEY (user_id, hash)
);

-- Organizations and everything in them.
CREATE TABLE organizations (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL,
    slug        TEXT NOT NULL,
    -- As given (order kept); org_domains below makes each one unique.
    domains     TEXT[] NOT NULL,
    settings    JSONB NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    revision    BIGINT NOT NULL,
    CONSTRAINT organizations_slug_key UNIQUE (slug)
);

CREATE TABLE org_domains (
    domain  TEXT PRIMARY KEY,
    org_id  UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE
);
CREATE INDEX org_domains_org ON org_domains (org_id);

CREATE TABLE apps (
    client_id      TEXT PRIMARY KEY,
    org_id         UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name           TEXT NOT NULL,
    secret_hash    BYTEA,
    redirect_uris  TEXT[] NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE INDEX apps_org ON apps (org_id, created_at);

CREATE TABLE permissions (
    id           UUID PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT,
    created_at   BIGINT NOT NULL,
    CONSTRAINT permissions_name_key UNIQUE (org_id, name),
    CONSTRAINT permissions_org_id_key UNIQUE (org_id, id)
);

CREATE TABLE roles (
    id           UUID PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT,
    wildcards    TEXT[] NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    CONSTRAINT roles_name_key UNIQUE (org_id, name),
    CONSTRAINT roles_org_id_key UNIQUE (org_id, id)
);

-- A role's permissions, in the role's order; a deleted permission leaves every role.
CREATE TABLE role_permissions (
    org_id         UUID NOT NULL,
    role_id        UUID NOT NULL,
    permission_id  UUID NOT NULL,
    position       INTEGER NOT NULL,
    PRIMARY KEY (role_id, permission_id),
    FOREIGN KEY (org_id, role_id) REFERENCES roles (org_id, id) ON DELETE CASCADE,
    CONSTRAINT role_permissions_permission_fkey FOREIGN KEY (org_id, permission_id)
        REFERENCES permissions (org_id, id) ON DELETE CASCADE
);
CREATE INDEX role_permissions_permission ON role_permissions (permission_id);

-- Memberships name users of the user store, which may be another adapter: no key to users.
CREATE TABLE memberships (
    org_id       UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id      UUID NOT NULL,
    created_at   BIGINT NOT NULL,
    self_joined  BOOLEAN NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id, org_id);

-- A member's roles, in the membership's order; a role must be one of the organization's,
-- and a deleted role leaves every membership.
CREATE TABLE membership_roles (
    org_id    UUID NOT NULL,
    user_id   UUID NOT NULL,
    role_id   UUID NOT NULL,
    position  INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id, role_id),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE,
    CONSTRAINT membership_roles_role_fkey FOREIGN KEY (org_id, role_id)
        REFERENCES roles (org_id, id) ON DELETE CASCADE
);
CREATE INDEX membership_roles_role ON membership_roles (role_id);

CREATE TABLE api_credentials (
    id            UUID PRIMARY KEY,
    org_id        UUID NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    secret_hash   BYTEA NOT NULL,
    scopes        TEXT[] NOT NULL,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT,
    CONSTRAINT api_credentials_secret_hash_key UNIQUE (secret_hash)
);
CREATE INDEX api_credentials_org ON api_credentials (org_id, id);

-- Sessions and every refresh-token hash each has had (reuse detection, RFC 9700).
CREATE TABLE sessions (
    id            UUID PRIMARY KEY,
    user_id       UUID NOT NULL,
    org_id        UUID,
    refresh_hash  BYTEA NOT NULL,
    generation    BIGINT NOT NULL,
    amr           TEXT[] NOT NULL,
    aal           SMALLINT NOT NULL,
    ip            TEXT,
    user_agent    TEXT,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    revoked_at    BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id, created_at);
CREATE INDEX sessions_expiry ON sessions (expires_at);

CREATE TABLE refresh_hashes (
    hash        BYTEA PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE
);
CREATE INDEX refresh_hashes_session ON refresh_hashes (session_id);

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,
    algorithm    TEXT NOT NULL,
    -- Sealed with the engine's keyring.
    private_key  BYTEA NOT NULL,
    public_key   BYTEA NOT NULL,
    created_at   BIGINT NOT NULL
);

-- Ephemeral records and counters.
CREATE TABLE challenges (
    kind        TEXT NOT NULL,
    id          TEXT NOT NULL,
    value       BYTEA NOT NULL,
    expires_at  BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX challenges_expiry ON challenges (expires_at);

CREATE TABLE counters (
    key         TEXT PRIMARY KEY,
    count       BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX counters_expiry ON counters (expires_at);

-- The login log: each user's events form a chain whose head is kept here, so that of two
-- appends naming one head exactly one wins.
CREATE TABLE auth_events (
    id               UUID PRIMARY KEY,
    at               BIGINT NOT NULL,
    kind             TEXT NOT NULL,
    user_id          UUID,
    org_id           UUID,
    method           TEXT,
    reason           TEXT,
    ip               TEXT,
    user_agent       TEXT,
    prev             UUID,
    prev_hash        TEXT,
    personal_digest  TEXT,
    seal             TEXT
);
CREATE INDEX auth_events_user ON auth_events (user_id, id);

CREATE TABLE auth_event_heads (
    user_id   UUID PRIMARY KEY,
    event_id  UUID NOT NULL
);
