//! The end of every first factor: [`SignIn`], and the one path that decides whether a
//! second factor is needed and then opens a session.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::crypto::{AccessToken, AuthCode, MfaToken, RefreshToken, SecretPurpose, random_token};
use crate::directory::MfaRequirement;
use crate::engine::Inner;
use crate::model::{
    AuthEventKind, ChallengeKey, ChallengeKind, FactorStatus, OrgId, SessionId, User, UserId,
};
use crate::tokens::AuthCodeRequest;
use crate::{Error, Portcullis, RequestContext};

/// How a person proved who they are, for `amr` (RFC 8176) and the assurance level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthMethod {
    /// A password (`pwd`).
    Password,
    /// A magic link or code sent by email (`email`).
    Email,
    /// A code sent by SMS (`sms`).
    Sms,
    /// A passkey. `synced` (backup eligible) gives `swk`, otherwise `hwk`;
    /// `user_verified` adds `user` and makes it two factors by itself.
    Passkey {
        /// The credential can be synced between devices.
        synced: bool,
        /// The authenticator verified the user (PIN, biometric).
        user_verified: bool,
    },
    /// A TOTP code (`otp`).
    Totp,
    /// A backup code (`otp`).
    BackupCode,
    /// Single sign-on through an identity provider (`fed`). `mfa`: the provider asserted
    /// an `amr` the connection counts as the organization's second factor (adds `mfa`).
    Federated {
        /// The provider's sign-in satisfied the second factor.
        mfa: bool,
    },
}

impl AuthMethod {
    /// The `amr` values this method contributes.
    pub fn amr(self) -> Vec<String> {
        let values: &[&str] = match self {
            AuthMethod::Password => &["pwd"],
            AuthMethod::Email => &["email"],
            AuthMethod::Sms => &["sms"],
            AuthMethod::Passkey {
                synced: true,
                user_verified: true,
            } => &["swk", "user"],
            AuthMethod::Passkey {
                synced: true,
                user_verified: false,
            } => &["swk"],
            AuthMethod::Passkey {
                synced: false,
                user_verified: true,
            } => &["hwk", "user"],
            AuthMethod::Passkey {
                synced: false,
                user_verified: false,
            } => &["hwk"],
            AuthMethod::Totp | AuthMethod::BackupCode => &["otp"],
            AuthMethod::Federated { mfa: false } => &["fed"],
            AuthMethod::Federated { mfa: true } => &["fed", "mfa"],
        };
        values.iter().map(|v| (*v).to_owned()).collect()
    }

    /// Whether this method alone is two factors (something you have, and something you
    /// know or are): a passkey with user verification.
    pub fn is_multi_factor(self) -> bool {
        matches!(
            self,
            AuthMethod::Passkey {
                user_verified: true,
                ..
            } | AuthMethod::Federated { mfa: true }
        )
    }

    /// A short name for login logs.
    pub fn name(self) -> &'static str {
        match self {
            AuthMethod::Password => "pwd",
            AuthMethod::Email => "email",
            AuthMethod::Sms => "sms",
            AuthMethod::Passkey { .. } => "passkey",
            AuthMethod::Totp => "totp",
            AuthMethod::BackupCode => "backup_code",
            AuthMethod::Federated { .. } => "sso",
        }
    }
}

/// The tokens of a new or refreshed session.
#[derive(Debug, Clone)]
pub struct TokenSet {
    /// The access token (JWT).
    pub access_token: AccessToken,
    /// The refresh token: single use, rotates on every refresh.
    pub refresh_token: RefreshToken,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// The access token's lifetime.
    pub expires_in: Duration,
    /// Who signed in.
    pub user_id: UserId,
    /// The session.
    pub session_id: SessionId,
}

/// A second factor the user can complete the sign-in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MfaMethod {
    /// A code from an authenticator app.
    Totp,
    /// One of the user's backup codes.
    BackupCode,
    /// A code texted to the user's verified phone ([`Mfa::challenge`](crate::Mfa::challenge)
    /// sends it).
    Sms,
    /// A code emailed to the user's verified address, when configuration allows it.
    Email,
}

impl MfaMethod {
    /// The method's name, as in the REST API.
    pub fn as_str(self) -> &'static str {
        match self {
            MfaMethod::Totp => "totp",
            MfaMethod::BackupCode => "backup_code",
            MfaMethod::Sms => "sms",
            MfaMethod::Email => "email",
        }
    }
}

