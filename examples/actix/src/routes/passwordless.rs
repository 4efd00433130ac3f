//! Magic links, and one-time codes by email and SMS.

use actix_web::web::{Data, Json, Query};
use portcullis::crypto::{MagicLinkToken, OneTimeCode, PollToken};
use portcullis::model::RequestId;
use portcullis::tokens::AuthCodeRequest;
use portcullis::{CodeChannel, DeviceProof, LinkOptions, LinkStatus, RequestContext, Sent};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Ctx, parse_id};
use crate::views::SignInBody;

/// `POST /auth/passwordless/magic-link`.
#[derive(Deserialize)]
pub struct MagicLinkRequest {
    /// Where to send the link.
    pub email: String,
    /// Redirect flows: the link ends in an authorization code for this URI, registered for
    /// the app named by `client_id`.
    pub redirect_uri: Option<String>,
    /// The PKCE challenge (S256) a redirect flow needs.
    pub code_challenge: Option<String>,
    /// `S256`.
    pub code_challenge_method: Option<String>,
}

/// A magic link on its way.
#[derive(Serialize)]
pub struct MagicLinkSent {
    /// Names the request.
    pub request_id: String,
    /// Lets only the asking tab poll the status.
    pub poll_token: String,
    /// Seconds the link stays valid.
    pub expires_in: u64,
    /// With same-device binding: what to type if the link opens elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_code: Option<String>,
}

/// A request naming an earlier one.
#[derive(Deserialize)]
pub struct ResendRequest {
    /// The earlier request.
    pub request_id: String,
}

/// A code or link accepted for delivery.
#[derive(Serialize)]
pub struct SentBody {
    /// Names the request.
    pub request_id: String,
    /// Seconds it stays valid.
    pub expires_in: u64,
}

impl From<Sent> for SentBody {
    fn from(sent: Sent) -> Self {
        SentBody {
            request_id: sent.request_id.to_string(),
            expires_in: sent.expires_in.as_secs(),
        }
    }
}

/// Emails a magic link; the same answer whether or not the account exists.
pub async fn magic_link(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<MagicLinkRequest>,
) -> ApiResult<Json<MagicLinkSent>> {
    let mut options = LinkOptions::new();
    if let Some(redirect_uri) = body.redirect_uri {
        let Some(client_id) = ctx.client_id.clone() else {
            return Err(ApiError::invalid(
                "a redirect_uri needs the app's client_id",
            ));
        };
        let Some(challenge) = body.code_challenge else {
            return Err(ApiError::invalid(
                "a redirect_uri needs a PKCE code_challenge",
            ));
        };
        let method = body.code_challenge_method.as_deref().unwrap_or("S256");
        let request = AuthCodeRequest::new(client_id, redirect_uri, challenge, method)?;
        options = options.with_redirect(request);
    }
    let sent = state
        .auth
        .magic_links()
        .send(&body.email, &options, &ctx)
        .await?;
    Ok(Json(MagicLinkSent {
        request_id: sent.request_id.to_string(),
        poll_token: sent.poll_token.secret().to_owned(),
        expires_in: sent.expires_in.as_secs(),
        device_code: sent.device_code.map(|c| c.secret().to_owned()),
    }))
}

/// Sends the link again; the earlier one dies.
pub async fn magic_link_resend(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<ResendRequest>,
) -> ApiResult<Json<SentBody>> {
    let id: RequestId = parse_id(&body.request_id)?;
    let sent = state.auth.magic_links().resend(id, &ctx).await?;
    Ok(Json(sent.into()))
}

/// `GET /auth/passwordless/magic-link/verify`.
#[derive(Deserialize)]
pub struct PeekQuery {
    /// The link's token.
    pub token: String,
    /// The asking tab's poll token, when the link opens in the same browser.
    pub poll_token: Option<String>,
}

/// What a peek finds.
#[derive(Serialize)]
pub struct PeekBody {
    /// Always `true`: an unusable link is an error.
    pub valid: bool,
    /// Seconds left.
    pub expires_in: u64,
    /// Whether the device code must be typed.
    pub needs_device_code: bool,
    /// Who asked for the link, to show beside the device code field.
    pub requested_by: RequestedBy,
}

/// Who asked for a magic link, in words a page can show as they are.
#[derive(Serialize)]
pub struct RequestedBy {
    /// The asking client's address.
    pub ip: Option<String>,
    /// Roughly where that address is, when the engine has a place lookup
    /// (`PortcullisBuilder::locate`; the example has none).
    pub place: Option<String>,
    /// The asking browser ("Firefox on Linux"), never the raw user agent.
    pub browser: Option<String>,
    /// When it asked, in milliseconds since the Unix epoch.
    pub at: i64,
}

impl RequestedBy {
    fn of(peek: &portcullis::LinkPeek) -> Self {
        let asker = &peek.requested_by;
        RequestedBy {
            ip: asker.ip.map(|ip| ip.to_string()),
            place: peek.place.clone(),
            browser: asker.browser(),
            at: asker.at.unix_millis(),
        }
    }
}

/// Looks at a link without spending it (a mail scanner's prefetch is harmless).
pub async fn magic_link_peek(
    state: Data<AppState>,
    Query(query): Query<PeekQuery>,
) -> ApiResult<Json<PeekBody>> {
    let proof = match query.poll_token {
        Some(poll) => DeviceProof::none().with_poll_token(PollToken::new(poll)),
        None => DeviceProof::none(),
    };
    let peek = state
        .auth
        .magic_links()
        .peek(&MagicLinkToken::new(query.token), &proof)
        .await?;
    Ok(Json(PeekBody {
        valid: true,
        expires_in: peek.expires_in.as_secs(),
        needs_device_code: peek.needs_device_code,
        requested_by: RequestedBy::of(&peek),
    }))
}

