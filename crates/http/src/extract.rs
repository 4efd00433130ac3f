//! [`FromCall`]: the inputs a handler takes from a [`Call`]: a JSON body, the query, path
//! parameters, the signed-in bearer or the caller of a management route. Every refusal is
//! an [`HttpError`].

use std::future::Future;

use http::StatusCode;
use portcullis::crypto::{AccessToken, ApiKey};
use portcullis::directory::ApiKeyInfo;
use portcullis::model::{ConnectionId, OrgId};
use zeroize::Zeroizing;

/// The permission that manages an organization's SSO connections, domains and setup
/// links.
pub const SSO_MANAGE: &str = "sso:manage";
use portcullis::tokens::Claims;
use portcullis::{Error, Portcullis, Timestamp};
use serde::de::DeserializeOwned;

use crate::error::{HttpError, HttpResult};
use crate::{Api, Call};

/// An input a handler takes from the request.
pub trait FromCall: Sized {
    /// Takes it, or refuses the request.
    fn from_call(call: &Call, api: &Api) -> impl Future<Output = HttpResult<Self>> + Send;
}

impl FromCall for () {
    async fn from_call(_: &Call, _: &Api) -> HttpResult<Self> {
        Ok(())
    }
}

macro_rules! tuple_from_call {
    ($($name:ident),+) => {
        impl<$($name: FromCall + Send),+> FromCall for ($($name,)+) {
            /// Each part in order: the first refusal answers.
            async fn from_call(call: &Call, api: &Api) -> HttpResult<Self> {
                Ok(($($name::from_call(call, api).await?,)+))
            }
        }
    };
}

tuple_from_call!(A);
tuple_from_call!(A, B);
tuple_from_call!(A, B, C);
tuple_from_call!(A, B, C, D);

/// A JSON body (`Content-Type: application/json` or `application/*+json`); a missing or
/// other type is 415, a malformed body 400 with no submitted value quoted.
#[derive(Debug, Clone, Default)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned + Send> FromCall for Json<T> {
    async fn from_call(call: &Call, _: &Api) -> HttpResult<Self> {
        if !is_json(call.header(http::header::CONTENT_TYPE)) {
            return Err(HttpError::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        parse_json(&call.body).map(Json)
    }
}

/// Whether a `Content-Type` names JSON: `application/json` or `application/<x>+json`,
/// with any parameters.
fn is_json(content_type: Option<&str>) -> bool {
    let Some(value) = content_type else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> HttpResult<T> {
    serde_json::from_slice(body).map_err(|e| {
        let what = if e.is_data() {
            "Failed to deserialize the JSON body into the target type"
        } else {
            "Failed to parse the request body as JSON"
        };
        HttpError::unparsable(what, &e.to_string())
    })
}

/// A JSON body that may be absent: an empty body (no `Content-Type` needed) is
/// `T::default()`.
#[derive(Debug, Clone, Default)]
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default + Send> FromCall for OptionalJson<T> {
    async fn from_call(call: &Call, _: &Api) -> HttpResult<Self> {
        if call.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&call.body).map(OptionalJson)
    }
}

/// A form body (`application/x-www-form-urlencoded`, as a browser posts one); another
/// type is 415, a malformed body 400.
#[derive(Debug, Clone, Default)]
pub struct Form<T>(pub T);

impl<T: DeserializeOwned + Send> FromCall for Form<T> {
    async fn from_call(call: &Call, _: &Api) -> HttpResult<Self> {
        let essence = call
            .header(http::header::CONTENT_TYPE)
            .and_then(|v| v.split(';').next())
            .map(str::trim);
        if !essence.is_some_and(|e| e.eq_ignore_ascii_case("application/x-www-form-urlencoded")) {
            return Err(HttpError::from_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        serde_urlencoded::from_bytes(&call.body)
            .map(Form)
            .map_err(|e| {
                HttpError::unparsable("Failed to deserialize the form body", &e.to_string())
            })
    }
}

/// Query parameters; bad ones are a 400.
#[derive(Debug, Clone, Default)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send> FromCall for Query<T> {
    async fn from_call(call: &Call, _: &Api) -> HttpResult<Self> {
        serde_urlencoded::from_str(&call.query)
            .map(Query)
            .map_err(|e| {
                HttpError::unparsable("Failed to deserialize query string", &e.to_string())
            })
    }
}

/// Path parameters: one as a `String` (or any type that reads from one), several as a
/// tuple in path order; bad ones are a 400.
#[derive(Debug, Clone, Default)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> FromCall for Path<T> {
    async fn from_call(call: &Call, _: &Api) -> HttpResult<Self> {
        use serde_json::Value;
        let value = match call.params.as_slice() {
            [(_, one)] => Value::String(one.clone()),
            many => Value::Array(many.iter().map(|(_, v)| Value::String(v.clone())).collect()),
        };
        serde_json::from_value(value)
            .map(Path)
            .map_err(|e| HttpError::unparsable("Invalid URL", &e.to_string()))
    }
}

/// The `Authorization: Bearer` value, if any; another scheme or an empty token is a 401
/// with a challenge. The scheme's case does not matter.
pub fn bearer_token(headers: &http::HeaderMap) -> HttpResult<Option<&str>> {
    let Some(value) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| HttpError::unauthorized("malformed Authorization header"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim()))
        }
        _ => Err(HttpError::unauthorized(
            "expected Authorization: Bearer <token>",
        )),
    }
}

