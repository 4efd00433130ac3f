//! Attack protection over HTTP: the built-in proof of work's challenges, the link in a
//! lockout notice, a breached password's replacement at sign-in, and the administrators'
//! list of lockouts and throttled addresses.
//!
//! A client answers a bot check by sending its proof in the `X-Bot-Proof` header (a
//! solved proof-of-work challenge, or a CAPTCHA widget's token) with the request that was
//! refused with `bot_check_required` (428).

use http::StatusCode;
use portcullis::crypto::{Password, PasswordChangeToken, UnblockToken};
use portcullis::protect::{Block, BlockKind};
use portcullis::{Portcullis, RequestContext};
use serde::{Deserialize, Serialize};

use crate::error::HttpResult;
use crate::extract::{Caller, Json, Path};
use crate::views::{List, SignInBody};

/// Reading the lockouts and throttles in force.
pub const SECURITY_READ: &str = "security:read";
/// Lifting them.
pub const SECURITY_MANAGE: &str = "security:manage";

/// A proof-of-work challenge.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PowChallengeBody {
    /// `sha256-hashcash`: find a decimal `counter` such that SHA-256 of
    /// `{challenge}:{counter}` starts with `difficulty` zero bits, and send
    /// `{challenge}:{counter}` as `X-Bot-Proof`.
    pub algorithm: String,
    /// The challenge.
    pub challenge: String,
    /// Leading zero bits asked for.
    pub difficulty: u8,
    /// Seconds the challenge may be answered.
    pub expires_in: u64,
}

/// A fresh proof-of-work challenge, for a request a bot check holds up (404 when the
/// server runs another bot check or none).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/protection/challenge", tag = "protection",
    responses((status = 200, body = PowChallengeBody))))]
pub async fn challenge(
    auth: &Portcullis,
    _ctx: RequestContext,
    (): (),
) -> HttpResult<Json<PowChallengeBody>> {
    let challenge = match auth.protection().proof_of_work() {
        Ok(challenge) => challenge,
        Err(portcullis::Error::Config(_)) => {
            return Err(portcullis::Error::NotFound {
                what: "proof-of-work challenge",
            }
            .into());
        }
        Err(err) => return Err(err.into()),
    };
    Ok(Json(PowChallengeBody {
        algorithm: challenge.algorithm.to_owned(),
        challenge: challenge.challenge,
        difficulty: challenge.difficulty,
        expires_in: challenge.expires_in.as_secs(),
    }))
}

/// `POST /auth/unblock`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnblockRequest {
    /// The token of the lockout notice's link.
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub token: String,
    /// It was not the owner: also email a password-reset code.
    #[serde(default)]
    pub reset: bool,
}

/// What an unblock link did.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnblockBody {
    /// Always `true`.
    pub unblocked: bool,
    /// With `reset`: the password reset's request, for `POST /auth/password/reset/confirm`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reset_request_id: Option<String>,
}

/// The link in a lockout notice: lifts the lockout, once, and with `reset` emails a
/// password-reset code (the owner says it was not them).
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/unblock", tag = "protection",
    request_body = UnblockRequest, responses((status = 200, body = UnblockBody))))]
pub async fn unblock(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<UnblockRequest>,
) -> HttpResult<Json<UnblockBody>> {
    let token = UnblockToken::new(body.token);
    let done = auth.protection().unblock(&token, body.reset, &ctx).await?;
    Ok(Json(UnblockBody {
        unblocked: true,
        reset_request_id: done.reset.map(|sent| sent.request_id.to_string()),
    }))
}

/// `POST /auth/password/change-required`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeRequiredRequest {
    /// The `change_token` of the sign-in that answered `password_change_required`.
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub change_token: String,
    /// The new password.
    #[cfg_attr(feature = "openapi", schema(format = Password, min_length = 8, max_length = 128))]
    pub new_password: String,
}

/// Finishes a sign-in held because its password was found breached: sets a new password
/// (once the MFA step, if due, is done) and answers as a sign-in does.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/password/change-required", tag = "password",
    request_body = ChangeRequiredRequest, responses((status = 200, body = SignInBody))))]
pub async fn change_required(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<ChangeRequiredRequest>,
) -> HttpResult<Json<SignInBody>> {
    let token = PasswordChangeToken::new(body.change_token);
    let sign_in = auth
        .passwords()
        .change_for_sign_in(&token, &Password::new(body.new_password), &ctx)
        .await?;
    Ok(Json(SignInBody::from_sign_in(&sign_in)?))
}

/// A lockout or a throttled address.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockView {
    /// Names it for `DELETE /protection/blocks/{id}`.
    pub id: String,
    /// `account_lockout` or `ip_throttle`.
    pub kind: String,
    /// The budget that was spent (`signin_fail_account_ip`, `signin_fail_ip`…).
    pub scope: String,
    /// The account, for a lockout.
    pub user_id: Option<String>,
    /// The address whose request spent the budget.
    pub ip: Option<String>,
    /// What is blocked: an address, an IPv6 /64, or `*` for every client.
    pub network: String,
    /// When (Unix ms).
    pub since: i64,
    /// Until (Unix ms), unless lifted sooner.
    pub until: i64,
}

impl From<&Block> for BlockView {
    fn from(b: &Block) -> Self {
        BlockView {
            id: b.id.clone(),
            kind: match b.kind {
                BlockKind::AccountLockout => "account_lockout",
                _ => "ip_throttle",
            }
            .to_owned(),
            scope: b.scope.clone(),
            user_id: b.user_id.map(|u| u.to_string()),
            ip: b.ip.map(|ip| ip.to_string()),
            network: b.network.clone(),
            since: b.since.unix_millis(),
            until: b.until.unix_millis(),
        }
    }
}

/// The lockouts and throttled addresses in force, newest first (`security:read`).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/protection/blocks", tag = "protection",
    responses((status = 200, body = List<BlockView>)), security(("bearer" = []))))]
pub async fn blocks(
    auth: &Portcullis,
    _ctx: RequestContext,
    caller: Caller,
) -> HttpResult<Json<List<BlockView>>> {
    caller.require(auth, SECURITY_READ, None).await?;
    let blocks = auth.protection().blocks().await?;
    Ok(Json(List::all(
        blocks.iter().map(BlockView::from).collect(),
    )))
}

/// Lifts a lockout or a throttle (`security:manage`): its counters are emptied and
/// `lockout_lifted` is logged.
#[cfg_attr(feature = "openapi", utoipa::path(delete, path = "/protection/blocks/{id}", tag = "protection",
    params(("id" = String, Path)), responses((status = 204)), security(("bearer" = []))))]
pub async fn lift(
    auth: &Portcullis,
    ctx: RequestContext,
    (caller, Path(id)): (Caller, Path<String>),
) -> HttpResult<StatusCode> {
    caller.require(auth, SECURITY_MANAGE, None).await?;
    if id.len() > 64 {
        return Err(portcullis::Error::NotFound { what: "block" }.into());
    }
    auth.protection().lift(&id, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}
