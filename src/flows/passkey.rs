//! Passkeys: WebAuthn registration and sign-in, discoverable credentials, and the
//! management of a user's passkeys.
//!
//! Every ceremony has two halves. `start_*` returns its token (a [`RegistrationToken`] or
//! a [`LoginToken`]: each finish takes only its own kind) and the options
//! for `navigator.credentials.create()` / `.get()` (the standard WebAuthn JSON, so the
//! page passes them through); `finish_*` takes the token and the browser's answer as it
//! came. The ceremony's state (its challenge) stays in the [`ChallengeStore`] and is
//! *taken* by `finish_*`: it is used once, even when the answer fails to verify, and lives
//! [`Ttl::webauthn_ceremony`] (5 minutes by default). [`status`](Passkeys::status) tells
//! the page that started a ceremony where it stands.
//!
//! # What is checked
//!
//! The WebAuthn checks are webauthn-rs's (its `webauthn-rs-core`, driven directly so that
//! [`PasskeyPolicy`] can choose attestation, attachment, resident key and user
//! verification): client data type and challenge, origin against
//! [`Config::public_origin`] and [`PasskeyPolicy::extra_origins`] exactly (no subdomains or
//! other ports unless configured), the RP id hash, user presence, user verification as the
//! policy requires, backup-flag consistency, the signature, and the signature counter. The
//! engine adds what needs storage: a credential id belongs to one user (the store's unique
//! index decides racing registrations), the assertion's credential must be one the
//! ceremony allowed and its user handle must be its owner's, and the counter is advanced
//! atomically, so of two racing sign-ins reporting one counter only one succeeds.
//!
//! A counter that does not grow (other than 0 from an authenticator that keeps none, as
//! synced passkeys do) is refused and logged as a possibly cloned authenticator
//! (`sign_in_failed`, reason `possible_cloned_authenticator`).
//!
//! # User handles and unknown users
//!
//! The user handle given to authenticators is a keyed hash of the user id: 32
//! random-looking bytes, no personal data, the same for every passkey of a user. A
//! user-name-first sign-in for a name with no account (or an account with no passkey, or a
//! blocked one) answers with plausible credential ids derived from the name (webauthn-rs's
//! generator, keyed by the engine's pepper: the same name always gets the same ids), so
//! the options do not tell who has an account. Transport hints are left out of the allow
//! list for the same reason.
//!
//! # Factors
//!
//! A passkey sign-in with user verification is two factors by itself (`amr` `hwk` or `swk`
//! with `user`, `acr` 2): no MFA step follows. Without user verification (only possible
//! under [`UserVerification::Preferred`]) it is one factor, and a user with TOTP goes on
//! to the MFA step. So is a sign-in that verifies the user with a passkey registered
//! without verification (again only under `Preferred`): the registration proved nothing
//! about who set it up, so it stays one factor until it is registered again
//! ([`PasskeyCredential::registered_with_uv`]).
//!
//! [`ChallengeStore`]: crate::store::ChallengeStore
//! [`Ttl::webauthn_ceremony`]: crate::Ttl::webauthn_ceremony
//! [`Config::public_origin`]: crate::Config::public_origin
//! [`PasskeyPolicy`]: crate::PasskeyPolicy
//! [`PasskeyPolicy::extra_origins`]: crate::PasskeyPolicy::extra_origins
//! [`UserVerification::Preferred`]: crate::UserVerification::Preferred
//! [`PasskeyCredential::registered_with_uv`]: crate::model::PasskeyCredential::registered_with_uv

use serde::{Deserialize, Serialize, Serializer};
use webauthn_rs_core::WebauthnCore;
use webauthn_rs_core::error::WebauthnError;
use webauthn_rs_core::fake::{FakePasskeyDistribution, WebauthnFakeCredentialGenerator};
use webauthn_rs_core::proto::{
    AllowCredentials, AttestationConveyancePreference, AuthenticationState,
    AuthenticatorAttachment, CredProtect, Credential, CredentialProtectionPolicy,
    RegistrationState, RequestRegistrationExtensions, ResidentKeyRequirement,
    UserVerificationPolicy,
};
pub use webauthn_rs_core::proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

use super::{check_client_failures, record_failure, record_failure_because};
use crate::config::{Attachment, Attestation, ResidentKey, UserVerification, ValidConfig};
use crate::crypto::{
    CeremonyToken, LoginToken, RegistrationToken, SecretHash, SecretPurpose, random_token,
};
use crate::directory::orgs::{Method, allow};
use crate::engine::Inner;
use crate::model::{
    AuthEvent, AuthEventKind, ChallengeKey, ChallengeKind, CredentialId, Email, OrgId,
    PasskeyCredential, PasskeyUse, Phone, SessionId, User, UserId, checked_label,
};
use crate::signin::{AuthMethod, Proven, SignIn, complete_first_factor, may_sign_in};
use crate::{Error, RequestContext, StoreError, Timestamp};