/// A signed-in user: the bearer access token, verified, with its session still live.
/// `Option<Bearer>` is `None` without an `Authorization` header; a header that does not
/// verify is refused, never taken as an anonymous request.
#[derive(Debug)]
pub struct Bearer {
    /// The token's claims.
    pub claims: Claims,
    /// The token itself (for sign-out).
    pub token: AccessToken,
    /// When the token's session ends, as [`live`](Self::live) read it (`None` from
    /// [`stateless`](Self::stateless), which reads no session).
    pub session_expires_at: Option<Timestamp>,
}

impl Bearer {
    /// The bearer of a request, verified with its session (`verify_live`): its
    /// `Authorization: Bearer` token, or else its access cookie (see
    /// [`browser`](crate::browser), which checks CSRF for a request that changes state).
    pub async fn live(
        method: &http::Method,
        headers: &http::HeaderMap,
        auth: &Portcullis,
    ) -> HttpResult<Bearer> {
        let token = AccessToken::new(
            crate::browser::access_token(method, headers, auth)
                .await?
                .ok_or_else(|| HttpError::unauthorized("sign in first"))?,
        );
        let (claims, session) = auth
            .tokens()
            .verify_live_session(&token)
            .await
            .map_err(|e| HttpError::from(e).challenge())?;
        Ok(Bearer {
            claims: not_a_clients(claims)?,
            token,
            session_expires_at: Some(session.expires_at),
        })
    }

    /// The bearer of a request (as [`live`](Self::live)), verified by signature and time
    /// only (`verify`): no store read, so a revoked session passes until the token expires.
    pub async fn stateless(
        method: &http::Method,
        headers: &http::HeaderMap,
        auth: &Portcullis,
    ) -> HttpResult<Bearer> {
        let token = AccessToken::new(
            crate::browser::access_token(method, headers, auth)
                .await?
                .ok_or_else(|| HttpError::unauthorized("sign in first"))?,
        );
        let claims = auth
            .tokens()
            .verify(&token)
            .await
            .map_err(|e| HttpError::from(e).challenge())?;
        Ok(Bearer {
            claims: not_a_clients(claims)?,
            token,
            session_expires_at: None,
        })
    }
}

/// A token the OpenID provider issued to a client (it names `client_id`) is for UserInfo
/// and that client's own services, never a key to the person's account: the API and the
/// framework extractors refuse it (401 `invalid_token`).
fn not_a_clients(claims: Claims) -> HttpResult<Claims> {
    if claims.client_id.is_some() {
        return Err(HttpError::from(Error::InvalidToken).challenge());
    }
    Ok(claims)
}