/// A first factor succeeded; a second one is required.
#[derive(Debug, Clone)]
pub struct MfaChallenge {
    /// Carries the half-finished sign-in to the MFA step. Single use, short-lived.
    pub mfa_token: MfaToken,
    /// The second factors the user has.
    pub methods: Vec<MfaMethod>,
    /// How long the MFA step may take.
    pub expires_in: Duration,
}

/// How a sign-in ended.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SignIn {
    /// Signed in: a new session and its tokens.
    Complete(TokenSet),
    /// A second factor is required first.
    MfaRequired(MfaChallenge),
    /// Signed in, ending with an authorization code for the client to exchange (the
    /// ceremony was asked for one: a redirect flow).
    Code(AuthCode),
    /// The organization requires a second factor and the user has none: the token only
    /// lets them enrol one ([`Mfa::enroll_totp_for_sign_in`](crate::Mfa::enroll_totp_for_sign_in)),
    /// which then finishes the sign-in.
    MfaEnrollmentRequired(MfaEnrollmentChallenge),
    /// The password was found breached and the organization requires a new one before any
    /// session opens: [`Passwords::change_for_sign_in`](crate::Passwords::change_for_sign_in)
    /// with the token finishes the sign-in.
    PasswordChangeRequired(PasswordChangeChallenge),
}

/// A password sign-in held until the user chooses a new password (theirs was found in a
/// breach or among the most common ones).
#[derive(Debug, Clone)]
pub struct PasswordChangeChallenge {
    /// Lets the user set a new password, which finishes the sign-in. Single use,
    /// short-lived.
    pub change_token: crate::crypto::PasswordChangeToken,
    /// How long the change may take.
    pub expires_in: Duration,
}

/// A first factor succeeded in an organization that requires MFA, for a user with no
/// second factor yet (SSOJet's "MFA access token").
#[derive(Debug, Clone)]
pub struct MfaEnrollmentChallenge {
    /// Allows enrolling a second factor and nothing else. Single use, short-lived.
    pub enrollment_token: MfaToken,
    /// How long enrolment may take.
    pub expires_in: Duration,
}

/// A sign-in waiting for its second factor (the MFA token's record).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PendingMfa {
    pub(crate) user_id: UserId,
    pub(crate) org_id: Option<OrgId>,
    pub(crate) amr: Vec<String>,
    pub(crate) code_request: Option<AuthCodeRequest>,
    #[serde(default)]
    pub(crate) deferred: Deferred,
    /// The second factors offered, fixed when the step began.
    #[serde(default)]
    pub(crate) methods: Vec<MfaMethod>,
    /// The texted or emailed code this step sent, if any: the only one it accepts.
    #[serde(default)]
    pub(crate) challenge: Option<crate::model::RequestId>,
    /// An enrolment-only token: it enrols a first second factor and accepts no proof.
    #[serde(default)]
    pub(crate) enrollment: bool,
    /// Wrong proofs presented with this token so far.
    #[serde(default)]
    pub(crate) attempts: u32,
    /// The user's security stamp when the first factor was proven; the token dies when it
    /// moves (a record without one is refused).
    #[serde(default)]
    pub(crate) stamp: Option<u64>,
}

/// Changes a ceremony makes to the account only once the whole sign-in succeeds, after
/// the MFA step when one is due: a password reset must not change anything for someone
/// who holds the mailbox but not the second factor.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Deferred {
    /// A new password hash to set, sealed with the keyring (the challenge store holds no
    /// offline-attackable hash in clear); every session of the account then ends.
    #[serde(default)]
    password_hash: Option<crate::crypto::Sealed>,
}

impl Deferred {
    /// Setting `hash` as `user`'s password once the sign-in completes.
    pub(crate) fn new_password(
        inner: &Inner,
        user: UserId,
        hash: &crate::model::PasswordHash,
    ) -> Result<Self, Error> {
        let sealed = inner
            .keyring
            .seal(hash.as_str().as_bytes(), &deferred_aad(user))?;
        Ok(Deferred {
            password_hash: Some(sealed),
        })
    }
}

fn deferred_aad(user: UserId) -> Vec<u8> {
    [b"portcullis/deferred-password/".as_slice(), user.as_bytes()].concat()
}

