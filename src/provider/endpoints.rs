//! The back-channel endpoints (token, UserInfo, revocation, introspection) and
//! RP-initiated logout, answering in the RFCs' shapes.

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256, Sha512};

use super::{Grant, Provider};
use crate::crypto::{
    AccessToken, AuthCode, CodeVerifier, ProviderCookie, RefreshToken, SecretPurpose, b64url,
};
use crate::model::{App, ClientId, OrgId, TokenAuthMethod, User};
use crate::signin::TokenSet;
use crate::tokens::CodeExchange;
use crate::{Error, RequestContext};

/// A refusal in the shape of RFC 6749 §5.2 (and RFC 6750 §3 at UserInfo): what the HTTP
/// layer answers at the provider's endpoints, never the API's JSON error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    /// The error code (`invalid_grant`, `invalid_client`…).
    pub error: &'static str,
    /// What is wrong, for a developer.
    pub description: String,
    /// The HTTP status: 400, 401 (`invalid_client`, `invalid_token`), 403, 429, 500, 503.
    pub status: u16,
    /// The `WWW-Authenticate` header a 401 carries.
    pub challenge: Option<String>,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            error,
            description: description.into(),
            status: 400,
            challenge: None,
        }
    }

    fn invalid_client(description: &str) -> Self {
        OAuthError {
            status: 401,
            challenge: Some("Basic realm=\"portcullis\", charset=\"UTF-8\"".into()),
            ..OAuthError::new("invalid_client", description)
        }
    }

    fn invalid_token(description: &str) -> Self {
        OAuthError {
            status: 401,
            challenge: Some(format!(
                "Bearer error=\"invalid_token\", error_description=\"{description}\""
            )),
            ..OAuthError::new("invalid_token", description)
        }
    }

    /// The body: `{"error": .., "error_description": ..}`.
    pub fn body(&self) -> Value {
        json!({ "error": self.error, "error_description": self.description })
    }
}

impl From<crate::StoreError> for OAuthError {
    fn from(err: crate::StoreError) -> Self {
        OAuthError::from(Error::from(err))
    }
}

impl From<Error> for OAuthError {
    /// An engine failure that is not the client's: `server_error`, or
    /// `temporarily_unavailable` (503), or `slow_down`-like 429 for a rate limit.
    fn from(err: Error) -> Self {
        match err {
            Error::Unavailable { .. } => OAuthError {
                status: 503,
                ..OAuthError::new("temporarily_unavailable", "try again shortly")
            },
            Error::RateLimited { .. } => OAuthError {
                status: 429,
                ..OAuthError::new("invalid_request", "too many requests")
            },
            _ => OAuthError {
                status: 500,
                ..OAuthError::new("server_error", "the request could not be completed")
            },
        }
    }
}

/// What RP-initiated logout answers. Its `Debug` never shows the CSRF token.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Logout {
    /// Signed out: send the browser to the client's registered post-logout URI (303),
    /// and clear the cookie.
    Redirect(String),
    /// Ask the person first (no valid `id_token_hint`): a page whose form posts this
    /// CSRF token back. Nothing has ended yet.
    Confirm {
        /// The form's CSRF token.
        csrf: String,
    },
    /// Signed out (or was not signed in): say so, and clear the cookie.
    Done,
    /// A request that cannot be honoured: an error page, no redirect.
    Refused {
        /// What is wrong.
        description: String,
    },
}

impl std::fmt::Debug for Logout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Logout::Redirect(location) => f.debug_tuple("Redirect").field(location).finish(),
            Logout::Confirm { .. } => f.write_str("Confirm([redacted])"),
            Logout::Done => f.write_str("Done"),
            Logout::Refused { description } => f
                .debug_struct("Refused")
                .field("description", description)
                .finish(),
        }
    }
}

/// A form (or query) as name-value pairs, refused when a name is repeated.
fn pairs(text: &str) -> Result<Vec<(String, String)>, OAuthError> {
    let pairs = serde_urlencoded::from_str::<Vec<(String, String)>>(text)
        .map_err(|_| OAuthError::new("invalid_request", "the form is not well formed"))?;
    for (i, (name, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(OAuthError::new(
                "invalid_request",
                format!("{name} is repeated"),
            ));
        }
    }
    Ok(pairs)
}