/// The longest passkey name, in characters.
const MAX_NAME_CHARS: usize = 64;

/// Who a registration is for.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Registrant {
    /// A new account with this address, signing up with a passkey (no password). The
    /// address starts unverified: a passkey proves the person, not the mailbox.
    NewUser {
        /// The new account's address.
        email: Email,
        /// Its display name.
        name: Option<String>,
    },
    /// The signed-in user adding a passkey, by the session of their verified access
    /// token (`claims.sid`). The session must be live and its sign-in recent
    /// ([`PasskeyPolicy::fresh_sign_in`](crate::PasskeyPolicy::fresh_sign_in)).
    Session(SessionId),
}

/// Where a ceremony stands, for the page that started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CeremonyStatus {
    /// Started, not finished.
    Pending,
    /// Finished: the passkey verified (under [`UserVerification::Preferred`] the sign-in
    /// may still be at its MFA step).
    ///
    /// [`UserVerification::Preferred`]: crate::UserVerification::Preferred
    Completed,
    /// Finished, and the answer was refused.
    Failed,
    /// Unknown, or too old.
    Expired,
}

/// A passkey, as listed: everything but the public key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PasskeyInfo {
    /// The credential id (base64url in JSON).
    #[serde(serialize_with = "b64url_id")]
    pub id: CredentialId,
    /// The name the user gave it.
    pub name: String,
    /// Whether it may be synced between devices (backup eligible).
    pub backup_eligible: bool,
    /// Whether it is synced now (backed up).
    pub backup_state: bool,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last signed in.
    pub last_used_at: Option<Timestamp>,
}

impl From<PasskeyCredential> for PasskeyInfo {
    fn from(p: PasskeyCredential) -> Self {
        PasskeyInfo {
            id: p.id,
            name: p.name,
            backup_eligible: p.backup_eligible,
            backup_state: p.backup_state,
            created_at: p.created_at,
            last_used_at: p.last_used_at,
        }
    }
}

fn b64url_id<S: Serializer>(id: &CredentialId, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::crypto::b64url(id.as_bytes()))
}

/// A registration that succeeded.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PasskeyRegistered {
    /// The new passkey.
    pub passkey: PasskeyInfo,
    /// For a sign-up ([`Registrant::NewUser`]): the code emailed to the address, which
    /// [`SignUps::confirm`](crate::SignUps::confirm) takes to make the account with this
    /// passkey and sign it in. The same answer whether or not the address has an account.
    pub pending: Option<crate::Sent>,
}

/// What a ceremony keeps between its halves.
#[derive(Serialize, Deserialize)]
struct Ceremony {
    org_id: Option<OrgId>,
    /// The organization's login domain the ceremony runs on as the relying party; `None`
    /// for the installation's.
    #[serde(default)]
    rp: Option<String>,
    step: Step,
}

#[derive(Serialize, Deserialize)]
enum Step {
    Register {
        user_id: UserId,
        /// For a sign-up: the account to create.
        new_user: Option<NewUser>,
        /// For a signed-in user: the session that asked.
        session: Option<SessionId>,
        state: RegistrationState,
    },
    SignIn {
        /// Whether a user name narrowed the ceremony: then only `allowed` may answer.
        named: bool,
        /// User-name first: whose credentials were offered, when the name has a usable
        /// account.
        user_id: Option<UserId>,
        /// User-name first: the ids offered (real or plausible).
        allowed: Vec<Vec<u8>>,
        state: AuthenticationState,
    },
}

#[derive(Serialize, Deserialize)]
struct NewUser {
    email: Email,
    name: Option<String>,
}

/// Builds the relying party webauthn-rs checks ceremonies against.
pub(crate) fn relying_party(config: &ValidConfig) -> WebauthnCore {
    let policy = &config.config.passkeys;
    WebauthnCore::new_unsafe_experts_only(
        &config.config.rp_name,
        &config.rp_id,
        config.passkey_origins.clone(),
        config.config.ttl.webauthn_ceremony,
        Some(policy.allow_subdomains),
        Some(policy.allow_any_port),
    )
}