/// What a framework's extractor requires of a request's bearer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A valid access token (signature and lifetime; no store read).
    Stateless,
    /// A valid access token whose session is live and whose roles are current.
    Live,
    /// [`Live`](Self::Live), and the user holds this permission.
    Permission(&'static str),
}

impl Bearer {
    /// The bearer of a request as `check` requires it: what every framework's extractors
    /// call, so they refuse alike (401 with a challenge, or 403).
    pub async fn check(
        method: &http::Method,
        headers: &http::HeaderMap,
        auth: &Portcullis,
        check: Check,
    ) -> HttpResult<Bearer> {
        match check {
            Check::Stateless => Bearer::stateless(method, headers, auth).await,
            Check::Live => Bearer::live(method, headers, auth).await,
            Check::Permission(permission) => {
                let bearer = Bearer::live(method, headers, auth).await?;
                require_permission(auth, &bearer.claims, permission).await?;
                Ok(bearer)
            }
        }
    }
}

impl FromCall for Bearer {
    async fn from_call(call: &Call, api: &Api) -> HttpResult<Self> {
        Bearer::live(&call.method, &call.headers, &api.auth).await
    }
}

impl FromCall for Option<Bearer> {
    async fn from_call(call: &Call, api: &Api) -> HttpResult<Self> {
        if crate::browser::presents_token(&call.headers, &api.auth) {
            Bearer::from_call(call, api).await.map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Who calls a management route: the bootstrap key, an API credential (`lk_…`) of an
/// organization, or a signed-in user.
#[derive(Debug)]
pub enum Caller {
    /// The bootstrap key: everything.
    Bootstrap,
    /// An API credential of an organization.
    Key(ApiKeyInfo),
    /// A user's access token, verified with its session.
    User(Box<Claims>),
    /// An IT administrator's setup session (`pcs_…`, from a setup link): `sso:manage` in
    /// one organization, for its domains and one connection only.
    Setup(SetupCaller),
}

/// A setup session calling: its token (to bind the connection it creates) and scope.
pub struct SetupCaller {
    /// The session's token.
    pub token: Zeroizing<String>,
    /// What it reaches.
    pub scope: portcullis::flows::sso::setup::SetupScope,
}

impl std::fmt::Debug for SetupCaller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupCaller")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl FromCall for Caller {
    async fn from_call(call: &Call, api: &Api) -> HttpResult<Self> {
        let token = crate::browser::access_token(&call.method, &call.headers, &api.auth)
            .await?
            .ok_or_else(|| {
                HttpError::unauthorized("an API credential or access token is required")
            })?;
        if api.admin_key.as_ref().is_some_and(|key| key.matches(token)) {
            return Ok(Caller::Bootstrap);
        }
        if token.starts_with(portcullis::flows::sso::setup::SETUP_SESSION_PREFIX) {
            let scope = api
                .auth
                .sso()
                .setup_scope(token)
                .await
                .map_err(|e| HttpError::from(e).challenge())?;
            return Ok(Caller::Setup(SetupCaller {
                token: Zeroizing::new(token.to_owned()),
                scope,
            }));
        }
        if token.starts_with(portcullis::directory::api_keys::API_KEY_PREFIX) {
            let info = api
                .auth
                .api_keys()
                .verify(&ApiKey::new(token))
                .await
                .map_err(|e| HttpError::from(e).challenge())?;
            return Ok(Caller::Key(info));
        }
        let claims = api
            .auth
            .tokens()
            .verify_live(&AccessToken::new(token))
            .await
            .map_err(|e| HttpError::from(e).challenge())?;
        Ok(Caller::User(Box::new(not_a_clients(claims)?)))
    }
}

impl Caller {
    /// Refuses (403) unless the caller holds `permission` and acts for `org`: a credential
    /// of the default organization acts for every organization and for the
    /// installation-wide routes (`org` `None`: users, creating organizations); any other
    /// credential only for its own organization.
    pub async fn require(
        &self,
        auth: &Portcullis,
        permission: &str,
        org: Option<OrgId>,
    ) -> HttpResult<()> {
        let (held_in, allowed) = match self {
            Caller::Bootstrap => return Ok(()),
            Caller::Key(info) => (info.org_id, info.allows(permission)),
            Caller::User(claims) => match claims_allow(auth, claims, permission).await? {
                Some(allowed) => allowed,
                None => return Err(HttpError::forbidden()),
            },
            // Its one organization's SSO setup, and nothing else.
            Caller::Setup(setup) => {
                return if permission == SSO_MANAGE && org == Some(setup.scope.org_id) {
                    Ok(())
                } else {
                    Err(HttpError::forbidden())
                };
            }
        };
        if !allowed {
            return Err(HttpError::forbidden());
        }
        let default = auth.orgs().default_org().await?.id;
        if held_in == default || Some(held_in) == org {
            Ok(())
        } else {
            Err(HttpError::forbidden())
        }
    }

    /// Refuses (403) a setup session reaching a connection other than its own; every
    /// other caller passes (after [`require`](Self::require)).
    pub fn may_reach_connection(&self, connection: ConnectionId) -> HttpResult<()> {
        match self {
            Caller::Setup(setup) if setup.scope.connection_id != Some(connection) => {
                Err(HttpError::forbidden())
            }
            _ => Ok(()),
        }
    }

    /// The signed-in user, if the caller is one.
    pub fn user(&self) -> Option<&Claims> {
        match self {
            Caller::User(claims) => Some(claims),
            _ => None,
        }
    }
}

/// Whether a user's token grants `permission`, and in which organization: `None` for a
/// token with no organization (it holds no permission, whatever it says). A token too big
/// to carry its permissions (`perms_omitted`) is checked against the user's roles now.
pub async fn claims_allow(
    auth: &Portcullis,
    claims: &Claims,
    permission: &str,
) -> Result<Option<(OrgId, bool)>, Error> {
    Ok(match claims.org {
        Some(org) if claims.perms_omitted => {
            Some((org, auth.rbac().check(claims.sub, org, permission).await?))
        }
        Some(org) => Some((org, claims.has_permission(permission))),
        None => None,
    })
}

/// A permission a route requires, as a type: `portcullis_http::permission!(InvoicesRead =
/// "invoices:read");` makes one, and the framework crates' `Permitted<InvoicesRead>`
/// extractor admits only a signed-in user who holds it.
pub trait Permission: Send + Sync + 'static {
    /// The permission's name, `resource:action`.
    const NAME: &'static str;
}

/// Declares a [`Permission`] type: `permission!(pub InvoicesRead = "invoices:read");`.
#[macro_export]
macro_rules! permission {
    ($(#[$doc:meta])* $vis:vis $name:ident = $permission:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        impl $crate::Permission for $name {
            const NAME: &'static str = $permission;
        }
    };
}

/// Refuses (403 `forbidden`) unless `claims` grant `permission`: from the token's own
/// `perms` (a held `invoices:*` grants `invoices:read`), or from the organization's roles
/// when the token had to leave its permissions out. A token without an organization holds
/// none.
pub async fn require_permission(
    auth: &Portcullis,
    claims: &Claims,
    permission: &str,
) -> HttpResult<()> {
    match claims_allow(auth, claims, permission).await? {
        Some((_, true)) => Ok(()),
        _ => Err(HttpError::forbidden()),
    }
}

/// Parses a path segment or body field into an engine id (`UserId`, `OrgId`…).
pub fn parse_id<T: std::str::FromStr<Err = Error>>(text: &str) -> HttpResult<T> {
    Ok(text.parse::<T>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        for yes in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.api+json",
        ] {
            assert!(is_json(Some(yes)), "{yes}");
        }
        for no in ["text/json", "text/plain", "application/xml", "json", ""] {
            assert!(!is_json(Some(no)), "{no}");
        }
        assert!(!is_json(None));
    }
}