fn one<'p>(pairs: &'p [(String, String)], name: &str) -> Option<&'p str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `Authorization: Basic` credentials: base64 of `id:secret`, each form-urlencoded (RFC
/// 6749 §2.3.1).
fn basic(header: &str) -> Result<(String, String), OAuthError> {
    let bad = || OAuthError::invalid_client("malformed Basic credentials");
    let (scheme, encoded) = header.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(bad());
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| bad())?;
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let unescape = |part: &str| {
        serde_urlencoded::from_str::<Vec<(String, String)>>(&format!("v={part}"))
            .ok()
            .and_then(|mut p| p.pop())
            .map(|(_, v)| v)
            .ok_or_else(bad)
    };
    Ok((unescape(id)?, unescape(secret)?))
}

/// The half of the hash of an access token that `at_hash` holds (OIDC Core §3.1.3.6): of
/// SHA-256 for ES256, of SHA-512 for EdDSA (Ed25519).
pub(crate) fn at_hash(alg: &str, access_token: &str) -> String {
    match alg {
        "EdDSA" => {
            let digest = Sha512::digest(access_token.as_bytes());
            b64url(&digest[..32])
        }
        _ => {
            let digest = Sha256::digest(access_token.as_bytes());
            b64url(&digest[..16])
        }
    }
}

impl<'a> Provider<'a> {
    /// Authenticates the client of a back-channel request: exactly one method, the one it
    /// registered, and its secret (constant time, under each pepper of the ring).
    async fn client(
        &self,
        pairs: &[(String, String)],
        authorization: Option<&str>,
    ) -> Result<App, OAuthError> {
        let form_id = one(pairs, "client_id");
        let form_secret = one(pairs, "client_secret");
        let from_header = authorization.map(basic).transpose()?;
        if from_header.is_some() && form_secret.is_some() {
            return Err(OAuthError::new(
                "invalid_request",
                "use one client authentication method",
            ));
        }
        let (id, secret, method) = match &from_header {
            Some((id, secret)) => {
                if form_id.is_some_and(|form| form != id) {
                    return Err(OAuthError::invalid_client(
                        "client_id differs from the Basic credentials",
                    ));
                }
                (
                    id.as_str(),
                    Some(secret.as_str()),
                    TokenAuthMethod::ClientSecretBasic,
                )
            }
            None => match (form_id, form_secret) {
                (Some(id), Some(secret)) => (id, Some(secret), TokenAuthMethod::ClientSecretPost),
                (Some(id), None) => (id, None, TokenAuthMethod::None),
                (None, _) => {
                    return Err(OAuthError::invalid_client(
                        "client authentication is missing",
                    ));
                }
            },
        };
        let unknown = || OAuthError::invalid_client("client authentication failed");
        let client_id = ClientId::new(id).map_err(|_| unknown())?;
        let app = self
            .inner
            .orgs
            .get_app(&client_id)
            .await?
            .ok_or_else(unknown)?;
        if app.auth_method() != method {
            return Err(OAuthError::invalid_client(&format!(
                "this client authenticates with {}",
                app.auth_method().as_str()
            )));
        }
        if let (Some(secret), Some(expected)) = (secret, &app.secret_hash) {
            let parts: [&[u8]; 1] = [secret.as_bytes()];
            if !self
                .inner
                .hasher
                .matches(SecretPurpose::ClientSecret, &parts, expected)
            {
                return Err(unknown());
            }
        }
        Ok(app)
    }