/// The relying party of a ceremony on `site`, an organization's login domain (its only
/// origin is `https://` that host: a login domain is served over TLS), or the
/// installation's.
fn party<'i>(
    inner: &'i Inner,
    site: Option<&str>,
) -> Result<std::borrow::Cow<'i, WebauthnCore>, Error> {
    let Some(host) = site else {
        return Ok(std::borrow::Cow::Borrowed(&inner.webauthn));
    };
    let config = &inner.config;
    let origin = url::Url::parse(&format!("https://{host}"))
        .map_err(|_| Error::Internal("login domain origin"))?;
    Ok(std::borrow::Cow::Owned(
        WebauthnCore::new_unsafe_experts_only(
            &config.config.rp_name,
            host,
            vec![origin],
            config.config.ttl.webauthn_ceremony,
            Some(false),
            Some(false),
        ),
    ))
}

/// The login domain a ceremony starting with `ctx` runs on: the request's site when it is
/// the proven login domain of the request's organization now, else none.
async fn site_of(inner: &Inner, ctx: &RequestContext) -> Result<Option<String>, Error> {
    let Some(site) = &ctx.site else {
        return Ok(None);
    };
    let org = crate::directory::orgs::Orgs::new(inner)
        .for_host(site)
        .await?;
    Ok((org.is_some() && org == ctx.org_id).then(|| site.clone()))
}

/// Passkeys (`auth.passkeys()`; see the [module docs](self)).
#[derive(Clone, Copy)]
pub struct Passkeys<'a> {
    inner: &'a Inner,
}

impl<'a> Passkeys<'a> {
    pub(crate) fn new(inner: &'a Inner) -> Self {
        Passkeys { inner }
    }

