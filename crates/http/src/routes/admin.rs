//! The rest of the management API, for the dashboard and for scripts: API credentials,
//! an organization's members, a user's sessions, the login log with filters and JSON
//! Lines export, and message templates with a preview.
//!
//! An organization's administrators reach their own organization only; a user's sessions
//! are reached by the installation's administrators, or by an organization's for the
//! sessions in that organization of its members.

use http::StatusCode;
use portcullis::MessageKind;
use portcullis::directory::{ApiKeyInfo, MessagePreview, MessageWording, NewApiKey};
use portcullis::model::{ApiCredentialId, AuthEventKind, OrgId, Session, SessionId, UserId};
use portcullis::store::EventQuery;
use portcullis::{Portcullis, RequestContext, Timestamp};
use serde::{Deserialize, Serialize};

use crate::Response;
use crate::error::{HttpError, HttpResult};
use crate::extract::{Caller, Json, Path, Query, claims_allow, parse_id};
use crate::views::{List, LoginEvent, PageQuery, SessionView, UserView};

/// Listing an organization's API credentials.
pub const API_KEYS_READ: &str = "api_keys:read";
/// Making and revoking them.
pub const API_KEYS_WRITE: &str = "api_keys:write";
/// Reading the login log.
pub const LOGS_READ: &str = "logs:read";

/// At most this many events in one JSON Lines export; the `Next-Cursor` header continues.
pub const EXPORT_LIMIT: usize = 10_000;

/// An API credential as listed: never its secret.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyView {
    /// The credential's id.
    pub id: String,
    /// Its organization.
    pub org_id: String,
    /// What it is for.
    pub name: String,
    /// The permissions it holds.
    pub scopes: Vec<String>,
    /// Made (Unix ms).
    pub created_at: i64,
    /// Stops working (Unix ms), if it expires.
    pub expires_at: Option<i64>,
    /// Last used (Unix ms, to the minute).
    pub last_used_at: Option<i64>,
    /// Revoked (Unix ms).
    pub revoked_at: Option<i64>,
    /// The secret (`lk_…`): present only in the answer that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl ApiKeyView {
    fn of(info: &ApiKeyInfo, secret: Option<String>) -> Self {
        ApiKeyView {
            id: info.id.to_string(),
            org_id: info.org_id.to_string(),
            name: info.name.clone(),
            scopes: info.scopes.iter().map(|s| s.as_str().to_owned()).collect(),
            created_at: info.created_at.unix_millis(),
            expires_at: info.expires_at.map(Timestamp::unix_millis),
            last_used_at: info.last_used_at.map(Timestamp::unix_millis),
            revoked_at: info.revoked_at.map(Timestamp::unix_millis),
            secret,
        }
    }
}

/// `POST /organizations/{id}/api-keys`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRequest {
    /// What it is for, 1 to 100 characters.
    pub name: String,
    /// The permissions it holds (`users:read`, `invoices:*`): only ones the caller holds.
    #[cfg_attr(feature = "openapi", schema(max_items = 100))]
    pub scopes: Vec<String>,
    /// It stops working this many seconds after it is made.
    #[cfg_attr(feature = "openapi", schema(minimum = 60))]
    pub expires_in: Option<u64>,
}

/// An organization's API credentials, revoked ones included (`api_keys:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/api-keys", tag = "api-keys",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = List<ApiKeyView>)),
    security(("bearer" = []))))]
pub async fn list_api_keys(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<List<ApiKeyView>>> {
    let org: OrgId = parse_id(&id)?;
    caller.require(auth, API_KEYS_READ, Some(org)).await?;
    auth.orgs().get(org).await?;
    let keys = auth.api_keys().list(org).await?;
    Ok(Json(List::all(
        keys.iter().map(|k| ApiKeyView::of(k, None)).collect(),
    )))
}

/// Make an API credential (`api_keys:write`, and every scope it asks for): its secret is
/// in this answer only.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/api-keys", tag = "api-keys",
    params(("id" = String, Path, format = Uuid)), request_body = ApiKeyRequest,
    responses((status = 201, body = ApiKeyView)), security(("bearer" = []))))]