    /// `POST /oauth2/token` (RFC 6749 §3.2): `form` is the `application/x-www-form-urlencoded`
    /// body, `authorization` the `Authorization` header if any. Answers the token response
    /// (RFC 6749 §5.1; OIDC Core §3.1.3.3) or an [`OAuthError`].
    pub async fn token(
        &self,
        form: &str,
        authorization: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<Value, OAuthError> {
        let pairs = pairs(form)?;
        let app = self.client(&pairs, authorization).await?;
        let allowed = |grant: &str| app.client.grant_types.iter().any(|g| g == grant);
        let grant_type = one(&pairs, "grant_type")
            .ok_or_else(|| OAuthError::new("invalid_request", "grant_type is missing"))?;
        match grant_type {
            "authorization_code" if allowed(grant_type) => self.code_grant(&app, &pairs, ctx).await,
            "refresh_token" if allowed(grant_type) => self.refresh_grant(&app, &pairs, ctx).await,
            "authorization_code" | "refresh_token" => Err(OAuthError::new(
                "unauthorized_client",
                format!("this client may not use {grant_type}"),
            )),
            _ => Err(OAuthError::new(
                "unsupported_grant_type",
                "only authorization_code and refresh_token",
            )),
        }
    }

    async fn code_grant(
        &self,
        app: &App,
        pairs: &[(String, String)],
        ctx: &RequestContext,
    ) -> Result<Value, OAuthError> {
        let need = |name: &str| {
            one(pairs, name)
                .ok_or_else(|| OAuthError::new("invalid_request", format!("{name} is missing")))
        };
        let code = need("code")?;
        let verifier = need("code_verifier")?;
        let redirect_uri = need("redirect_uri")?;
        let exchange = CodeExchange {
            code: AuthCode::new(code),
            code_verifier: CodeVerifier::new(verifier),
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            // The client authenticated above, by the method it registered.
            client_secret: None,
        };
        let (tokens, code_grant) =
            match crate::tokens::auth_code::exchange_provider(self.inner, &exchange, ctx).await {
                Ok((tokens, Some(code_grant))) => (tokens, code_grant),
                Ok((_, None)) => return Err(invalid_grant()),
                Err(err) => return Err(grant_error(err)),
            };
        self.token_response(app, &tokens, &code_grant.grant, code_grant.nonce.as_deref())
            .await
    }

    async fn refresh_grant(
        &self,
        app: &App,
        pairs: &[(String, String)],
        ctx: &RequestContext,
    ) -> Result<Value, OAuthError> {
        let token = one(pairs, "refresh_token")
            .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing"))?;
        let (tokens, grant) = match crate::tokens::refresh::refresh_as(
            self.inner,
            &RefreshToken::new(token),
            Some(&app.client_id),
            ctx,
        )
        .await
        {
            Ok((tokens, Some(grant))) => (tokens, grant),
            Ok((_, None)) => return Err(invalid_grant()),
            Err(err) => return Err(grant_error(err)),
        };
        if let Some(asked) = one(pairs, "scope")
            && asked.split_ascii_whitespace().any(|s| !grant.has(s))
        {
            return Err(OAuthError::new(
                "invalid_scope",
                "a refresh cannot widen the grant",
            ));
        }
        self.token_response(app, &tokens, &grant, None).await
    }

    async fn token_response(
        &self,
        app: &App,
        tokens: &TokenSet,
        grant: &Grant,
        nonce: Option<&str>,
    ) -> Result<Value, OAuthError> {
        let mut body = json!({
            "access_token": tokens.access_token.secret(),
            "token_type": "Bearer",
            "expires_in": tokens.expires_in.as_secs(),
            "scope": grant.scope.join(" "),
        });
        let refreshable = grant.has("offline_access")
            && app.client.grant_types.iter().any(|g| g == "refresh_token");
        if refreshable {
            body["refresh_token"] = Value::from(tokens.refresh_token.secret());
        }
        if grant.has("openid") {
            let id_token = self.id_token(tokens, grant, app.org_id, nonce).await?;
            body["id_token"] = Value::from(id_token);
        }
        Ok(body)
    }

    /// Signs the ID token for what `tokens` opened.
    async fn id_token(
        &self,
        tokens: &TokenSet,
        grant: &Grant,
        org: OrgId,
        nonce: Option<&str>,
    ) -> Result<String, Error> {
        let inner = self.inner;
        let user = inner
            .users
            .get_user(tokens.user_id)
            .await?
            .ok_or(Error::InvalidToken)?;
        let mut claims = self.scope_claims(&user, &grant.scope, org).await?;
        let now = inner.clock.now().unix_secs();
        let lifetime = i64::try_from(inner.config.config.ttl.access_token.as_secs()).unwrap_or(900);
        // Set last: no scope claim can stand in for these.
        let protected = [
            ("iss", Value::from(self.issuer())),
            ("sub", Value::from(user.id.to_string())),
            ("aud", Value::from(grant.client_id.as_str())),
            ("exp", Value::from(now.saturating_add(lifetime))),
            ("iat", Value::from(now)),
            ("auth_time", Value::from(grant.auth_time)),
            ("acr", Value::from(grant.acr.as_str())),
            ("amr", Value::from(grant.amr.clone())),
            ("sid", Value::from(grant.op_sid.to_string())),
        ];
        for (name, value) in protected {
            claims.insert(name.to_owned(), value);
        }
        match nonce {
            Some(nonce) => claims.insert("nonce".into(), Value::from(nonce)),
            None => claims.remove("nonce"),
        };
        let access_token = tokens.access_token.secret().to_owned();
        let (token, _) = crate::tokens::sign_id_token(inner, |alg| {
            claims.insert("at_hash".into(), Value::from(at_hash(alg, &access_token)));
            Value::Object(claims)
        })
        .await?;
        Ok(token)
    }

    /// The claims the granted scopes release (OIDC Core §5.4), with `sub`.
    async fn scope_claims(
        &self,
        user: &User,
        scope: &[String],
        org: OrgId,
    ) -> Result<Map<String, Value>, Error> {
        let granted = |wanted: &str| scope.iter().any(|s| s == wanted);
        let mut claims = Map::new();
        claims.insert("sub".into(), Value::from(user.id.to_string()));
        if granted("profile") {
            if let Some(name) = &user.name {
                claims.insert("name".into(), Value::from(name.as_str()));
            }
            claims.insert(
                "updated_at".into(),
                Value::from(user.updated_at.unix_secs()),
            );
        }
        if granted("email")
            && let Some(email) = &user.email
        {
            claims.insert("email".into(), Value::from(email.as_str()));
            claims.insert("email_verified".into(), Value::from(user.email_verified));
        }
        if granted("phone")
            && let Some(phone) = &user.phone
        {
            claims.insert("phone_number".into(), Value::from(phone.as_str()));
            claims.insert(
                "phone_number_verified".into(),
                Value::from(user.phone_verified),
            );
        }
        if granted("roles") {
            let (roles, perms) =
                crate::tokens::roles_and_permissions(self.inner, user.id, org).await?;
            claims.insert("roles".into(), Value::from(roles));
            let perms: Vec<&str> = perms.iter().map(|p| p.as_str()).collect();
            claims.insert("permissions".into(), Value::from(perms));
        }
        Ok(claims)
    }

    /// `GET/POST /oauth2/userinfo` (OIDC Core §5.3): the claims of the access token's
    /// granted scopes. The token must be one the provider issued to a client with the
    /// `openid` scope, of a live session.
    pub async fn userinfo(&self, access_token: &AccessToken) -> Result<Value, OAuthError> {
        let claims = crate::tokens::Tokens::new(self.inner)
            .verify_live(access_token)
            .await
            .map_err(|err| match err {
                Error::Unavailable { .. } => OAuthError::from(err),
                _ => OAuthError::invalid_token("the access token is not valid"),
            })?;
        let (Some(_), Some(scope)) = (&claims.client_id, &claims.scope) else {
            return Err(OAuthError::invalid_token(
                "the access token was not issued to a client",
            ));
        };
        let scope: Vec<String> = scope.split(' ').map(str::to_owned).collect();
        if !scope.iter().any(|s| s == "openid") {
            return Err(OAuthError {
                status: 403,
                challenge: Some("Bearer error=\"insufficient_scope\", scope=\"openid\"".into()),
                ..OAuthError::new("insufficient_scope", "the openid scope is needed")
            });
        }
        let user = self
            .inner
            .users
            .get_user(claims.sub)
            .await?
            .ok_or_else(|| OAuthError::invalid_token("the access token is not valid"))?;
        let org = claims
            .org
            .ok_or_else(|| OAuthError::invalid_token("the access token is not valid"))?;
        Ok(Value::Object(self.scope_claims(&user, &scope, org).await?))
    }

    /// `POST /oauth2/revoke` (RFC 7009): the client authenticates; a refresh token or
    /// access token it was issued ends the grant (the session its code opened: every
    /// refresh token of the family and every access token, for `verify_live`). Anything
    /// else — unknown, malformed, another client's — is answered the same (200), and left
    /// alone.
    pub async fn revoke(
        &self,
        form: &str,
        authorization: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<(), OAuthError> {
        let pairs = pairs(form)?;
        let app = self.client(&pairs, authorization).await?;
        let token = one(&pairs, "token")
            .ok_or_else(|| OAuthError::new("invalid_request", "token is missing"))?;
        if let Some(session) = self.grant_session(token, &app.client_id).await? {
            let now = self.inner.clock.now();
            self.inner.sessions.revoke_session(session, now).await?;
            let event =
                crate::model::AuthEvent::new(crate::model::AuthEventKind::SessionRevoked, ctx, now)
                    .with_reason("oauth_token_revoked");
            let _ = self.inner.audit_log.append(&event).await;
        }
        Ok(())
    }

    /// The session behind a token the client was issued: a refresh token of the
    /// provider's (current or an earlier generation), or an access token (expired ones
    /// too: revoking one still ends its grant).
    async fn grant_session(
        &self,
        token: &str,
        client_id: &ClientId,
    ) -> Result<Option<crate::model::SessionId>, Error> {
        let inner = self.inner;
        let now = inner.clock.now();
        for hash in inner
            .hasher
            .hashes(SecretPurpose::OAuthRefreshToken, &[token.as_bytes()])
        {
            if let Some(session) = inner.sessions.find_by_refresh_hash(&hash, now).await? {
                let grant = super::load_grant(inner, &session).await?;
                return Ok(grant
                    .filter(|g| g.client_id == *client_id)
                    .map(|_| session.id));
            }
        }
        let tokens = crate::tokens::Tokens::new(inner);
        let claims = match tokens.verify(&AccessToken::new(token)).await {
            Ok(claims) => claims,
            Err(_) => return Ok(None),
        };
        Ok((claims.client_id.as_ref() == Some(client_id)).then_some(claims.sid))
    }

    /// `POST /oauth2/introspect` (RFC 7662), for confidential clients: an active token the
    /// caller was issued is described; anything else is exactly `{"active": false}`.
    pub async fn introspect(
        &self,
        form: &str,
        authorization: Option<&str>,
    ) -> Result<Value, OAuthError> {
        let pairs = pairs(form)?;
        let app = self.client(&pairs, authorization).await?;
        if !app.is_confidential() {
            return Err(OAuthError::invalid_client(
                "introspection is for confidential clients",
            ));
        }
        let token = one(&pairs, "token")
            .ok_or_else(|| OAuthError::new("invalid_request", "token is missing"))?;
        Ok(self
            .describe(token, &app)
            .await?
            .unwrap_or_else(|| json!({ "active": false })))
    }

    async fn describe(&self, token: &str, app: &App) -> Result<Option<Value>, Error> {
        let inner = self.inner;
        let now = inner.clock.now();
        for hash in inner
            .hasher
            .hashes(SecretPurpose::OAuthRefreshToken, &[token.as_bytes()])
        {
            let Some(session) = inner.sessions.find_by_refresh_hash(&hash, now).await? else {
                continue;
            };
            let idle = now >= session.last_seen_at + inner.config.config.ttl.session_idle;
            if !session.is_active(now) || idle || !session.refresh_hash.ct_eq(&hash) {
                return Ok(None);
            }
            let Some(grant) = super::load_grant(inner, &session)
                .await?
                .filter(|g| g.client_id == app.client_id && g.has("offline_access"))
            else {
                return Ok(None);
            };
            return Ok(Some(json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": grant.scope.join(" "),
                "client_id": grant.client_id.as_str(),
                "sub": session.user_id.to_string(),
                "exp": session.expires_at.unix_secs(),
                "iat": session.created_at.unix_secs(),
                "iss": self.issuer(),
                "aud": grant.client_id.as_str(),
                "sid": grant.op_sid.to_string(),
            })));
        }
        let Ok(claims) = crate::tokens::Tokens::new(inner)
            .verify_live(&AccessToken::new(token))
            .await
        else {
            return Ok(None);
        };
        if claims.client_id.as_ref() != Some(&app.client_id) {
            return Ok(None);
        }
        Ok(Some(json!({
            "active": true,
            "token_type": "Bearer",
            "scope": claims.scope,
            "client_id": app.client_id.as_str(),
            "sub": claims.sub.to_string(),
            "exp": claims.exp,
            "iat": claims.iat,
            "iss": claims.iss,
            "aud": claims.aud,
            "jti": claims.jti,
        })))
    }