    /// Starts registering a passkey for `who`: returns the ceremony's token and the
    /// options for `navigator.credentials.create()`. The user's existing passkeys are
    /// excluded, so an authenticator that already holds one says so instead of making a
    /// second.
    ///
    /// Errors: [`Error::Forbidden`] for a sign-up when
    /// [`Passwordless::sign_up`](crate::Passwordless::sign_up) is off;
    /// [`Error::SessionRevoked`] for a session that ended; [`Error::ReauthRequired`] when
    /// its sign-in is not recent enough.
    pub async fn start_registration(
        &self,
        who: Registrant,
        ctx: &RequestContext,
    ) -> Result<(RegistrationToken, CreationChallengeResponse), Error> {
        let inner = self.inner;
        allow(inner, ctx.org_id, Method::Passkey).await?;
        let (user_id, new_user, session, existing) = match who {
            Registrant::NewUser { email, name } => {
                if !inner.config.config.passwordless.sign_up {
                    return Err(Error::Forbidden);
                }
                let name = name
                    .map(|n| checked_label(&n, "name", MAX_NAME_CHARS))
                    .transpose()?;
                // A taken address is found only when the ceremony finishes: starting one
                // answers the same for every address, so it tells nobody who has an
                // account (finishing needs a real authenticator and a person's gesture).
                let new_user = NewUser { email, name };
                (UserId::generate(), Some(new_user), None, None)
            }
            Registrant::Session(id) => {
                let user = fresh_session_user(inner, id).await?;
                (user.id, None, Some(id), Some(user))
            }
        };
        let (user_name, display_name) = match (&new_user, &existing) {
            (Some(n), _) => (n.email.as_str().to_owned(), n.name.clone()),
            (None, Some(u)) => (contact_name(u), u.name.clone()),
            (None, None) => return Err(Error::InvalidCredentials),
        };
        let display_name = display_name.unwrap_or_else(|| user_name.clone());
        let exclude = match existing {
            Some(_) => inner
                .users
                .list_passkeys(user_id)
                .await?
                .into_iter()
                .map(|p| p.id.into())
                .collect(),
            None => Vec::new(),
        };

        let policy = &inner.config.config.passkeys;
        let rp = site_of(inner, ctx).await?;
        let webauthn = party(inner, rp.as_deref())?;
        let builder = webauthn
            .new_challenge_register_builder(
                user_handle(inner, user_id).as_bytes(),
                &user_name,
                &display_name,
            )
            .map_err(|_| Error::invalid("name", "must not be empty"))?
            .attestation(match policy.attestation {
                Attestation::None => AttestationConveyancePreference::None,
                Attestation::Indirect => AttestationConveyancePreference::Indirect,
                Attestation::Direct => AttestationConveyancePreference::Direct,
            })
            .user_verification_policy(uv_policy(policy.user_verification))
            .require_resident_key(policy.resident_key == ResidentKey::Required)
            .authenticator_attachment(policy.attachment.map(|a| match a {
                Attachment::Platform => AuthenticatorAttachment::Platform,
                Attachment::CrossPlatform => AuthenticatorAttachment::CrossPlatform,
            }))
            .exclude_credentials(Some(exclude))
            .extensions(Some(registration_extensions(policy.user_verification)));
        let (mut options, state) = webauthn
            .generate_challenge_register(builder)
            .map_err(|_| Error::Internal("webauthn registration challenge"))?;
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(match policy.resident_key {
                ResidentKey::Preferred => ResidentKeyRequirement::Preferred,
                ResidentKey::Required => ResidentKeyRequirement::Required,
                ResidentKey::Discouraged => ResidentKeyRequirement::Discouraged,
            });
        }
        let ceremony = Ceremony {
            org_id: ctx.org_id,
            rp,
            step: Step::Register {
                user_id,
                new_user,
                session,
                state,
            },
        };
        let token = begin(inner, &ceremony).await?;
        Ok((RegistrationToken::new(token.secret()), options))
    }

    /// Finishes a registration with the browser's answer, as it came. The ceremony is
    /// used up whatever happens. `name` labels the passkey (default "Passkey"; at most 64
    /// characters, checked before anything is used up).
    ///
    /// Errors: [`Error::Expired`] for an unknown, used or expired ceremony;
    /// [`Error::InvalidCredentials`] when the answer does not verify;
    /// [`Error::Conflict`] (`"credential"`) when the credential is registered already (to
    /// anyone), or (`"email"`) when a sign-up's address has an account (as password
    /// sign-up answers).
    pub async fn finish_registration(
        &self,
        token: &RegistrationToken,
        credential: &RegisterPublicKeyCredential,
        name: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<PasskeyRegistered, Error> {
        let inner = self.inner;
        let name = match name {
            Some(name) => checked_label(name, "name", MAX_NAME_CHARS)?,
            None => "Passkey".to_owned(),
        };
        let (key, ceremony) = take(inner, token.secret()).await?;
        let result = register(inner, ceremony, credential, name, ctx).await;
        settle(inner, &key, result.is_ok()).await;
        result
    }

    /// Starts a passkey sign-in. With an `identifier` (an email address or an E.164
    /// phone number) the options allow that account's passkeys; with none they allow any
    /// discoverable passkey for this site (a "sign in with a passkey" button, or autofill:
    /// the page then calls `navigator.credentials.get` with `mediation: "conditional"`).
    /// The answer is the same shape, and as plausible, for a name with no account.
    pub async fn start_login(
        &self,
        identifier: Option<&str>,
        ctx: &RequestContext,
    ) -> Result<(LoginToken, RequestChallengeResponse), Error> {
        let inner = self.inner;
        allow(inner, ctx.org_id, Method::Passkey).await?;
        let named = identifier.is_some();
        let (user_id, allowed) = match identifier {
            None => (None, Vec::new()),
            Some(identifier) => allow_list(inner, identifier).await?,
        };
        let policy = uv_policy(inner.config.config.passkeys.user_verification);
        let rp = site_of(inner, ctx).await?;
        let webauthn = party(inner, rp.as_deref())?;
        let builder = webauthn
            .new_challenge_authenticate_builder(Vec::new(), Some(policy))
            .map_err(|_| Error::Internal("webauthn authentication challenge"))?
            .allow_backup_eligible_upgrade(false);
        let (mut options, state) = webauthn
            .generate_challenge_authenticate(builder)
            .map_err(|_| Error::Internal("webauthn authentication challenge"))?;
        options.public_key.allow_credentials = allowed
            .iter()
            .map(|id| AllowCredentials {
                type_: "public-key".to_owned(),
                id: id.clone(),
                transports: None,
            })
            .collect();
        let ceremony = Ceremony {
            org_id: ctx.org_id,
            rp,
            step: Step::SignIn {
                named,
                user_id,
                allowed,
                state,
            },
        };
        let token = begin(inner, &ceremony).await?;
        Ok((LoginToken::new(token.secret()), options))
    }

    /// Finishes a passkey sign-in with the browser's answer, as it came. The ceremony is
    /// used up whatever happens. A verified passkey is two factors: the sign-in completes
    /// without an MFA step.
    ///
    /// Errors: [`Error::Expired`] for an unknown, used or expired ceremony;
    /// [`Error::InvalidCredentials`] for anything that does not verify (the reasons are
    /// logged, not told); [`Error::RateLimited`] when this client failed too often.
    pub async fn finish_login(
        &self,
        token: &LoginToken,
        credential: &PublicKeyCredential,
        ctx: &RequestContext,
    ) -> Result<SignIn, Error> {
        let inner = self.inner;
        check_client_failures(inner, ctx).await?;
        let (key, ceremony) = take(inner, token.secret()).await?;
        let result = sign_in(inner, ceremony, credential, ctx).await;
        settle(inner, &key, result.is_ok()).await;
        result
    }

    /// Where the ceremony `token` names stands: a registration's or a sign-in's token, or
    /// either as a [`CeremonyToken`] (what a status poll carries).
    pub async fn status(&self, token: impl Into<CeremonyToken>) -> Result<CeremonyStatus, Error> {
        let token: CeremonyToken = token.into();
        let inner = self.inner;
        let now = inner.clock.now();
        let hash = ceremony_hash(inner, token.secret());
        if inner
            .challenges
            .get(&state_key(&hash), now)
            .await?
            .is_some()
        {
            return Ok(CeremonyStatus::Pending);
        }
        Ok(
            match inner.challenges.get(&outcome_key(&hash), now).await? {
                Some(record) if record.value == b"completed" => CeremonyStatus::Completed,
                Some(_) => CeremonyStatus::Failed,
                None => CeremonyStatus::Expired,
            },
        )
    }

    /// A user's passkeys, oldest first.
    pub async fn list(&self, user: UserId) -> Result<Vec<PasskeyInfo>, Error> {
        let passkeys = self.inner.users.list_passkeys(user).await?;
        Ok(passkeys.into_iter().map(PasskeyInfo::from).collect())
    }

    /// Renames one of `user`'s passkeys (1 to 64 characters, no control characters).
    /// [`Error::NotFound`] (`"passkey"`) when the user has no such passkey.
    pub async fn rename(&self, user: UserId, id: &CredentialId, name: &str) -> Result<(), Error> {
        let name = checked_label(name, "name", MAX_NAME_CHARS)?;
        if !self.inner.users.rename_passkey(user, id, &name).await? {
            return Err(Error::NotFound { what: "passkey" });
        }
        Ok(())
    }

    /// Deletes one of `user`'s passkeys; its next assertion is refused. Refused with
    /// [`Error::Conflict`] (`"last_sign_in_method"`) when it is the user's only way to sign
    /// in: no other passkey, no password, and no address or phone the engine can send a
    /// code to. [`Error::NotFound`] (`"passkey"`) when the user has no such passkey.
    ///
    /// No recent-sign-in check: for a user's own request use
    /// [`Mfa::remove`](crate::Mfa::remove), which makes it.
    pub async fn delete(
        &self,
        user: UserId,
        id: &CredentialId,
        ctx: &RequestContext,
    ) -> Result<(), Error> {
        let inner = self.inner;
        let account = inner
            .users
            .get_user(user)
            .await?
            .ok_or(Error::NotFound { what: "passkey" })?;
        let passkeys = inner.users.list_passkeys(user).await?;
        if !passkeys.iter().any(|p| &p.id == id) {
            return Err(Error::NotFound { what: "passkey" });
        }
        if passkeys.len() == 1 && !other_way_in(inner, &account) {
            return Err(Error::Conflict {
                what: "last_sign_in_method",
            });
        }
        if !inner.users.delete_passkey(user, id).await? {
            return Err(Error::NotFound { what: "passkey" });
        }
        crate::signin::rotate_stamp(inner, user).await?;
        let event = AuthEvent::new(AuthEventKind::FactorRemoved, ctx, inner.clock.now())
            .with_user(user)
            .with_method("passkey");
        inner.audit_log.append(&event).await?;
        Ok(())
    }
}

