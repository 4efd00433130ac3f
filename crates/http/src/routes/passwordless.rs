//! Magic links and one-time codes by email and SMS.

use portcullis::{Portcullis, RequestContext};

use portcullis::crypto::{MagicLinkToken, OneTimeCode, PollToken};
use portcullis::model::RequestId;
use portcullis::tokens::AuthCodeRequest;
use portcullis::{CodeChannel, DeviceProof, LinkOptions, LinkStatus, Sent};
use serde::{Deserialize, Serialize};

use crate::error::{HttpError, HttpResult};
use crate::extract::{Json, Query, parse_id};
use crate::views::SignInBody;

/// `POST /auth/passwordless/magic-link`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MagicLinkRequest {
    /// Where to send the link.
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, pattern = r"^(?=[^@]{1,64}@)[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}$"))]
    pub email: String,
    /// For a redirect flow: the link then ends in an authorization code for this URI
    /// (registered for the app named by `client_id`). Needs `code_challenge`.
    #[cfg_attr(feature = "openapi", schema(format = "uri", max_length = 2048))]
    pub redirect_uri: Option<String>,
    /// PKCE challenge (S256) for the redirect flow.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_-]{43}$"))]
    pub code_challenge: Option<String>,
    /// `S256` (the only method).
    pub code_challenge_method: Option<ChallengeMethod>,
}

/// A PKCE challenge method: `S256`, the only one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum ChallengeMethod {
    /// `BASE64URL(SHA-256(code_verifier))`.
    S256,
}

/// A magic link on its way.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MagicLinkSent {
    /// Names the request (resend, status).
    pub request_id: String,
    /// Lets only this tab poll the status: keep it in the tab.
    pub poll_token: String,
    /// Seconds the link stays valid.
    pub expires_in: u64,
    /// When same-device binding is on: the code the person types if the link opens
    /// elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_code: Option<String>,
}

/// A request that names an earlier one.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResendRequest {
    /// The request to send again.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub request_id: String,
}

/// A code or link request accepted.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SentBody {
    /// Names the request.
    pub request_id: String,
    /// Seconds the code or link stays valid.
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

/// Send a magic link. The same answer whether or not the account exists.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/magic-link", tag = "passwordless",
    request_body = MagicLinkRequest, responses((status = 200, body = MagicLinkSent))))]
pub async fn magic_link(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<MagicLinkRequest>,
) -> HttpResult<Json<MagicLinkSent>> {
    let mut options = LinkOptions::new();
    if let Some(redirect_uri) = body.redirect_uri {
        let client_id = ctx
            .client_id
            .clone()
            .ok_or_else(|| HttpError::invalid("a redirect_uri needs the app's client_id"))?;
        let challenge = body
            .code_challenge
            .ok_or_else(|| HttpError::invalid("a redirect_uri needs a PKCE code_challenge"))?;
        let method = match body.code_challenge_method {
            Some(ChallengeMethod::S256) | None => "S256",
        };
        options = options.with_redirect(AuthCodeRequest::new(
            client_id,
            redirect_uri,
            challenge,
            method,
        )?);
    }
    let sent = auth.magic_links().send(&body.email, &options, &ctx).await?;
    Ok(Json(MagicLinkSent {
        request_id: sent.request_id.to_string(),
        poll_token: sent.poll_token.secret().to_owned(),
        expires_in: sent.expires_in.as_secs(),
        device_code: sent.device_code.map(|c| c.secret().to_owned()),
    }))
}

/// Send the magic link again; the earlier link dies.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/magic-link/resend", tag = "passwordless",
    request_body = ResendRequest, responses((status = 200, body = SentBody))))]
pub async fn magic_link_resend(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<ResendRequest>,
) -> HttpResult<Json<SentBody>> {
    let id: RequestId = parse_id(&body.request_id)?;
    Ok(Json(auth.magic_links().resend(id, &ctx).await?.into()))
}

/// The token of a magic link.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct TokenQuery {
    /// The link's token.
    #[cfg_attr(feature = "openapi", param(min_length = 1, max_length = 128))]
    pub token: String,
    /// The asking tab's poll token, when the link opens in the same browser: then no
    /// device code is needed.
    #[cfg_attr(feature = "openapi", param(min_length = 1, max_length = 128))]
    pub poll_token: Option<String>,
}