pub async fn create_api_key(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Json(body)): (Caller, Path<String>, Json<ApiKeyRequest>),
) -> HttpResult<(StatusCode, Json<ApiKeyView>)> {
    let org: OrgId = parse_id(&id)?;
    caller.require(auth, API_KEYS_WRITE, Some(org)).await?;
    auth.orgs().get(org).await?;
    // A credential can hand on only what its maker holds: no key of wider reach than
    // the administrator who made it (checklist ADM-03).
    for scope in &body.scopes {
        if !holds(auth, &caller, scope).await? {
            return Err(HttpError::forbidden());
        }
    }
    if body.expires_in.is_some_and(|secs| secs < 60) {
        return Err(HttpError::invalid("expires_in is at least 60 seconds"));
    }
    let scopes: Vec<&str> = body.scopes.iter().map(String::as_str).collect();
    let mut new = NewApiKey::new(body.name, &scopes);
    new.expires_in = body.expires_in.map(std::time::Duration::from_secs);
    let made = auth.api_keys().create(org, &new).await?;
    let view = ApiKeyView::of(&made.info, Some(made.secret.secret().to_owned()));
    Ok((StatusCode::CREATED, Json(view)))
}

/// Whether the caller itself holds `permission` (wildcards included).
async fn holds(auth: &Portcullis, caller: &Caller, permission: &str) -> HttpResult<bool> {
    Ok(match caller {
        Caller::Bootstrap => true,
        Caller::Key(info) => info.allows(permission),
        Caller::User(claims) => matches!(
            claims_allow(auth, claims, permission).await?,
            Some((_, true))
        ),
        Caller::Setup(_) => false,
    })
}

/// Revoke an API credential for good (`api_keys:write`).
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/organizations/{id}/api-keys/{key_id}", tag = "api-keys",
    params(("id" = String, Path, format = Uuid), ("key_id" = String, Path, format = Uuid)),
    responses((status = 204)), security(("bearer" = []))))]
pub async fn revoke_api_key(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, key))): (Caller, Path<(String, String)>),
) -> HttpResult<StatusCode> {
    let org: OrgId = parse_id(&id)?;
    caller.require(auth, API_KEYS_WRITE, Some(org)).await?;
    let key: ApiCredentialId = parse_id(&key)?;
    auth.api_keys().revoke(org, key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member of an organization.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberView {
    /// The user.
    pub user: UserView,
    /// Role names held in the organization.
    pub roles: Vec<String>,
    /// Joined (Unix ms).
    pub joined_at: i64,
}

/// An organization's members with their roles, oldest first (`users:read` there).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/members", tag = "organizations",
    params(("id" = String, Path, format = Uuid), PageQuery), responses((status = 200, body = List<MemberView>)),
    security(("bearer" = []))))]
pub async fn list_members(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Query(query)): (Caller, Path<String>, Query<PageQuery>),
) -> HttpResult<Json<List<MemberView>>> {
    let org: OrgId = parse_id(&id)?;
    caller.require(auth, "users:read", Some(org)).await?;
    auth.orgs().get(org).await?;
    let page = auth.rbac().members(org, &query.page()?).await?;
    let roles = auth.rbac().roles(org).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for membership in &page.items {
        // A member deleted meanwhile is left out.
        let Ok(user) = auth.users().get(membership.user_id).await else {
            continue;
        };
        items.push(MemberView {
            user: UserView::from(&user),
            roles: roles
                .iter()
                .filter(|r| membership.role_ids.contains(&r.id))
                .map(|r| r.name.clone())
                .collect(),
            joined_at: membership.created_at.unix_millis(),
        });
    }
    Ok(Json(List {
        items,
        next_cursor: page.next_cursor.map(|c| c.as_str().to_owned()),
    }))
}