impl Portcullis {
    /// Finishes a first factor that the caller has verified: decides whether a second
    /// factor is needed and, if not, opens a session (or issues an authorization code when
    /// `code_request` is given). Every built-in ceremony ends here.
    ///
    /// SECURITY: call this only after verifying the person's credential yourself (an
    /// application's own first factor). It signs the user in.
    ///
    /// A blocked or locked user gets [`Error::InvalidCredentials`], the same as a wrong
    /// credential, so the answer reveals nothing about the account.
    pub async fn complete_first_factor(
        &self,
        user: UserId,
        method: AuthMethod,
        code_request: Option<&AuthCodeRequest>,
        ctx: &RequestContext,
    ) -> Result<SignIn, Error> {
        let proven = Proven::current(user);
        complete_first_factor(self.inner(), proven, method, code_request, ctx).await
    }
}

/// Whose first factor was proven, and under which security stamp: the stamp of the
/// account as read when the credential was checked. A sign-in whose account changed
/// credentials meanwhile (the stamp moved) is refused, so a password read before a reset
/// or an account claim cannot open a session after it.
#[derive(Debug, Clone)]
pub(crate) struct Proven {
    pub(crate) user: UserId,
    pub(crate) stamp: Option<u64>,
    /// The account as read when the credential was checked, so the sign-in need not read
    /// it again: a credential change since is still caught, by the stamp check
    /// [`open_session`](crate::sessions::open_session) makes after writing the session
    /// (and by the MFA step's and the code exchange's own checks of the stamp).
    pub(crate) read: Option<Box<User>>,
}

impl Proven {
    /// A credential checked against `user` as read.
    pub(crate) fn by(user: &User) -> Self {
        Proven {
            user: user.id,
            stamp: Some(user.security_stamp),
            read: Some(Box::new(user.clone())),
        }
    }

    /// A proof that stands whatever the account's stamp: an address just proven (the proof
    /// itself may move the stamp), or an application's own first factor.
    pub(crate) fn current(user: UserId) -> Self {
        Proven {
            user,
            stamp: None,
            read: None,
        }
    }
}

pub(crate) async fn complete_first_factor(
    inner: &Inner,
    proven: Proven,
    method: AuthMethod,
    code_request: Option<&AuthCodeRequest>,
    ctx: &RequestContext,
) -> Result<SignIn, Error> {
    complete_first_factor_then(
        inner,
        proven,
        method,
        code_request,
        ctx,
        Deferred::default(),
    )
    .await
}

/// [`complete_first_factor`], with changes to make once the sign-in is complete.
pub(crate) async fn complete_first_factor_then(
    inner: &Inner,
    proven: Proven,
    method: AuthMethod,
    code_request: Option<&AuthCodeRequest>,
    ctx: &RequestContext,
    deferred: Deferred,
) -> Result<SignIn, Error> {
    let user = match proven.read {
        Some(user) => *user,
        None => inner
            .users
            .get_user(proven.user)
            .await?
            .ok_or(Error::InvalidCredentials)?,
    };
    if proven
        .stamp
        .is_some_and(|stamp| stamp != user.security_stamp)
    {
        tracing::info!(user_id = %user.id, "a sign-in proven before a credential change was refused");
        return Err(Error::InvalidCredentials);
    }
    may_sign_in(inner, &user)?;
    // Every first factor but SSO itself, whichever way it came (RP-15).
    if !matches!(method, AuthMethod::Federated { .. })
        && let Some(email) = &user.email
    {
        crate::flows::sso::enforce_sso(inner, email).await?;
    }
    let org = sign_in_org(inner, &user, code_request, ctx).await?;
    let amr = method.amr();
    // Read once for the whole sign-in: the MFA rule here, the session's lifetime at the end.
    let settings = crate::directory::Orgs::new(inner).settings(org).await?;
    // The organization may demand a second factor; it never waives one the user has.
    let requirement = settings.mfa;
    let second_factors = mfa_methods(inner, &user, &amr).await?;
    if !method.is_multi_factor()
        && (!second_factors.is_empty() || requirement == MfaRequirement::Required)
    {
        let pending = PendingMfa {
            user_id: user.id,
            org_id: org,
            amr,
            code_request: code_request.cloned(),
            deferred,
            enrollment: second_factors.is_empty(),
            attempts: 0,
            methods: second_factors.clone(),
            challenge: None,
            stamp: Some(user.security_stamp),
        };
        return begin_mfa(inner, &user, pending, second_factors, ctx).await;
    }
    let aal = if method.is_multi_factor() { 2 } else { 1 };
    let end = Ending {
        amr,
        aal,
        org_id: org,
        settings: &settings,
        code_request,
        method: method.name(),
        deferred: &deferred,
    };
    finish(inner, &user, end, ctx).await
}

