//! `/oauth2/authorize`: the request's checks, the browser's session, consent, and the code.

use serde::{Deserialize, Serialize};

use super::{Browser, CodeGrant, Consent, Grant, INTERACTION_TTL, Provider};
use crate::Error;
use crate::crypto::{AccessToken, ProviderCookie, SecretPurpose, random_token};
use crate::model::{App, ChallengeKey, ChallengeKind, ClientId, UserId};
use crate::tokens::AuthCodeRequest;

/// What the provider answers an authorization request with. Its `Debug` never shows the
/// redirect (it holds the code).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Authorization {
    /// Send the browser here (303): the client's redirect URI with a `code`, or with an
    /// `error`, and `state` and `iss` either way.
    Redirect(String),
    /// The person must sign in: show the login page for this interaction.
    Login(Interaction),
    /// The person must consent: show this page.
    Consent(ConsentPrompt),
    /// Neither the client nor its redirect URI can be trusted with an answer: show an
    /// error page at the provider, never a redirect (RFC 6749 §4.1.2.1).
    Refused {
        /// The OAuth error code (`invalid_request`, `invalid_client`…).
        error: &'static str,
        /// What is wrong, for the person.
        description: String,
    },
}

impl std::fmt::Debug for Authorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Authorization::Redirect(_) => f.write_str("Redirect([redacted])"),
            Authorization::Login(interaction) => f.debug_tuple("Login").field(interaction).finish(),
            Authorization::Consent(prompt) => f.debug_tuple("Consent").field(prompt).finish(),
            Authorization::Refused { error, .. } => f
                .debug_struct("Refused")
                .field("error", error)
                .finish_non_exhaustive(),
        }
    }
}

/// An authorization request waiting for the person: its id goes to the login page
/// (`?interaction=`), which signs in and then calls [`Provider::establish`].
#[derive(Clone, PartialEq, Eq)]
pub struct Interaction {
    /// The id (a 256-bit random token; stored hashed).
    pub id: String,
    /// The client's name, to show.
    pub client_name: String,
    /// The client.
    pub client_id: ClientId,
    /// The organization the sign-in must run in (the client's).
    pub org_id: crate::OrgId,
    /// The `login_hint` the client sent, to prefill.
    pub login_hint: Option<String>,
    /// The client asked for a fresh sign-in (`prompt=login` or an elapsed `max_age`).
    pub fresh_sign_in: bool,
}

impl std::fmt::Debug for Interaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interaction")
            .field("client_id", &self.client_id)
            .field("fresh_sign_in", &self.fresh_sign_in)
            .finish_non_exhaustive()
    }
}

/// A consent page: the client, each scope it asks for, and the form's CSRF token.
#[derive(Clone, PartialEq, Eq)]
pub struct ConsentPrompt {
    /// The interaction the form posts back.
    pub interaction: String,
    /// The client's name.
    pub client_name: String,
    /// The client.
    pub client_id: ClientId,
    /// The scopes asked for, each with what it lets the client see or do.
    pub scopes: Vec<(String, &'static str)>,
    /// The form's CSRF token.
    pub csrf: String,
}

impl std::fmt::Debug for ConsentPrompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentPrompt")
            .field("client_id", &self.client_id)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

/// What each scope shows a client, for the consent page.
fn describe(scope: &str) -> &'static str {
    match scope {
        "openid" => "Sign you in and know who you are",
        "profile" => "Your name",
        "email" => "Your email address",
        "phone" => "Your phone number",
        "offline_access" => "Stay signed in when you are away",
        "roles" => "Your roles and permissions in the organization",
        _ => "",
    }
}

/// A checked authorization request.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Request {
    client_id: ClientId,
    redirect_uri: String,
    scope: Vec<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: String,
    prompt_none: bool,
    prompt_login: bool,
    prompt_consent: bool,
    max_age: Option<u64>,
    login_hint: Option<String>,
    /// The subject of a valid `id_token_hint`.
    hint_sub: Option<UserId>,
    /// When the request came (Unix milliseconds): a forced sign-in must not be earlier.
    at: i64,
}