/// What a peek says.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeekBody {
    /// Always `true` (an invalid link is an error).
    pub valid: bool,
    /// Seconds left.
    pub expires_in: u64,
    /// Whether the person must type the device code shown where the link was asked for.
    pub needs_device_code: bool,
    /// Who asked for the link: show it beside the device code field, so a person who did
    /// not ask can tell.
    pub requested_by: RequestedBy,
}

/// Who asked for a magic link, in words a page can show as they are.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RequestedBy {
    /// The asking client's address.
    #[cfg_attr(feature = "openapi", schema(example = "203.0.113.7"))]
    pub ip: Option<String>,
    /// Roughly where that address is, when the engine was given a place lookup
    /// (`PortcullisBuilder::locate`; the demo has none): at most 64 characters.
    pub place: Option<String>,
    /// The asking browser, from a fixed list of names, never the raw user agent.
    #[cfg_attr(feature = "openapi", schema(example = "Firefox on Linux"))]
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

/// Look at a magic link without using it (safe for mail scanners' prefetch).
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/auth/passwordless/magic-link/verify", tag = "passwordless",
    params(TokenQuery), responses((status = 200, body = PeekBody))))]
pub async fn magic_link_peek(
    auth: &Portcullis,
    _ctx: RequestContext,
    Query(query): Query<TokenQuery>,
) -> HttpResult<Json<PeekBody>> {
    let token = MagicLinkToken::new(query.token);
    let mut proof = DeviceProof::none();
    if let Some(poll) = query.poll_token {
        proof = proof.with_poll_token(PollToken::new(poll));
    }
    let peek = auth.magic_links().peek(&token, &proof).await?;
    Ok(Json(PeekBody {
        valid: true,
        expires_in: peek.expires_in.as_secs(),
        needs_device_code: peek.needs_device_code,
        requested_by: RequestedBy::of(&peek),
    }))
}

/// `POST /auth/passwordless/magic-link/verify`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyLinkRequest {
    /// The link's token.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub token: String,
    /// The asking tab's poll token, when the link is opened in the same browser.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub poll_token: Option<String>,
    /// The device code, when same-device binding asks for it.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{4,10}$"))]
    pub device_code: Option<String>,
}

/// Redeem a magic link: tokens, the MFA step, or an authorization code.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/magic-link/verify", tag = "passwordless",
    request_body = VerifyLinkRequest, responses((status = 200, body = SignInBody))))]
pub async fn magic_link_verify(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<VerifyLinkRequest>,
) -> HttpResult<Json<SignInBody>> {
    let mut proof = DeviceProof::none();
    if let Some(poll) = body.poll_token {
        proof = proof.with_poll_token(PollToken::new(poll));
    }
    if let Some(code) = body.device_code {
        proof = proof.with_device_code(OneTimeCode::new(code));
    }
    let token = MagicLinkToken::new(body.token);
    let sign_in = auth.magic_links().verify(&token, &proof, &ctx).await?;
    Ok(Json(SignInBody::from_sign_in(&sign_in)?))
}

/// `GET /auth/passwordless/magic-link/status`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct StatusQuery {
    /// The request.
    #[cfg_attr(feature = "openapi", param(format = Uuid))]
    pub request_id: String,
    /// The asking tab's poll token.
    pub poll_token: String,
}

/// A status, with the sign-in when it is ready.
#[derive(Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusBody {
    /// `pending`, `verified`, `expired` (magic links); `pending`, `completed`, `failed`,
    /// `expired` (passkey ceremonies).
    pub status: String,
    /// With `verified`: the sign-in (given once).
    #[serde(flatten)]
    pub sign_in: Option<SignInBody>,
}

/// Poll a magic link from the tab that asked for it.
#[cfg_attr(feature = "openapi", utoipa::path(get, path = "/auth/passwordless/magic-link/status", tag = "passwordless",
    params(StatusQuery), responses((status = 200, body = StatusBody))))]
pub async fn magic_link_status(
    auth: &Portcullis,
    ctx: RequestContext,
    Query(query): Query<StatusQuery>,
) -> HttpResult<Json<StatusBody>> {
    let id: RequestId = parse_id(&query.request_id)?;
    let poll = PollToken::new(query.poll_token);
    let status = auth.magic_links().status(id, &poll, &ctx).await?;
    let (status, sign_in) = match status {
        LinkStatus::Pending => ("pending", None),
        LinkStatus::Verified(sign_in) => ("verified", Some(SignInBody::from_sign_in(&sign_in)?)),
        LinkStatus::Expired => ("expired", None),
        _ => ("pending", None),
    };
    Ok(Json(StatusBody {
        status: status.to_owned(),
        sign_in,
    }))
}