/// Refuses a blocked or locked account, with the answer a wrong credential gets.
pub(crate) fn may_sign_in(inner: &Inner, user: &User) -> Result<(), Error> {
    let now = inner.clock.now();
    if user.blocked || user.locked_until.is_some_and(|until| now < until) {
        return Err(Error::InvalidCredentials);
    }
    Ok(())
}

/// Whether the user is (still) a member of the organization a sign-in runs in.
pub(crate) async fn still_member(
    inner: &Inner,
    user: &User,
    org: Option<OrgId>,
) -> Result<(), Error> {
    if let Some(org) = org
        && inner.orgs.get_membership(user.id, org).await?.is_none()
    {
        return Err(Error::Forbidden);
    }
    Ok(())
}

/// How a sign-in ends.
pub(crate) struct Ending<'a> {
    pub(crate) amr: Vec<String>,
    pub(crate) aal: u8,
    pub(crate) org_id: Option<OrgId>,
    /// The organization's settings, read once for the sign-in.
    pub(crate) settings: &'a crate::directory::OrgSettings,
    pub(crate) code_request: Option<&'a AuthCodeRequest>,
    pub(crate) method: &'a str,
    pub(crate) deferred: &'a Deferred,
}

/// The organization a sign-in runs in: the one the request names, or the one the client
/// app belongs to. The user must be a member ([`Error::Forbidden`] otherwise), so a token's
/// `org` claim always names an organization its subject belongs to.
async fn sign_in_org(
    inner: &Inner,
    user: &User,
    code_request: Option<&AuthCodeRequest>,
    ctx: &RequestContext,
) -> Result<Option<OrgId>, Error> {
    let mut org = ctx.org_id;
    if let Some(request) = code_request {
        org = Some(
            crate::tokens::auth_code::registered_app(inner, request, org)
                .await?
                .org_id,
        );
    }
    still_member(inner, user, org).await?;
    Ok(org)
}

/// Ends a sign-in whose factors are all done: deferred changes, then a session and
/// tokens, or a code.
pub(crate) async fn finish(
    inner: &Inner,
    user: &User,
    end: Ending<'_>,
    ctx: &RequestContext,
) -> Result<SignIn, Error> {
    let Ending {
        amr,
        aal,
        org_id,
        settings,
        code_request,
        method,
        deferred,
    } = end;
    let changed;
    let user = match &deferred.password_hash {
        Some(sealed) => {
            let opened = inner.keyring.open(sealed, &deferred_aad(user.id))?;
            let phc = std::str::from_utf8(&opened)
                .map_err(|_| Error::Internal("a stored password hash"))?;
            let hash = crate::model::PasswordHash::new(phc);
            // The new password moves the stamp: this sign-in goes on under the new one.
            changed = set_password(inner, user, &hash, ctx).await?;
            &changed
        }
        None => user,
    };
    // Read before this sign-in joins the history it is compared with.
    crate::protect::signals::on_sign_in(inner, user, settings.security.new_sign_in_email, ctx)
        .await?;
    // Logged first: a failure to log leaves nothing issued, so no session or code ever
    // exists without its line in the login log.
    let event = crate::model::AuthEvent::new(AuthEventKind::SignIn, ctx, inner.clock.now())
        .with_user(user.id)
        .with_method(method);
    inner.audit_log.append(&event).await?;
    crate::flows::clear_account_failures(inner, user, ctx).await?;
    Ok(match code_request {
        Some(request) => {
            let code =
                crate::tokens::auth_code::issue(inner, user, org_id, amr, aal, request, None)
                    .await?;
            SignIn::Code(code)
        }
        None => SignIn::Complete(
            crate::sessions::open_session(
                inner,
                user,
                amr,
                aal,
                (org_id, crate::sessions::session_lifetime(inner, settings)),
                (SessionId::generate(), None),
                ctx,
            )
            .await?,
        ),
    })
}

/// The second factors a user has enrolled.
async fn mfa_methods(
    inner: &Inner,
    user: &User,
    first_amr: &[String],
) -> Result<Vec<MfaMethod>, Error> {
    let factors = inner.users.list_totp_factors(user.id).await?;
    if !factors.iter().any(|f| f.status == FactorStatus::Active) {
        return Ok(Vec::new());
    }
    let mut methods = vec![MfaMethod::Totp];
    if inner.users.count_backup_codes(user.id).await? > 0 {
        methods.push(MfaMethod::BackupCode);
    }
    let policy = &inner.config.config.mfa;
    let used = |amr: &str| first_amr.iter().any(|a| a == amr);
    if policy.sms && user.phone.is_some() && user.phone_verified && !used("sms") {
        methods.push(MfaMethod::Sms);
    }
    if policy.email && user.email.is_some() && user.email_verified && !used("email") {
        methods.push(MfaMethod::Email);
    }
    Ok(methods)
}