/// Whether the user could still sign in without passkeys.
fn other_way_in(inner: &Inner, user: &User) -> bool {
    user.password_hash.is_some()
        || (user.email.is_some() && inner.mailer.is_some())
        || (user.phone.is_some() && inner.sms.is_some())
}

/// The user of a live session whose sign-in is recent enough to bind a new passkey.
async fn fresh_session_user(inner: &Inner, id: SessionId) -> Result<User, Error> {
    let window = inner.config.config.passkeys.fresh_sign_in;
    Ok(crate::sessions::fresh_session(inner, id, window).await?.1)
}

/// What authenticators show as the account's name.
fn contact_name(user: &User) -> String {
    user.email
        .as_ref()
        .map(|e| e.as_str().to_owned())
        .or_else(|| user.phone.as_ref().map(|p| p.as_str().to_owned()))
        .or_else(|| user.name.clone())
        .unwrap_or_else(|| user.id.to_string())
}

fn uv_policy(policy: UserVerification) -> UserVerificationPolicy {
    match policy {
        UserVerification::Required => UserVerificationPolicy::Required,
        _ => UserVerificationPolicy::Preferred,
    }
}

/// The extensions webauthn-rs's own passkey registration asks for: credential protection
/// (the credential is not usable without user verification) where verification is
/// required, and the credential properties (whether it is discoverable).
fn registration_extensions(policy: UserVerification) -> RequestRegistrationExtensions {
    let cred_protect = (policy == UserVerification::Required).then_some(CredProtect {
        credential_protection_policy: CredentialProtectionPolicy::UserVerificationRequired,
        // Many authenticators fail outright when told to enforce it.
        enforce_credential_protection_policy: Some(false),
    });
    RequestRegistrationExtensions {
        cred_protect,
        uvm: Some(true),
        cred_props: Some(true),
        min_pin_length: None,
        hmac_create_secret: None,
    }
}