/// Remove someone from an organization (`roles:write` there): their roles there go, and
/// their sessions in it end; the account stays.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/organizations/{id}/members/{user_id}", tag = "organizations",
    params(("id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses((status = 204)), security(("bearer" = []))))]
pub async fn remove_member(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, user))): (Caller, Path<(String, String)>),
) -> HttpResult<StatusCode> {
    let org: OrgId = parse_id(&id)?;
    caller.require(auth, "roles:write", Some(org)).await?;
    let user: UserId = parse_id(&user)?;
    if !auth.rbac().remove_member(user, org).await? {
        return Err(portcullis::Error::NotFound { what: "membership" }.into());
    }
    Ok(StatusCode::NO_CONTENT)
}

/// A member, with their account's state: the dashboard's user page.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberDetail {
    /// The member.
    #[serde(flatten)]
    pub member: MemberView,
    /// Blocked, locked, verified, and the factors held (counts, never secrets).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub status: portcullis::UserStatus,
    /// Whether they belong to this organization alone (its administrators may then block
    /// them).
    pub sole_organization: bool,
}

/// The membership of `user` in `org`, or 404 (`user`) when there is none: an
/// organization's administrators see their own members only.
async fn membership_in(
    auth: &Portcullis,
    org: OrgId,
    user: UserId,
) -> HttpResult<(portcullis::model::Membership, bool)> {
    let memberships = auth.rbac().memberships(user).await?;
    let sole = memberships.iter().all(|m| m.org_id == org);
    memberships
        .into_iter()
        .find(|m| m.org_id == org)
        .map(|m| (m, sole))
        .ok_or_else(|| portcullis::Error::NotFound { what: "user" }.into())
}

/// One member: their account, roles here, state and factors (`users:read` there).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/members/{user_id}", tag = "organizations",
    params(("id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    responses((status = 200, body = MemberDetail)), security(("bearer" = []))))]
pub async fn get_member(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, user))): (Caller, Path<(String, String)>),
) -> HttpResult<Json<MemberDetail>> {
    let org: OrgId = parse_id(&id)?;
    caller.require(auth, "users:read", Some(org)).await?;
    let user: UserId = parse_id(&user)?;
    let (membership, sole) = membership_in(auth, org, user).await?;
    let account = auth.users().get(user).await?;
    let roles = auth.rbac().roles(org).await?;
    Ok(Json(MemberDetail {
        member: MemberView {
            user: UserView::from(&account),
            roles: roles
                .iter()
                .filter(|r| membership.role_ids.contains(&r.id))
                .map(|r| r.name.clone())
                .collect(),
            joined_at: membership.created_at.unix_millis(),
        },
        status: auth.users().status(user).await?,
        sole_organization: sole,
    }))
}

/// `PUT /organizations/{id}/members/{user_id}/blocked`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    /// Block (`true`: no sign-in, every session ends) or lift the block.
    pub blocked: bool,
}

/// Block or unblock a member (`users:write` there). A block stops the whole account, so an
/// organization's administrators may block only people who belong to their organization
/// alone (403 otherwise); the installation's may block anyone.
#[cfg_attr(feature = "openapi", utoipa::path(put, path = "/organizations/{id}/members/{user_id}/blocked", tag = "organizations",
    params(("id" = String, Path, format = Uuid), ("user_id" = String, Path, format = Uuid)),
    request_body = BlockRequest, responses((status = 204)), security(("bearer" = []))))]