/// Why a request is refused back at the client: the error code and what is wrong.
type Refusal = (&'static str, String);

impl<'a> Provider<'a> {
    /// Answers `GET /oauth2/authorize?{query}` for a browser holding `cookie` (if any).
    pub async fn authorize(
        &self,
        query: &str,
        cookie: Option<&ProviderCookie>,
    ) -> Result<Authorization, Error> {
        let (app, checked) = match self.check(query).await? {
            Ok(found) => found,
            Err(refusal) => return Ok(refusal),
        };
        self.decide(&app, checked, cookie, None).await
    }

    /// Picks an interaction up again after the login page signed in: the same decisions
    /// as [`authorize`](Self::authorize), with the request it stored.
    pub async fn resume(
        &self,
        interaction: &str,
        cookie: Option<&ProviderCookie>,
    ) -> Result<Authorization, Error> {
        let Some((app, request)) = self.interaction_request(interaction).await? else {
            return Ok(expired());
        };
        self.decide(&app, request, cookie, Some(interaction)).await
    }

    /// What the login page shows for an interaction: the client, the hint, whether a fresh
    /// sign-in is asked for. [`Error::InvalidToken`] for an unknown or expired one.
    pub async fn interaction(&self, interaction: &str) -> Result<Interaction, Error> {
        let (app, request) = self
            .interaction_request(interaction)
            .await?
            .ok_or(Error::InvalidToken)?;
        Ok(self.interaction_of(interaction.to_owned(), &app, &request))
    }

    /// The login page signed in (its `access_token`) for an interaction: the browser's
    /// cookie, standing for that session at `/oauth2/authorize` from now on. The session
    /// must be live and run in the client's organization ([`Error::Forbidden`]
    /// otherwise: sign in there).
    pub async fn establish(
        &self,
        interaction: &str,
        access_token: &AccessToken,
    ) -> Result<ProviderCookie, Error> {
        let inner = self.inner;
        let (app, _) = self
            .interaction_request(interaction)
            .await?
            .ok_or(Error::InvalidToken)?;
        let claims = crate::tokens::Tokens::new(inner)
            .verify_live(access_token)
            .await?;
        if claims.client_id.is_some() {
            // A client's token is the client's, not the browser's.
            return Err(Error::InvalidToken);
        }
        let now = inner.clock.now();
        let session = inner
            .sessions
            .get_session(claims.sid, now)
            .await?
            .filter(|s| s.is_active(now))
            .ok_or(Error::SessionRevoked)?;
        if session.org_id != Some(app.org_id) {
            return Err(Error::Forbidden);
        }
        let cookie = random_token()?;
        let hash = inner
            .hasher
            .hash(SecretPurpose::ProviderCookie, cookie.as_bytes());
        let key = ChallengeKey::hashed(ChallengeKind::ProviderBrowser, &hash);
        let record = super::BrowserRecord {
            session_id: session.id,
            user_id: session.user_id,
        };
        let value =
            serde_json::to_vec(&record).map_err(|_| Error::Internal("serializing a browser"))?;
        if !inner
            .challenges
            .insert(&key, &value, session.expires_at, now)
            .await?
        {
            return Err(Error::Conflict { what: "cookie" });
        }
        Ok(ProviderCookie::new(cookie.as_str()))
    }

    /// The consent form was posted: `allow` grants the scopes asked for (remembered until
    /// revoked) and goes on to the code; otherwise `access_denied` goes back to the
    /// client. The form's CSRF token must be the one derived from this browser's cookie
    /// and this interaction ([`Error::Forbidden`] otherwise).
    pub async fn consent(
        &self,
        interaction: &str,
        cookie: Option<&ProviderCookie>,
        csrf: &str,
        allow: bool,
    ) -> Result<Authorization, Error> {
        let Some((app, request)) = self.interaction_request(interaction).await? else {
            return Ok(expired());
        };
        let Some(cookie) = cookie.filter(|c| self.csrf_matches(c, interaction, csrf)) else {
            return Err(Error::Forbidden);
        };
        let Some(browser) = self.browser(Some(cookie)).await? else {
            return Err(Error::Forbidden);
        };
        if !allow {
            self.take_interaction(interaction).await?;
            return Ok(self.error_redirect(&request, "access_denied", "the person declined"));
        }
        let now = self.inner.clock.now();
        let scopes = request.scope.clone();
        let client_id = app.client_id.clone();
        self.change_consents(browser.user.id, |consents| {
            let entry = consents
                .entry(client_id.clone())
                .or_insert_with(|| Consent {
                    client_id: client_id.clone(),
                    scopes: Vec::new(),
                    granted_at: now,
                });
            for scope in &scopes {
                if !entry.scopes.contains(scope) {
                    entry.scopes.push(scope.clone());
                }
            }
            entry.granted_at = now;
            true
        })
        .await?;
        let mut request = request;
        request.prompt_consent = false;
        self.decide(&app, request, Some(cookie), Some(interaction))
            .await
    }

    /// Checks a request's client and redirect URI (refusals at the provider), then the
    /// rest (refusals back at the client).
    async fn check(&self, query: &str) -> Result<Result<(App, Request), Authorization>, Error> {
        let Ok(pairs) = serde_urlencoded::from_str::<Vec<(String, String)>>(query) else {
            return Ok(Err(page("invalid_request", "the query is not well formed")));
        };
        let count = |name: &str| pairs.iter().filter(|(k, _)| k == name).count();
        let one = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        for name in ["client_id", "redirect_uri"] {
            if count(name) > 1 {
                return Ok(Err(page("invalid_request", &format!("{name} is repeated"))));
            }
        }
        let Some(client_id) = one("client_id").and_then(|id| ClientId::new(id).ok()) else {
            return Ok(Err(page("invalid_request", "client_id is missing")));
        };
        let Some(app) = self.inner.orgs.get_app(&client_id).await? else {
            return Ok(Err(page("invalid_client", "this client is not registered")));
        };
        let redirect_uri = match one("redirect_uri") {
            Some(uri) if app.allows_redirect(uri) => uri.to_owned(),
            Some(_) => {
                return Ok(Err(page(
                    "invalid_request",
                    "redirect_uri is not registered for this client",
                )));
            }
            None => match app.redirect_uris.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Ok(Err(page(
                        "invalid_request",
                        "redirect_uri is missing (the client registered several)",
                    )));
                }
            },
        };
        // From here the client and its redirect URI are trusted with the answer.
        let state = one("state").map(str::to_owned);
        let refused = |error: &'static str, description: &str| {
            let partial = Request {
                client_id: app.client_id.clone(),
                redirect_uri: redirect_uri.clone(),
                scope: Vec::new(),
                state: state.clone(),
                nonce: None,
                code_challenge: String::new(),
                prompt_none: false,
                prompt_login: false,
                prompt_consent: false,
                max_age: None,
                login_hint: None,
                hint_sub: None,
                at: 0,
            };
            Ok(Err(self.error_redirect(&partial, error, description)))
        };
        match self.check_rest(&app, &redirect_uri, &pairs).await? {
            Ok(request) => Ok(Ok((app, request))),
            Err((error, description)) => refused(error, &description),
        }
    }

    async fn check_rest(
        &self,
        app: &App,
        redirect_uri: &str,
        pairs: &[(String, String)],
    ) -> Result<Result<Request, Refusal>, Error> {
        let bad = |error: &'static str, description: &str| Ok(Err((error, description.to_owned())));
        for (i, (name, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
                return bad("invalid_request", &format!("{name} is repeated"));
            }
        }
        let one = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
                .filter(|v| !v.is_empty())
        };
        if one("request").is_some() {
            return bad("request_not_supported", "request objects are not supported");
        }
        if one("request_uri").is_some() {
            return bad("request_uri_not_supported", "request_uri is not supported");
        }
        match one("response_type") {
            None => return bad("invalid_request", "response_type is missing"),
            Some("code") => {}
            Some(_) => {
                return bad(
                    "unsupported_response_type",
                    "only the authorization code flow (response_type=code)",
                );
            }
        }
        if one("response_mode").is_some_and(|mode| mode != "query") {
            return bad("invalid_request", "only response_mode=query");
        }
        if !app
            .client
            .grant_types
            .iter()
            .any(|g| g == "authorization_code")
        {
            return bad(
                "unauthorized_client",
                "this client may not use the authorization code flow",
            );
        }
        let mut scope: Vec<String> = Vec::new();
        for s in one("scope").unwrap_or_default().split_ascii_whitespace() {
            if !app.client.scopes.iter().any(|allowed| allowed == s) {
                return bad(
                    "invalid_scope",
                    &format!("scope {s} is not allowed for this client"),
                );
            }
            if !scope.iter().any(|seen| seen == s) {
                scope.push(s.to_owned());
            }
        }
        let Some(challenge) = one("code_challenge") else {
            return bad(
                "invalid_request",
                "PKCE is required: code_challenge is missing",
            );
        };
        let method = one("code_challenge_method").unwrap_or("plain");
        if AuthCodeRequest::new(app.client_id.clone(), redirect_uri, challenge, method).is_err() {
            return bad(
                "invalid_request",
                "code_challenge must be an S256 challenge (code_challenge_method=S256)",
            );
        }
        let prompts: Vec<&str> = one("prompt")
            .unwrap_or_default()
            .split(' ')
            .filter(|p| !p.is_empty())
            .collect();
        if prompts
            .iter()
            .any(|p| !matches!(*p, "none" | "login" | "consent" | "select_account"))
        {
            return bad("invalid_request", "prompt must be none, login or consent");
        }
        let prompt_none = prompts.contains(&"none");
        if prompt_none && prompts.len() > 1 {
            return bad("invalid_request", "prompt=none cannot be combined");
        }
        let max_age = match one("max_age") {
            None => None,
            Some(text) => match text.parse::<u64>() {
                Ok(secs) if text.bytes().all(|b| b.is_ascii_digit()) => Some(secs),
                _ => return bad("invalid_request", "max_age must be a number of seconds"),
            },
        };
        let nonce = one("nonce").map(str::to_owned);
        if nonce.as_ref().is_some_and(|n| n.len() > 512)
            || one("state").is_some_and(|s| s.len() > 2048)
        {
            return bad("invalid_request", "nonce or state is too long");
        }
        let login_hint = one("login_hint")
            .filter(|h| h.len() <= 320)
            .map(str::to_owned);
        let hint_sub = match one("id_token_hint") {
            None => None,
            Some(hint) => {
                let claims = crate::tokens::verify_id_token_hint(self.inner, hint).await;
                let sub = claims
                    .ok()
                    .and_then(|c| c.get("sub").and_then(|s| s.as_str()).map(str::to_owned))
                    .and_then(|s| s.parse::<UserId>().ok());
                match sub {
                    Some(sub) => Some(sub),
                    None => {
                        return bad(
                            "invalid_request",
                            "id_token_hint is not one of our ID tokens",
                        );
                    }
                }
            }
        };
        Ok(Ok(Request {
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.to_owned(),
            scope,
            state: one("state").map(str::to_owned),
            nonce,
            code_challenge: challenge.to_owned(),
            prompt_none,
            prompt_login: prompts.contains(&"login"),
            prompt_consent: prompts.contains(&"consent"),
            max_age,
            login_hint,
            hint_sub,
            at: self.inner.clock.now().unix_millis(),
        }))
    }

    /// Signed in enough? Consented? Then a code; otherwise the login page, the consent
    /// page, or (with `prompt=none`) the error.
    async fn decide(
        &self,
        app: &App,
        request: Request,
        cookie: Option<&ProviderCookie>,
        interaction: Option<&str>,
    ) -> Result<Authorization, Error> {
        let now = self.inner.clock.now().unix_secs();
        let browser = self
            .browser(cookie)
            .await?
            .filter(|b| b.session.org_id == Some(app.org_id));
        let fresh_needed = |b: &Browser| {
            let forced = request.prompt_login && b.session.created_at.unix_millis() < request.at;
            let age = now.saturating_sub(b.session.created_at.unix_secs());
            let too_old = request
                .max_age
                .is_some_and(|max| age > i64::try_from(max).unwrap_or(i64::MAX));
            forced || too_old
        };
        let signed_in = match browser {
            Some(b) if request.hint_sub.is_some_and(|sub| sub != b.user.id) => {
                if request.prompt_none {
                    return Ok(self.error_redirect(
                        &request,
                        "login_required",
                        "the person signed in is not the one the hint names",
                    ));
                }
                None
            }
            Some(b) if fresh_needed(&b) => None,
            other => other,
        };
        let Some(browser) = signed_in else {
            if request.prompt_none {
                return Ok(self.error_redirect(&request, "login_required", "no one is signed in"));
            }
            let id = match interaction {
                Some(id) => id.to_owned(),
                None => self.store_interaction(&request).await?,
            };
            return Ok(Authorization::Login(self.interaction_of(id, app, &request)));
        };
        let needs_consent = !app.client.first_party
            && (request.prompt_consent
                || !self
                    .consented(browser.user.id, &app.client_id, &request.scope)
                    .await?);
        if needs_consent {
            if request.prompt_none {
                return Ok(self.error_redirect(
                    &request,
                    "consent_required",
                    "the person has not consented to this client",
                ));
            }
            let id = match interaction {
                Some(id) => id.to_owned(),
                None => self.store_interaction(&request).await?,
            };
            let Some(cookie) = cookie else {
                return Err(Error::Forbidden);
            };
            return Ok(Authorization::Consent(ConsentPrompt {
                csrf: self.csrf_token(cookie, &id),
                interaction: id,
                client_name: app.name.clone(),
                client_id: app.client_id.clone(),
                scopes: request
                    .scope
                    .iter()
                    .map(|s| (s.clone(), describe(s)))
                    .collect(),
            }));
        }
        if let Some(id) = interaction
            && !self.take_interaction(id).await?
        {
            // Another tab finished it first.
            return Ok(expired());
        }
        let session = &browser.session;
        let grant = Grant {
            client_id: app.client_id.clone(),
            scope: request.scope.clone(),
            auth_time: session.created_at.unix_secs(),
            op_sid: session.id,
            amr: session.amr.clone(),
            acr: format!("aal{}", session.aal),
        };
        let code_request = AuthCodeRequest::new(
            app.client_id.clone(),
            request.redirect_uri.clone(),
            request.code_challenge.clone(),
            "S256",
        )?;
        let code = crate::tokens::auth_code::issue(
            self.inner,
            &browser.user,
            Some(app.org_id),
            session.amr.clone(),
            session.aal,
            &code_request,
            Some(CodeGrant {
                grant,
                nonce: request.nonce.clone(),
            }),
        )
        .await?;
        Ok(Authorization::Redirect(
            self.redirect(&request, &[("code", code.secret())]),
        ))
    }

    fn interaction_of(&self, id: String, app: &App, request: &Request) -> Interaction {
        Interaction {
            id,
            client_name: app.name.clone(),
            client_id: app.client_id.clone(),
            org_id: app.org_id,
            login_hint: request.login_hint.clone(),
            fresh_sign_in: request.prompt_login || request.max_age.is_some(),
        }
    }

    async fn store_interaction(&self, request: &Request) -> Result<String, Error> {
        let inner = self.inner;
        let id = random_token()?;
        let hash = inner
            .hasher
            .hash(SecretPurpose::ProviderInteraction, id.as_bytes());
        let key = ChallengeKey::hashed(ChallengeKind::ProviderInteraction, &hash);
        let value = serde_json::to_vec(request)
            .map_err(|_| Error::Internal("serializing an authorization request"))?;
        let now = inner.clock.now();
        if !inner
            .challenges
            .insert(&key, &value, now + INTERACTION_TTL, now)
            .await?
        {
            return Err(Error::Conflict {
                what: "interaction",
            });
        }
        Ok(id.as_str().to_owned())
    }

    fn interaction_key(&self, id: &str) -> ChallengeKey {
        let hash = self
            .inner
            .hasher
            .hash(SecretPurpose::ProviderInteraction, id.as_bytes());
        ChallengeKey::hashed(ChallengeKind::ProviderInteraction, &hash)
    }

    /// The request an interaction holds, and its client (still registered).
    async fn interaction_request(&self, id: &str) -> Result<Option<(App, Request)>, Error> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        let key = self.interaction_key(id);
        let Some(record) = self
            .inner
            .challenges
            .get(&key, self.inner.clock.now())
            .await?
        else {
            return Ok(None);
        };
        let Ok(request) = serde_json::from_slice::<Request>(&record.value) else {
            return Ok(None);
        };
        let Some(app) = self.inner.orgs.get_app(&request.client_id).await? else {
            return Ok(None);
        };
        if !app.allows_redirect(&request.redirect_uri) {
            return Ok(None);
        }
        Ok(Some((app, request)))
    }

    /// Ends an interaction; `false` if it was already gone.
    async fn take_interaction(&self, id: &str) -> Result<bool, Error> {
        let key = self.interaction_key(id);
        Ok(self
            .inner
            .challenges
            .take(&key, self.inner.clock.now())
            .await?
            .is_some())
    }

    /// The client's redirect URI with `params`, `state` and `iss` (RFC 9207) added to its
    /// query.
    fn redirect(&self, request: &Request, params: &[(&str, &str)]) -> String {
        let Ok(mut url) = url::Url::parse(&request.redirect_uri) else {
            return request.redirect_uri.clone();
        };
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in params {
                query.append_pair(name, value);
            }
            if let Some(state) = &request.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", self.issuer());
        }
        url.into()
    }

    fn error_redirect(&self, request: &Request, error: &str, description: &str) -> Authorization {
        Authorization::Redirect(self.redirect(
            request,
            &[("error", error), ("error_description", description)],
        ))
    }
}

fn page(error: &'static str, description: &str) -> Authorization {
    Authorization::Refused {
        error,
        description: description.to_owned(),
    }
}

fn expired() -> Authorization {
    page(
        "invalid_request",
        "this sign-in has expired or was finished in another tab: start again from the app",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_code_and_the_csrf_token() {
        let redirect = Authorization::Redirect("https://rp.example/cb?code=SECRET".into());
        assert!(!format!("{redirect:?}").contains("SECRET"));
        let confirm = crate::provider::Logout::Confirm {
            csrf: "SECRET".into(),
        };
        assert!(!format!("{confirm:?}").contains("SECRET"));
    }
}