/// A user's WebAuthn user handle: a keyed hash of their id.
fn user_handle(inner: &Inner, user: UserId) -> SecretHash {
    inner
        .hasher
        .hash(SecretPurpose::UserHandle, user.as_bytes())
}

/// The credential ids a user-name-first sign-in offers: the account's passkeys, or, for
/// a name with no usable account or no passkey, plausible ids derived from the name.
async fn allow_list(
    inner: &Inner,
    identifier: &str,
) -> Result<(Option<UserId>, Vec<Vec<u8>>), Error> {
    let identifier = identifier.trim();
    // The fake ids are keyed by the normalized name, so spellings of one name agree.
    let (user, normalized) = if identifier.contains('@') {
        let email = Email::parse(identifier)?;
        crate::flows::sso::enforce_sso(inner, &email).await?;
        let user = inner.users.get_user_by_email(&email).await?;
        (user, email.as_str().to_owned())
    } else {
        let phone = Phone::parse(identifier)?;
        let user = inner.users.get_user_by_phone(&phone).await?;
        (user, phone.as_str().to_owned())
    };
    if let Some(user) = user.filter(|u| may_sign_in(inner, u).is_ok()) {
        let ids: Vec<Vec<u8>> = inner
            .users
            .list_passkeys(user.id)
            .await?
            .into_iter()
            .map(|p| p.id.into())
            .collect();
        if !ids.is_empty() {
            return Ok((Some(user.id), ids));
        }
        return Ok((Some(user.id), fake_ids(inner, &normalized)?));
    }
    Ok((None, fake_ids(inner, &normalized)?))
}

fn fake_ids(inner: &Inner, name: &str) -> Result<Vec<Vec<u8>>, Error> {
    let key = inner.hasher.hash(SecretPurpose::FakeCredentials, b"");
    let generator = WebauthnFakeCredentialGenerator::<FakePasskeyDistribution>::new(key.as_bytes())
        .map_err(|_| Error::Internal("fake credential generator"))?;
    generator
        .generate(name.as_bytes())
        .map_err(|_| Error::Internal("fake credentials"))
}

fn ceremony_hash(inner: &Inner, token: &str) -> SecretHash {
    inner
        .hasher
        .hash(SecretPurpose::PasskeyCeremony, token.as_bytes())
}

fn state_key(hash: &SecretHash) -> ChallengeKey {
    ChallengeKey::new(ChallengeKind::Webauthn, format!("state:{}", hash.to_hex()))
}

fn outcome_key(hash: &SecretHash) -> ChallengeKey {
    ChallengeKey::new(
        ChallengeKind::Webauthn,
        format!("outcome:{}", hash.to_hex()),
    )
}

fn corrupt(_: serde_json::Error) -> Error {
    Error::Store(StoreError::Corrupt { what: "passkey" })
}

/// Stores a new ceremony under a fresh token.
async fn begin(inner: &Inner, ceremony: &Ceremony) -> Result<CeremonyToken, Error> {
    let value = serde_json::to_vec(ceremony).map_err(corrupt)?;
    let token = CeremonyToken::new(random_token()?.as_str());
    let key = state_key(&ceremony_hash(inner, token.secret()));
    let now = inner.clock.now();
    let expires_at = now + inner.config.config.ttl.webauthn_ceremony;
    if !inner
        .challenges
        .insert(&key, &value, expires_at, now)
        .await?
    {
        return Err(Error::Conflict { what: "ceremony" });
    }
    Ok(token)
}

/// Takes a ceremony's state: exactly once, whoever asks.
async fn take(inner: &Inner, token: &str) -> Result<(SecretHash, Ceremony), Error> {
    let hash = ceremony_hash(inner, token);
    let now = inner.clock.now();
    let record = inner
        .challenges
        .take(&state_key(&hash), now)
        .await?
        .ok_or(Error::Expired)?;
    let ceremony = serde_json::from_slice(&record.value).map_err(corrupt)?;
    Ok((hash, ceremony))
}

/// Records how a ceremony ended, for [`Passkeys::status`]. Best effort: the ceremony's
/// own result (a new account, a session) must not be lost to a failed status write.
async fn settle(inner: &Inner, hash: &SecretHash, completed: bool) {
    let now = inner.clock.now();
    let value: &[u8] = if completed { b"completed" } else { b"failed" };
    let expires_at = now + inner.config.config.ttl.webauthn_ceremony;
    let written = inner
        .challenges
        .insert(&outcome_key(hash), value, expires_at, now)
        .await;
    if let Err(err) = written {
        tracing::warn!(error = %err, "could not record a passkey ceremony's outcome");
    }
}