pub async fn block_member(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Path((id, user)), Json(body)): (Caller, Path<(String, String)>, Json<BlockRequest>),
) -> HttpResult<StatusCode> {
    let org: OrgId = parse_id(&id)?;
    caller.require(auth, "users:write", Some(org)).await?;
    let user: UserId = parse_id(&user)?;
    let (_, sole) = membership_in(auth, org, user).await?;
    if !sole && caller.require(auth, "users:write", None).await.is_err() {
        return Err(HttpError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this person belongs to other organizations too: the installation's administrators block them",
        ));
    }
    if body.blocked {
        auth.users().block(user, &ctx).await?;
    } else {
        auth.users().unblock(user, &ctx).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// How far a caller reaches into one user's sessions.
#[derive(Clone, Copy)]
enum Reach {
    /// Every session: an installation administrator.
    Installation,
    /// The user's sessions in this organization, whose administrator calls.
    Org(OrgId),
}

impl Reach {
    fn covers(self, session: &Session) -> bool {
        match self {
            Reach::Installation => true,
            Reach::Org(org) => session.org_id == Some(org),
        }
    }
}

/// How far the caller reaches into `user`'s sessions with `permission`: everywhere for an
/// installation administrator; in its organization for an organization's administrator
/// when `user` is a member there (404 otherwise, as for a missing user). A caller holding
/// the permission nowhere gets 403 before any user is looked up, so it learns nothing of
/// which users exist.
async fn reach(
    auth: &Portcullis,
    caller: &Caller,
    permission: &str,
    user: UserId,
) -> HttpResult<Reach> {
    if caller.require(auth, permission, None).await.is_ok() {
        auth.users().get(user).await?;
        return Ok(Reach::Installation);
    }
    let acting = match caller {
        Caller::Key(info) if info.allows(permission) => Some(info.org_id),
        Caller::User(claims) => match claims_allow(auth, claims, permission).await? {
            Some((org, true)) => Some(org),
            _ => None,
        },
        _ => None,
    };
    let Some(org) = acting else {
        return Err(HttpError::forbidden());
    };
    let member = auth
        .rbac()
        .memberships(user)
        .await?
        .iter()
        .any(|m| m.org_id == org);
    if member {
        Ok(Reach::Org(org))
    } else {
        Err(portcullis::Error::NotFound { what: "user" }.into())
    }
}

/// A session as an administrator sees it.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserSessionView {
    /// The session.
    #[serde(flatten)]
    pub session: SessionView,
    /// The organization it was opened in.
    pub org_id: Option<String>,
}

/// A user's live sessions, newest first (`users:read`; an organization's administrators
/// see those in their organization).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/users/{id}/sessions", tag = "users",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = List<UserSessionView>)),
    security(("bearer" = []))))]
pub async fn user_sessions(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<List<UserSessionView>>> {
    let user: UserId = parse_id(&id)?;
    let reach = reach(auth, &caller, "users:read", user).await?;
    let own = caller.user().map(|claims| claims.sid);
    let sessions = auth.sessions().list(user).await?;
    Ok(Json(List::all(
        sessions
            .iter()
            .filter(|s| reach.covers(s))
            .map(|s| {
                let mut session = SessionView::new(s, s.id);
                session.current = own == Some(s.id);
                UserSessionView {
                    session,
                    org_id: s.org_id.map(|o| o.to_string()),
                }
            })
            .collect(),
    )))
}

/// End one of a user's sessions (`users:write`, reached as for listing them).
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/users/{id}/sessions/{session_id}", tag = "users",
    params(("id" = String, Path, format = Uuid), ("session_id" = String, Path, format = Uuid)),
    responses((status = 204)), security(("bearer" = []))))]
pub async fn revoke_user_session(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Path((id, session))): (Caller, Path<(String, String)>),
) -> HttpResult<StatusCode> {
    let user: UserId = parse_id(&id)?;
    let session: SessionId = parse_id(&session)?;
    let reach = reach(auth, &caller, "users:write", user).await?;
    let sessions = auth.sessions().list(user).await?;
    if !sessions.iter().any(|s| s.id == session && reach.covers(s)) {
        return Err(portcullis::Error::NotFound { what: "session" }.into());
    }
    auth.sessions().revoke(user, session, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How many sessions ended.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedView {
    /// The number of sessions ended.
    pub revoked: u64,
}

/// Sign a user out everywhere (`users:write`): every session the caller reaches ends,
/// and with it every refresh token and access token of it.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/users/{id}/sessions", tag = "users",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = RevokedView)),
    security(("bearer" = []))))]