/// `POST /auth/passwordless/magic-link/verify`.
#[derive(Deserialize)]
pub struct RedeemRequest {
    /// The link's token.
    pub token: String,
    /// The asking tab's poll token (same browser).
    pub poll_token: Option<String>,
    /// The device code (another browser).
    pub device_code: Option<String>,
}

/// Redeems a link: tokens, the MFA step, or an authorization code.
pub async fn magic_link_verify(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<RedeemRequest>,
) -> ApiResult<Json<SignInBody>> {
    let mut proof = DeviceProof::none();
    if let Some(poll) = body.poll_token {
        proof = proof.with_poll_token(PollToken::new(poll));
    }
    if let Some(code) = body.device_code {
        proof = proof.with_device_code(OneTimeCode::new(code));
    }
    let sign_in = state
        .auth
        .magic_links()
        .verify(&MagicLinkToken::new(body.token), &proof, &ctx)
        .await?;
    Ok(Json(SignInBody::new(&sign_in)?))
}

/// `GET /auth/passwordless/magic-link/status`.
#[derive(Deserialize)]
pub struct PollQuery {
    /// The request.
    pub request_id: String,
    /// The asking tab's poll token.
    pub poll_token: String,
}

/// A ceremony's status, with the sign-in once it is ready.
#[derive(Serialize)]
pub struct StatusBody {
    /// `pending`, `verified` or `expired` (links); `pending`, `completed`, `failed` or
    /// `expired` (passkey ceremonies).
    pub status: &'static str,
    /// The sign-in, handed over once.
    #[serde(flatten)]
    pub sign_in: Option<SignInBody>,
}

/// The asking tab polls its link.
pub async fn magic_link_status(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Query(query): Query<PollQuery>,
) -> ApiResult<Json<StatusBody>> {
    let id: RequestId = parse_id(&query.request_id)?;
    let poll = PollToken::new(query.poll_token);
    let body = match state.auth.magic_links().status(id, &poll, &ctx).await? {
        LinkStatus::Verified(sign_in) => StatusBody {
            status: "verified",
            sign_in: Some(SignInBody::new(&sign_in)?),
        },
        LinkStatus::Expired => StatusBody {
            status: "expired",
            sign_in: None,
        },
        _ => StatusBody {
            status: "pending",
            sign_in: None,
        },
    };
    Ok(Json(body))
}

/// `POST /auth/passwordless/email-code` (and `/auth/password/reset`).
#[derive(Deserialize)]
pub struct EmailRequest {
    /// The address.
    pub email: String,
}

/// `POST /auth/passwordless/sms-code`.
#[derive(Deserialize)]
pub struct PhoneRequest {
    /// The number, E.164 (`+15551234567`).
    pub phone: String,
}

/// `POST /auth/passwordless/{email,sms}-code/verify`.
#[derive(Deserialize)]
pub struct CodeRequest {
    /// The request the code belongs to.
    pub request_id: String,
    /// The code.
    pub code: String,
}

async fn resend_on(
    channel: CodeChannel<'_>,
    body: ResendRequest,
    ctx: &RequestContext,
) -> ApiResult<Json<SentBody>> {
    let id: RequestId = parse_id(&body.request_id)?;
    Ok(Json(channel.resend(id, ctx).await?.into()))
}

async fn verify_on(
    channel: CodeChannel<'_>,
    body: CodeRequest,
    ctx: &RequestContext,
) -> ApiResult<Json<SignInBody>> {
    let id: RequestId = parse_id(&body.request_id)?;
    let code = OneTimeCode::new(body.code);
    let sign_in = channel.verify(id, &code, ctx).await?;
    Ok(Json(SignInBody::new(&sign_in)?))
}

/// Emails a one-time code; the same answer whether or not the account exists.
pub async fn email_code(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<EmailRequest>,
) -> ApiResult<Json<SentBody>> {
    let sent = state.auth.codes().email().send(&body.email, &ctx).await?;
    Ok(Json(sent.into()))
}

/// Sends the same email-code request again.
pub async fn email_code_resend(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<ResendRequest>,
) -> ApiResult<Json<SentBody>> {
    resend_on(state.auth.codes().email(), body, &ctx).await
}

/// Signs in with an emailed code.
pub async fn email_code_verify(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<CodeRequest>,
) -> ApiResult<Json<SignInBody>> {
    verify_on(state.auth.codes().email(), body, &ctx).await
}

/// Texts a one-time code; the same answer whether or not the account exists.
pub async fn sms_code(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<PhoneRequest>,
) -> ApiResult<Json<SentBody>> {
    let sent = state.auth.codes().sms().send(&body.phone, &ctx).await?;
    Ok(Json(sent.into()))
}

/// Sends the same SMS-code request again.
pub async fn sms_code_resend(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<ResendRequest>,
) -> ApiResult<Json<SentBody>> {
    resend_on(state.auth.codes().sms(), body, &ctx).await
}

/// Signs in with a texted code.
pub async fn sms_code_verify(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<CodeRequest>,
) -> ApiResult<Json<SignInBody>> {
    verify_on(state.auth.codes().sms(), body, &ctx).await
}