async fn register(
    inner: &Inner,
    ceremony: Ceremony,
    response: &RegisterPublicKeyCredential,
    name: String,
    ctx: &RequestContext,
) -> Result<PasskeyRegistered, Error> {
    let ceremony_rp = ceremony.rp;
    let Step::Register {
        user_id,
        new_user,
        session,
        state,
    } = ceremony.step
    else {
        return Err(Error::Expired);
    };
    let mut ctx = ctx_in_org(ctx, ceremony.org_id);
    if new_user.is_some() {
        // Counted before the attestation is checked: the client's and everyone's budgets.
        ctx = super::sign_up::spend_budget(inner, &ctx).await?;
    }
    let ctx = &ctx;
    let credential = party(inner, ceremony_rp.as_deref())?
        .register_credential(response, &state, None)
        .map_err(|err| refused("registration", &err))?;
    let id = CredentialId::new(credential.cred_id.clone())?;
    let now = inner.clock.now();
    let stored = PasskeyCredential {
        id,
        user_id,
        name,
        passkey: serde_json::to_vec(&credential).map_err(corrupt)?,
        counter: credential.counter,
        backup_eligible: credential.backup_eligible,
        backup_state: credential.backup_state,
        registered_with_uv: credential.user_verified,
        created_at: now,
        last_used_at: None,
        rp_id: ceremony_rp,
    };
    if let Some(new_user) = new_user {
        // A credential already registered is the authenticator's, not the address's: it
        // tells nothing about who has an account.
        if inner.users.get_passkey(&stored.id).await?.is_some() {
            return Err(Error::Conflict { what: "credential" });
        }
        let account = super::sign_up::PendingAccount {
            user_id,
            name: new_user.name,
            password_hash: None,
            passkey: Some(stored.clone()),
        };
        let pending = super::sign_up::start(inner, new_user.email, &account, ctx).await?;
        return Ok(PasskeyRegistered {
            passkey: stored.into(),
            pending: Some(pending),
        });
    }
    // The session that asked must still be live when the passkey is bound.
    let user = match session {
        Some(session) => fresh_session_user(inner, session).await?,
        None => return Err(Error::Expired),
    };
    if user.id != user_id {
        return Err(Error::SessionRevoked);
    }
    add_passkey(inner, &stored, ctx).await?;
    Ok(PasskeyRegistered {
        passkey: stored.into(),
        pending: None,
    })
}

/// Removes an account whose sign-up failed after it was made, with its membership.
pub(crate) async fn undo_sign_up(inner: &Inner, user_id: UserId) {
    let undone = async {
        inner.orgs.delete_memberships_of_user(user_id).await?;
        inner.users.delete_user(user_id).await
    };
    if let Err(err) = undone.await {
        tracing::warn!(%user_id, error = %err, "could not undo a failed sign-up");
    }
}

pub(crate) async fn add_passkey(
    inner: &Inner,
    passkey: &PasskeyCredential,
    ctx: &RequestContext,
) -> Result<(), Error> {
    match inner.users.add_passkey(passkey).await {
        Err(StoreError::Conflict { .. }) => return Err(Error::Conflict { what: "credential" }),
        Err(StoreError::Missing { .. }) => return Err(Error::SessionRevoked),
        Err(err) => return Err(err.into()),
        Ok(()) => {}
    }
    let event = AuthEvent::new(AuthEventKind::FactorAdded, ctx, inner.clock.now())
        .with_user(passkey.user_id)
        .with_method("passkey");
    inner.audit_log.append(&event).await?;
    Ok(())
}

/// The request context with the organization the ceremony started in.
fn ctx_in_org(ctx: &RequestContext, org: Option<OrgId>) -> RequestContext {
    let mut ctx = ctx.clone();
    ctx.org_id = org;
    ctx
}

/// A WebAuthn refusal: the reason goes to the log, the caller hears only that it failed.
fn refused(ceremony: &str, err: &WebauthnError) -> Error {
    tracing::info!(ceremony, reason = %err, "passkey refused");
    Error::InvalidCredentials
}

/// Why a sign-in assertion was refused.
enum Refusal {
    /// Logged as a failed sign-in, user known or not.
    Invalid(Option<UserId>),
    /// The counter did not grow: a possibly cloned authenticator.
    Cloned(UserId),
}