pub async fn revoke_user_sessions(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<RevokedView>> {
    let user: UserId = parse_id(&id)?;
    let revoked = match reach(auth, &caller, "users:write", user).await? {
        Reach::Installation => auth.sessions().revoke_all(user, &ctx).await?,
        reach => {
            let mut revoked = 0;
            for session in auth.sessions().list(user).await? {
                if reach.covers(&session) {
                    auth.sessions().revoke(user, session.id, &ctx).await?;
                    revoked += 1;
                }
            }
            revoked
        }
    };
    Ok(Json(RevokedView { revoked }))
}

/// Login-log filters and paging.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct LogQuery {
    /// Only these kinds of event, comma-separated (`sign_in,sign_in_failed`).
    pub kind: Option<String>,
    /// Only events about this user.
    #[cfg_attr(feature = "openapi", param(format = Uuid))]
    pub user_id: Option<String>,
    /// Only events from this address.
    pub ip: Option<String>,
    /// Only events at or after this time (Unix ms).
    pub since: Option<i64>,
    /// Only events before this time (Unix ms).
    pub until: Option<i64>,
    /// Items per page (1 to 100; default 20). Not for the export.
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page (or the export's `Next-Cursor`).
    #[cfg_attr(feature = "openapi", param(min_length = 1))]
    pub cursor: Option<String>,
}

impl LogQuery {
    fn filter(&self, org: Option<OrgId>) -> HttpResult<EventQuery> {
        let kinds = match self.kind.as_deref() {
            None | Some("") => Vec::new(),
            Some(list) => list
                .split(',')
                .map(|k| k.trim().parse::<AuthEventKind>())
                .collect::<Result<_, _>>()?,
        };
        let user = self
            .user_id
            .as_deref()
            .map(parse_id::<UserId>)
            .transpose()?;
        let ip = self
            .ip
            .as_deref()
            .map(|ip| {
                ip.trim()
                    .parse::<std::net::IpAddr>()
                    .map_err(|_| HttpError::invalid("ip is not an IP address"))
            })
            .transpose()?;
        let time = |millis: Option<i64>, name: &str| {
            millis
                .map(|ms| {
                    if ms < 0 {
                        return Err(HttpError::invalid(format!("{name} is Unix milliseconds")));
                    }
                    Ok(Timestamp::from_unix_millis(ms))
                })
                .transpose()
        };
        let (since, until) = (time(self.since, "since")?, time(self.until, "until")?);
        let query = match org {
            Some(org) => EventQuery::in_org(org),
            None => EventQuery::all(),
        };
        Ok(query.kinds(kinds).user(user).ip(ip).between(since, until))
    }

    fn page(&self) -> HttpResult<portcullis::model::PageRequest> {
        PageQuery {
            limit: self.limit,
            cursor: self.cursor.clone(),
        }
        .page()
    }
}

/// The organization a log route reads, checked against the caller (`logs:read`).
async fn log_org(auth: &Portcullis, caller: &Caller, id: &str) -> HttpResult<OrgId> {
    let org: OrgId = parse_id(id)?;
    caller.require(auth, LOGS_READ, Some(org)).await?;
    auth.orgs().get(org).await?;
    Ok(org)
}

/// An organization's login log, newest first, filtered (`logs:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/login-logs", tag = "logs",
    params(("id" = String, Path, format = Uuid), LogQuery), responses((status = 200, body = List<LoginEvent>)),
    security(("bearer" = []))))]
pub async fn org_logs(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Query(query)): (Caller, Path<String>, Query<LogQuery>),
) -> HttpResult<Json<List<LoginEvent>>> {
    let org = log_org(auth, &caller, &id).await?;
    let page = auth
        .audit()
        .events(&query.filter(Some(org))?, &query.page()?)
        .await?;
    Ok(Json(List::page(page, |e| LoginEvent::from(e))))
}