    /// `GET /oauth2/logout` (OpenID Connect RP-Initiated Logout 1.0). With an
    /// `id_token_hint` we issued (expired or not) for the browser's user, the browser's
    /// session ends and, when `post_logout_redirect_uri` is one the hint's client
    /// registered exactly, the browser goes there with `state`. Without a valid hint the
    /// person is asked first ([`Logout::Confirm`]): a GET ends nothing. Errors never
    /// redirect.
    pub async fn logout(
        &self,
        query: &str,
        cookie: Option<&ProviderCookie>,
        ctx: &RequestContext,
    ) -> Result<Logout, Error> {
        let refused = |description: &str| {
            Ok(Logout::Refused {
                description: description.to_owned(),
            })
        };
        let Ok(pairs) = pairs(query) else {
            return refused("the request is not well formed");
        };
        let uri = one(&pairs, "post_logout_redirect_uri");
        let state = one(&pairs, "state");
        let Some(hint) = one(&pairs, "id_token_hint") else {
            if uri.is_some() {
                return refused("post_logout_redirect_uri needs an id_token_hint");
            }
            return Ok(match cookie {
                Some(cookie) if self.browser(Some(cookie)).await?.is_some() => Logout::Confirm {
                    csrf: self.csrf_token(cookie, "logout"),
                },
                _ => Logout::Done,
            });
        };
        let Ok(claims) = crate::tokens::verify_id_token_hint(self.inner, hint).await else {
            return refused("id_token_hint is not one of our ID tokens");
        };
        let audience = match claims.get("aud") {
            Some(Value::String(aud)) => Some(aud.clone()),
            Some(Value::Array(auds)) if auds.len() == 1 => auds[0].as_str().map(str::to_owned),
            _ => None,
        };
        let app = match audience.as_deref().map(ClientId::new) {
            Some(Ok(client_id)) => self.inner.orgs.get_app(&client_id).await?,
            _ => None,
        };
        let Some(app) = app else {
            return refused("id_token_hint names no registered client");
        };
        if one(&pairs, "client_id").is_some_and(|id| id != app.client_id.as_str()) {
            return refused("client_id does not match the id_token_hint");
        }
        if let Some(uri) = uri
            && !app
                .client
                .post_logout_redirect_uris
                .iter()
                .any(|r| r == uri)
        {
            return refused("post_logout_redirect_uri is not registered for this client");
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(cookie) = cookie
            && let Some(browser) = self.browser(Some(cookie)).await?
            && browser.user.id.to_string() == sub
        {
            self.end_browser(cookie, &browser, ctx).await?;
        }
        Ok(match uri {
            Some(uri) => {
                let mut url = url::Url::parse(uri)
                    .map_err(|_| Error::invalid("post_logout_redirect_uri", "is not a URL"))?;
                if let Some(state) = state {
                    url.query_pairs_mut().append_pair("state", state);
                }
                Logout::Redirect(url.into())
            }
            None => Logout::Done,
        })
    }

    /// The logout confirmation form was posted: ends the browser's session if the CSRF
    /// token is the cookie's ([`Error::Forbidden`] otherwise).
    pub async fn confirm_logout(
        &self,
        cookie: Option<&ProviderCookie>,
        csrf: &str,
        ctx: &RequestContext,
    ) -> Result<Logout, Error> {
        let Some(cookie) = cookie.filter(|c| self.csrf_matches(c, "logout", csrf)) else {
            return Err(Error::Forbidden);
        };
        if let Some(browser) = self.browser(Some(cookie)).await? {
            self.end_browser(cookie, &browser, ctx).await?;
        }
        Ok(Logout::Done)
    }

    async fn end_browser(
        &self,
        cookie: &ProviderCookie,
        browser: &super::Browser,
        ctx: &RequestContext,
    ) -> Result<(), Error> {
        let now = self.inner.clock.now();
        self.inner
            .sessions
            .revoke_session(browser.session.id, now)
            .await?;
        self.forget_browser(cookie).await?;
        let event = crate::model::AuthEvent::new(crate::model::AuthEventKind::SignOut, ctx, now)
            .with_user(browser.user.id)
            .with_reason("rp_initiated_logout");
        self.inner.audit_log.append(&event).await?;
        Ok(())
    }
}

fn invalid_grant() -> OAuthError {
    OAuthError::new(
        "invalid_grant",
        "the code or refresh token is invalid, expired, spent, or not this client's",
    )
}

/// A failed code or refresh-token grant: the client's mistake (`invalid_grant`) unless
/// the engine failed.
fn grant_error(err: Error) -> OAuthError {
    match err {
        Error::Unavailable { .. } | Error::Internal(_) | Error::Config(_) | Error::Store(_) => {
            OAuthError::from(err)
        }
        _ => invalid_grant(),
    }
}
