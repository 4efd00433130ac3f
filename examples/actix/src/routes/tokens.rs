//! Refreshing tokens and exchanging authorization codes.

use actix_web::web::{Data, Json};
use portcullis::RequestContext;
use portcullis::crypto::{AuthCode, ClientSecret, CodeVerifier, RefreshToken};
use portcullis::model::ClientId;
use portcullis::tokens::CodeExchange;
use serde::Deserialize;

use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::extract::Ctx;
use crate::views::SignInBody;

/// `POST /token/refresh`.
#[derive(Deserialize)]
pub struct RefreshRequest {
    /// The current refresh token.
    pub refresh_token: String,
}

/// Rotates: a new access and refresh token. Presenting a rotated one again ends the
/// session (reuse detection).
pub async fn refresh(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<RefreshRequest>,
) -> ApiResult<Json<SignInBody>> {
    rotate(&state, body.refresh_token, &ctx).await
}

async fn rotate(
    state: &AppState,
    refresh_token: String,
    ctx: &RequestContext,
) -> ApiResult<Json<SignInBody>> {
    let set = state
        .auth
        .tokens()
        .refresh(&RefreshToken::new(refresh_token), ctx)
        .await?;
    Ok(Json(SignInBody::tokens(&set)))
}

/// `POST /token`.
#[derive(Deserialize)]
pub struct TokenRequest {
    /// `authorization_code` or `refresh_token`.
    pub grant_type: String,
    /// The authorization code.
    pub code: Option<String>,
    /// The PKCE verifier.
    pub code_verifier: Option<String>,
    /// The app.
    pub client_id: Option<String>,
    /// The redirect URI the code was issued for.
    pub redirect_uri: Option<String>,
    /// A confidential app's secret.
    pub client_secret: Option<String>,
    /// With `grant_type=refresh_token`.
    pub refresh_token: Option<String>,
}

fn required(value: Option<String>, name: &str) -> ApiResult<String> {
    value.ok_or_else(|| ApiError::invalid(format!("{name} is required")))
}

/// Exchanges an authorization code (PKCE S256) for tokens, or refreshes.
pub async fn token(
    state: Data<AppState>,
    Ctx(ctx): Ctx,
    Json(body): Json<TokenRequest>,
) -> ApiResult<Json<SignInBody>> {
    match body.grant_type.as_str() {
        "authorization_code" => {
            let exchange = CodeExchange {
                code: AuthCode::new(required(body.code, "code")?),
                code_verifier: CodeVerifier::new(required(body.code_verifier, "code_verifier")?),
                client_id: ClientId::new(required(body.client_id, "client_id")?)?,
                redirect_uri: required(body.redirect_uri, "redirect_uri")?,
                client_secret: body.client_secret.map(ClientSecret::new),
            };
            let set = state.auth.tokens().exchange_code(&exchange, &ctx).await?;
            Ok(Json(SignInBody::tokens(&set)))
        }
        "refresh_token" => {
            rotate(&state, required(body.refresh_token, "refresh_token")?, &ctx).await
        }
        _ => Err(ApiError::invalid(
            "grant_type must be authorization_code or refresh_token",
        )),
    }
}