/// `POST /auth/passwordless/email-code`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailCodeRequest {
    /// Where to send the code.
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254, pattern = r"^(?=[^@]{1,64}@)[A-Za-z0-9_%+-]+(\.[A-Za-z0-9_%+-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}$"))]
    pub email: String,
}

/// `POST /auth/passwordless/sms-code`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SmsCodeRequest {
    /// Where to text the code (E.164, e.g. `+15551234567`).
    #[cfg_attr(feature = "openapi", schema(pattern = r"^\+[1-9][0-9]{6,14}$"))]
    pub phone: String,
}

/// `POST /auth/passwordless/{email,sms}-code/verify`.
#[derive(Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyCodeRequest {
    /// The request the code was sent for.
    #[cfg_attr(feature = "openapi", schema(format = Uuid))]
    pub request_id: String,
    /// The code.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]{4,10}$"))]
    pub code: String,
}

async fn send(
    channel: CodeChannel<'_>,
    to: &str,
    ctx: &portcullis::RequestContext,
) -> HttpResult<Json<SentBody>> {
    Ok(Json(channel.send(to, ctx).await?.into()))
}

async fn resend(
    channel: CodeChannel<'_>,
    body: ResendRequest,
    ctx: &portcullis::RequestContext,
) -> HttpResult<Json<SentBody>> {
    let id: RequestId = parse_id(&body.request_id)?;
    Ok(Json(channel.resend(id, ctx).await?.into()))
}

async fn verify(
    channel: CodeChannel<'_>,
    body: VerifyCodeRequest,
    ctx: &portcullis::RequestContext,
) -> HttpResult<Json<SignInBody>> {
    let id: RequestId = parse_id(&body.request_id)?;
    let sign_in = channel
        .verify(id, &OneTimeCode::new(body.code), ctx)
        .await?;
    Ok(Json(SignInBody::from_sign_in(&sign_in)?))
}

/// Email a one-time code. The same answer whether or not the account exists.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/email-code", tag = "passwordless",
    request_body = EmailCodeRequest, responses((status = 200, body = SentBody))))]
pub async fn email_code(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<EmailCodeRequest>,
) -> HttpResult<Json<SentBody>> {
    send(auth.codes().email(), &body.email, &ctx).await
}

/// Send the same email-code request again.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/email-code/resend", tag = "passwordless",
    request_body = ResendRequest, responses((status = 200, body = SentBody))))]
pub async fn email_code_resend(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<ResendRequest>,
) -> HttpResult<Json<SentBody>> {
    resend(auth.codes().email(), body, &ctx).await
}

/// Sign in with an emailed code.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/email-code/verify", tag = "passwordless",
    request_body = VerifyCodeRequest, responses((status = 200, body = SignInBody))))]
pub async fn email_code_verify(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<VerifyCodeRequest>,
) -> HttpResult<Json<SignInBody>> {
    verify(auth.codes().email(), body, &ctx).await
}

/// Text a one-time code. The same answer whether or not the account exists.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/sms-code", tag = "passwordless",
    request_body = SmsCodeRequest, responses((status = 200, body = SentBody))))]
pub async fn sms_code(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<SmsCodeRequest>,
) -> HttpResult<Json<SentBody>> {
    send(auth.codes().sms(), &body.phone, &ctx).await
}

/// Send the same SMS-code request again.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/sms-code/resend", tag = "passwordless",
    request_body = ResendRequest, responses((status = 200, body = SentBody))))]
pub async fn sms_code_resend(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<ResendRequest>,
) -> HttpResult<Json<SentBody>> {
    resend(auth.codes().sms(), body, &ctx).await
}

/// Sign in with a texted code.
#[cfg_attr(feature = "openapi", utoipa::path(post, path = "/auth/passwordless/sms-code/verify", tag = "passwordless",
    request_body = VerifyCodeRequest, responses((status = 200, body = SignInBody))))]
pub async fn sms_code_verify(
    auth: &Portcullis,
    ctx: RequestContext,
    Json(body): Json<VerifyCodeRequest>,
) -> HttpResult<Json<SignInBody>> {
    verify(auth.codes().sms(), body, &ctx).await
}