/// Sets a password (a reset completing) and ends every session of the account. Returns the
/// account as written, if its security stamp is still the one `signing_in` was proven
/// under (otherwise the sign-in is void: [`Error::InvalidCredentials`]).
async fn set_password(
    inner: &Inner,
    signing_in: &User,
    hash: &crate::model::PasswordHash,
    ctx: &RequestContext,
) -> Result<User, Error> {
    let user = signing_in.id;
    for _ in 0..crate::flows::MAX_RETRIES {
        let mut account = inner
            .users
            .get_user(user)
            .await?
            .ok_or(Error::InvalidCredentials)?;
        if account.security_stamp != signing_in.security_stamp {
            return Err(Error::InvalidCredentials);
        }
        // Sessions end first: should the write below fail, nothing is left half done in
        // the unsafe direction (old sessions alive beside a new password).
        inner
            .sessions
            .revoke_user_sessions(user, inner.clock.now())
            .await?;
        account.password_hash = Some(hash.clone());
        account.rotate_security_stamp();
        account.updated_at = inner.clock.now();
        match inner.users.update_user(&account).await {
            Err(crate::StoreError::Stale) => continue,
            Err(err) => return Err(err.into()),
            Ok(revision) => {
                account.revision = revision;
                let now = inner.clock.now();
                // And again: a session opened between the first revocation and the write
                // carried the old stamp, and open_session may have checked it just before
                // the write.
                inner.sessions.revoke_user_sessions(user, now).await?;
                let event = crate::model::AuthEvent::new(AuthEventKind::PasswordChanged, ctx, now)
                    .with_user(user)
                    .with_reason("reset");
                inner.audit_log.append(&event).await?;
                return Ok(account);
            }
        }
    }
    Err(Error::Conflict { what: "user" })
}

async fn begin_mfa(
    inner: &Inner,
    user: &User,
    pending: PendingMfa,
    methods: Vec<MfaMethod>,
    ctx: &RequestContext,
) -> Result<SignIn, Error> {
    let now = inner.clock.now();
    let token = random_token()?;
    let hash = inner.hasher.hash(SecretPurpose::MfaToken, token.as_bytes());
    let value = serde_json::to_vec(&pending)
        .map_err(|_| Error::Internal("serializing a pending sign-in"))?;
    let ttl = inner.config.config.ttl.mfa_token;
    let key = ChallengeKey::hashed(ChallengeKind::MfaToken, &hash);
    if !inner
        .challenges
        .insert(&key, &value, now + ttl, now)
        .await?
    {
        return Err(Error::Conflict { what: "mfa_token" });
    }
    let mut event =
        crate::model::AuthEvent::new(AuthEventKind::MfaChallenged, ctx, now).with_user(user.id);
    if pending.enrollment {
        event = event.with_reason("enrollment_required");
        inner.audit_log.append(&event).await?;
        return Ok(SignIn::MfaEnrollmentRequired(MfaEnrollmentChallenge {
            enrollment_token: MfaToken::new(token.as_str()),
            expires_in: ttl,
        }));
    }
    inner.audit_log.append(&event).await?;
    Ok(SignIn::MfaRequired(MfaChallenge {
        mfa_token: MfaToken::new(token.as_str()),
        methods,
        expires_in: ttl,
    }))
}

/// Moves `user`'s security stamp (compare-and-swap, retried): what was made under the old
/// stamp stops working. For changes that do not write the user record themselves (a factor
/// removed); sessions already open stay (the caller decides).
pub(crate) async fn rotate_stamp(inner: &Inner, user: UserId) -> Result<(), Error> {
    for _ in 0..crate::flows::MAX_RETRIES {
        let Some(mut account) = inner.users.get_user(user).await? else {
            return Ok(());
        };
        account.rotate_security_stamp();
        account.updated_at = inner.clock.now();
        match inner.users.update_user(&account).await {
            Err(crate::StoreError::Stale) => continue,
            Err(err) => return Err(err.into()),
            Ok(_) => return Ok(()),
        }
    }
    Err(Error::Conflict { what: "user" })
}