/// The installation's whole login log, every organization's and events in none, newest
/// first, filtered (`logs:read` for the installation).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/login-logs", tag = "logs",
    params(LogQuery), responses((status = 200, body = List<LoginEvent>)),
    security(("bearer" = []))))]
pub async fn all_logs(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Query(query)): (Caller, Query<LogQuery>),
) -> HttpResult<Json<List<LoginEvent>>> {
    caller.require(auth, LOGS_READ, None).await?;
    let page = auth
        .audit()
        .events(&query.filter(None)?, &query.page()?)
        .await?;
    Ok(Json(List::page(page, |e| LoginEvent::from(e))))
}

/// An organization's login log as JSON Lines (`application/x-ndjson`; `logs:read`): one
/// event per line, newest first, with the same filters, at most 10,000 events; when more
/// match, the `Next-Cursor` header continues from the last one.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/login-logs/export", tag = "logs",
    params(("id" = String, Path, format = Uuid), LogQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = String)),
    security(("bearer" = []))))]
pub async fn export_logs(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id), Query(query)): (Caller, Path<String>, Query<LogQuery>),
) -> HttpResult<Response> {
    let org = log_org(auth, &caller, &id).await?;
    let filter = query.filter(Some(org))?;
    let mut request = portcullis::model::PageRequest {
        limit: portcullis::model::PageRequest::MAX_LIMIT,
        cursor: query.cursor.clone().map(portcullis::model::Cursor::new),
    };
    let mut body = Vec::new();
    let mut written = 0;
    let next = loop {
        let page = auth.audit().events(&filter, &request).await?;
        for event in &page.items {
            serde_json::to_writer(&mut body, &LoginEvent::from(event))
                .map_err(|_| portcullis::Error::Internal("serializing an event"))?;
            body.push(b'\n');
        }
        written += page.items.len();
        match page.next_cursor {
            Some(cursor) if written >= EXPORT_LIMIT => break Some(cursor),
            Some(cursor) => request.cursor = Some(cursor),
            None => break None,
        }
    };
    let mut response = Response::bytes(StatusCode::OK, "application/x-ndjson", body).header(
        http::header::CONTENT_DISPOSITION,
        "attachment; filename=\"login-log.jsonl\"",
    );
    if let Some(cursor) = next {
        response = response.header(
            http::HeaderName::from_static("next-cursor"),
            cursor.as_str(),
        );
    }
    Ok(response)
}

fn message_kind(text: &str) -> HttpResult<MessageKind> {
    MessageKind::ALL
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| HttpError::invalid(format!("no message kind {text:?}")))
}

/// The language a template route names (`?locale=pt-BR`); none for every language.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct LocaleQuery {
    /// BCP 47 language tag.
    pub locale: Option<String>,
}

/// What the routes that take a wording read: the caller, the organization and kind, the
/// language, the wording.
type WordingInput = (
    Caller,
    Path<(String, String)>,
    Query<LocaleQuery>,
    Json<WordingBody>,
);

/// An organization's wording for one kind of message: plain text, no URL; it may name
/// `{{app_name}}`, `{{minutes}}` and `{{recipient}}`. A field left out takes the engine's.
#[derive(Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WordingBody {
    /// The subject line (email), at most 200 characters.
    pub subject: Option<String>,
    /// The words before the code or button, at most 2000.
    pub intro: Option<String>,
    /// The words after it, at most 2000.
    pub outro: Option<String>,
    /// The button's label (links), at most 40.
    pub button: Option<String>,
}

impl WordingBody {
    fn wording(self, kind: MessageKind, locale: Option<&str>) -> MessageWording {
        let mut wording = MessageWording::new(kind, locale);
        wording.subject = self.subject;
        wording.intro = self.intro;
        wording.outro = self.outro;
        wording.button = self.button;
        wording
    }
}

/// An organization's templates: its own wordings, and the kinds of message there are.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TemplatesView {
    /// The organization's wordings.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub items: Vec<MessageWording>,
    /// Every kind of message (`magic_link`, `email_code`, …).
    pub kinds: Vec<&'static str>,
}