async fn sign_in(
    inner: &Inner,
    ceremony: Ceremony,
    response: &PublicKeyCredential,
    ctx: &RequestContext,
) -> Result<SignIn, Error> {
    let ctx = &ctx_in_org(ctx, ceremony.org_id);
    match verify_assertion(inner, ceremony.rp.as_deref(), ceremony.step, response).await? {
        Ok((proven, method)) => complete_first_factor(inner, proven, method, None, ctx).await,
        Err(Refusal::Invalid(user)) => {
            record_failure(inner, None, user, ctx, "passkey").await?;
            Err(Error::InvalidCredentials)
        }
        Err(Refusal::Cloned(user)) => {
            tracing::warn!(user_id = %user, "passkey counter did not grow: possibly cloned");
            let reason = "possible_cloned_authenticator";
            record_failure_because(inner, None, Some(user), ctx, "passkey", reason).await?;
            Err(Error::InvalidCredentials)
        }
    }
}

/// Checks an assertion against the ceremony and the stored credential, and advances the
/// credential's counter. The outer error is the store's; the inner one a refusal.
async fn verify_assertion(
    inner: &Inner,
    rp: Option<&str>,
    step: Step,
    response: &PublicKeyCredential,
) -> Result<Result<(Proven, AuthMethod), Refusal>, Error> {
    let Step::SignIn {
        named,
        user_id,
        allowed,
        state,
    } = step
    else {
        return Ok(Err(Refusal::Invalid(None)));
    };
    // Until the signature verifies, a refusal is logged against the account the user name
    // named (as a wrong password is), never against a credential's owner: credential ids
    // are public, and anyone could otherwise fill a victim's login log.
    let refuse = || Ok(Err(Refusal::Invalid(user_id)));
    let raw_id = response.raw_id.as_slice();
    // A named ceremony takes only the ids it offered; for a name with no account those
    // are plausible fakes no store holds, so it always fails, as for a wrong passkey.
    if named && !allowed.iter().any(|id| id.as_slice() == raw_id) {
        return refuse();
    }
    let Ok(id) = CredentialId::new(raw_id) else {
        return refuse();
    };
    let Some(stored) = inner.users.get_passkey(&id).await? else {
        return refuse();
    };
    let owner = stored.user_id;
    if named && user_id != Some(owner) {
        return refuse();
    }
    // A passkey signs in only with the relying party it was made for (the installation's,
    // or one organization's login domain); webauthn-rs's rpIdHash check says the same.
    if stored.rp_id.as_deref() != rp {
        return refuse();
    }
    // The user handle is not signed; it must name the credential's owner when present,
    // and must be present when no user name narrowed the ceremony.
    let handle_ok = match response.response.user_handle.as_deref() {
        Some(handle) => crate::crypto::ct_eq(handle, user_handle(inner, owner).as_bytes()),
        None => named,
    };
    if !handle_ok {
        return refuse();
    }
    // The stored counter and backup state are the record's own fields (the store advances
    // them atomically); the library's blob keeps the key and is never rewritten.
    let mut credential: Credential = serde_json::from_slice(&stored.passkey).map_err(corrupt)?;
    credential.counter = stored.counter;
    credential.backup_state = stored.backup_state;
    let result =
        match party(inner, rp)?.authenticate_single_credential(response, &state, &credential) {
            Ok(result) => result,
            Err(WebauthnError::CredentialPossibleCompromise) => {
                return Ok(Err(Refusal::Cloned(owner)));
            }
            Err(err) => {
                refused("sign-in", &err);
                return refuse();
            }
        };
    // The owner's stamp before the use is recorded: a deletion of this passkey either
    // lands first (the use is refused below) or moves the stamp after this read (the
    // sign-in is then refused where the session opens).
    let Some(account) = inner.users.get_user(owner).await? else {
        return refuse();
    };
    let proven = Proven::by(&account);
    let use_ = PasskeyUse {
        counter: result.counter(),
        backup_state: result.backup_state(),
        passkey: stored.passkey,
        at: inner.clock.now(),
    };
    // Atomic: of racing sign-ins reporting one counter, one advances it.
    if !inner.users.record_passkey_use(&id, &use_).await? {
        // Deleted meanwhile, or outrun by a use with the same or a later counter.
        if inner.users.get_passkey(&id).await?.is_none() {
            return refuse();
        }
        return Ok(Err(Refusal::Cloned(owner)));
    }
    // WA-09: verification asserted now makes two factors only for a credential registered
    // with it (under `Preferred` one may have been registered without). The library's
    // blob, never rewritten, holds the registration's answer too: records stored before
    // the field existed keep their standing.
    let registered_with_uv = stored.registered_with_uv || credential.user_verified;
    let method = AuthMethod::Passkey {
        synced: result.backup_eligible(),
        user_verified: result.user_verified() && registered_with_uv,
    };
    Ok(Ok((proven, method)))
}