async fn templates_view(auth: &Portcullis, org: OrgId) -> HttpResult<Json<TemplatesView>> {
    let settings = auth.orgs().settings(Some(org)).await?;
    Ok(Json(TemplatesView {
        items: settings.templates,
        kinds: MessageKind::ALL.iter().map(|k| k.as_str()).collect(),
    }))
}

/// An organization's message templates (`organizations:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/organizations/{id}/templates", tag = "templates",
    params(("id" = String, Path, format = Uuid)), responses((status = 200, body = TemplatesView)),
    security(("bearer" = []))))]
pub async fn templates(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<Json<TemplatesView>> {
    let org: OrgId = parse_id(&id)?;
    caller
        .require(auth, "organizations:read", Some(org))
        .await?;
    auth.orgs().get(org).await?;
    templates_view(auth, org).await
}

/// Save the wording of one kind of message, in one language or all
/// (`organizations:write`).
#[cfg_attr(feature = "openapi", utoipa::path(put, path = "/organizations/{id}/templates/{kind}", tag = "templates",
    params(("id" = String, Path, format = Uuid), ("kind" = String, Path), LocaleQuery),
    request_body = WordingBody, responses((status = 200, body = TemplatesView)),
    security(("bearer" = []))))]
pub async fn set_template(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, kind)), Query(locale), Json(body)): WordingInput,
) -> HttpResult<Json<TemplatesView>> {
    let org: OrgId = parse_id(&id)?;
    caller
        .require(auth, "organizations:write", Some(org))
        .await?;
    let wording = body.wording(message_kind(&kind)?, locale.locale.as_deref());
    auth.orgs().set_template(org, &wording).await?;
    templates_view(auth, org).await
}

/// Go back to the engine's wording for one kind of message and language
/// (`organizations:write`).
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/organizations/{id}/templates/{kind}", tag = "templates",
    params(("id" = String, Path, format = Uuid), ("kind" = String, Path), LocaleQuery),
    responses((status = 204)), security(("bearer" = []))))]
pub async fn remove_template(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, kind)), Query(locale)): (Caller, Path<(String, String)>, Query<LocaleQuery>),
) -> HttpResult<StatusCode> {
    let org: OrgId = parse_id(&id)?;
    caller
        .require(auth, "organizations:write", Some(org))
        .await?;
    auth.orgs()
        .remove_template(org, message_kind(&kind)?, locale.locale.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A message as it would be sent with this wording, before saving it: a sample recipient
/// and a sample code or link, the organization's branding; nothing is sent
/// (`organizations:read`).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/organizations/{id}/templates/{kind}/preview", tag = "templates",
    params(("id" = String, Path, format = Uuid), ("kind" = String, Path), LocaleQuery),
    request_body = WordingBody, responses((status = 200, body = PreviewView)),
    security(("bearer" = []))))]
pub async fn preview_template(
    auth: &Portcullis,
    _ctx: RequestContext,
    (caller, Path((id, kind)), Query(locale), Json(body)): WordingInput,
) -> HttpResult<Json<PreviewView>> {
    let org: OrgId = parse_id(&id)?;
    caller
        .require(auth, "organizations:read", Some(org))
        .await?;
    let wording = body.wording(message_kind(&kind)?, locale.locale.as_deref());
    let preview = auth.orgs().preview_message(org, &wording).await?;
    Ok(Json(PreviewView::from(preview)))
}

/// A rendered message.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PreviewView {
    /// The subject line.
    pub subject: String,
    /// The plain-text body (the whole SMS).
    pub text: String,
    /// The HTML body, for emails that have one: show it in a sandboxed frame.
    pub html: Option<String>,
}

impl From<MessagePreview> for PreviewView {
    fn from(p: MessagePreview) -> Self {
        PreviewView {
            subject: p.subject,
            text: p.text,
            html: p.html,
        }
    }
}
