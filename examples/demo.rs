//! What the engine can do so far, on the in-memory adapter: run with
//! `cargo run --example demo`. Emails are printed to the console.
//!
//! This grows into the full demo as ceremonies land; the axum example will replace it as
//! the thing a newcomer runs first.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use portcullis::crypto::{EncryptionKey, Keyring, Pepper, SecretPurpose, random_token};
use portcullis::model::{AuthEventKind, ChallengeKey, ChallengeKind, PageRequest, User, UserId};
use portcullis::store::UserStore;
use portcullis::{
    AuthMethod, Config, ConsoleMailer, DeliveryError, DeviceProof, Email, EmailMessage, Error,
    LinkOptions, LinkStatus, Mailer, Phone, Portcullis, RateLimit, RequestContext, SignIn,
};

/// Prints every email, like `ConsoleMailer`, and keeps the last one so the demo can
/// "click" it.
#[derive(Debug, Clone, Default)]
struct Outbox(Arc<Mutex<Option<EmailMessage>>>);

#[async_trait]
impl Mailer for Outbox {
    async fn send(&self, message: &EmailMessage) -> Result<(), DeliveryError> {
        ConsoleMailer.send(message).await?;
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(message.clone());
        Ok(())
    }
}

impl Outbox {
    fn last(&self) -> Option<EmailMessage> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
use portcullis_memory::MemoryStore;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    println!("portcullis demo\n");

    // 1. Configuration is checked once, at build().
    let bad = Portcullis::builder(Config::new("http://app.example.com"))
        .store(MemoryStore::new())
        .pepper(Pepper::generate()?)
        .keyring(Keyring::new(1, EncryptionKey::generate()?))
        .build();
    if let Err(err) = bad {
        println!("1. a bad config is refused at build():\n   {err}\n");
    }

    let store = MemoryStore::new();
    let outbox = Outbox::default();
    let auth = Portcullis::builder(Config::new("http://localhost:8080"))
        .store(store.clone())
        .mailer(outbox.clone())
        .pepper(Pepper::generate()?)
        .keyring(Keyring::new(1, EncryptionKey::generate()?))
        .build()?;
    println!(
        "   a good one builds: origin {}, rp_id {}\n",
        auth.public_origin(),
        auth.rp_id()
    );

    // 2. Identifiers are normalized when they are made, and bad ones never get in.
    let email = Email::parse("  Alice.Smith@Example.COM ")?;
    let phone = Phone::parse("+1 (555) 010-9999")?;
    println!("2. normalized: {email}, {phone}");
    if let Err(refused) = Email::parse("alice@localhost") {
        println!("   refused: {refused}\n");
    }

    // 3. A secret a person receives is stored only as a keyed hash, and is single-use.
    let token = random_token()?;
    let hash = auth
        .danger()
        .hasher()
        .hash(SecretPurpose::MagicLink, token.as_bytes());
    let key = ChallengeKey::hashed(ChallengeKind::MagicLink, &hash);
    let now = auth.now();
    let challenges = auth.danger().challenge_store();
    challenges
        .insert(&key, b"sign in alice", now + Duration::from_secs(900), now)
        .await?;
    println!(
        "3. a link token ({} chars) is stored as {:?}",
        token.len(),
        hash
    );
    let first = challenges.take(&key, auth.now()).await?;
    let second = challenges.take(&key, auth.now()).await?;
    println!(
        "   first redemption: {}, second: {}\n",
        if first.is_some() {
            "accepted"
        } else {
            "refused"
        },
        if second.is_some() {
            "accepted"
        } else {
            "refused"
        },
    );

    // 4. Rate limits: 3 sends per minute to one address.
    let limit = RateLimit::sliding(3, Duration::from_secs(60));
    println!("4. at most 3 sends a minute to {email}:");
    for attempt in 1..=4 {
        match auth
            .limits()
            .hit("send_recipient", email.as_str(), &limit)
            .await
        {
            Ok(()) => println!("   send {attempt}: sent"),
            Err(err) => println!("   send {attempt}: {} ({err})", err.code()),
        }
    }
    println!();

    // 5. Secrets that must be read back are sealed; the owner is bound in.
    let user = UserId::generate();
    let sealed = auth
        .danger()
        .keyring()
        .seal(b"JBSWY3DPEHPK3PXP", user.as_bytes())?;
    let opened = auth.danger().keyring().open(&sealed, user.as_bytes())?;
    let stolen = auth
        .danger()
        .keyring()
        .open(&sealed, UserId::generate().as_bytes());
    println!("5. sealed a TOTP secret: {sealed:?}");
    println!(
        "   opened by its owner: {}; by another record: {}\n",
        String::from_utf8_lossy(&opened),
        stolen.map_or_else(|e| e.code().to_owned(), |_| "opened?!".into()),
    );

    // 6. The login log.
    let ctx = RequestContext::new()
        .with_ip([203, 0, 113, 9].into())
        .with_user_agent("demo/1.0");
    let audit = auth.audit();
    audit
        .record(
            audit
                .event(AuthEventKind::SignIn, &ctx)
                .with_user(user)
                .with_method("otp"),
        )
        .await?;
    let log = audit.login_log(user, &PageRequest::first(10)).await?;
    for event in &log.items {
        println!(
            "6. login log: {} via {} from {}",
            event.kind,
            event.method.as_deref().unwrap_or("-"),
            event.ip.map(|ip| ip.to_string()).unwrap_or_default()
        );
    }

    // 7. Sessions and tokens: a first factor ends in a session with an access token (JWT,
    //    EdDSA) and a refresh token that works once.
    let mut alice = User::new(UserId::generate(), auth.now());
    alice.email = Some(email.clone());
    store.create_user(&alice).await?;
    let SignIn::Complete(tokens) = auth
        .complete_first_factor(alice.id, AuthMethod::Email, None, &ctx)
        .await?
    else {
        return Ok(());
    };
    let claims = auth.tokens().verify(&tokens.access_token).await?;
    println!(
        "\n7. signed in: session {}, access token of {} bytes, amr {:?}, {}",
        tokens.session_id,
        tokens.access_token.secret().len(),
        claims.amr,
        claims.acr
    );
    let jwks = auth.tokens().jwks().await?;
    println!(
        "   JWKS: kid {} ({} {})",
        jwks.keys[0].kid, jwks.keys[0].kty, jwks.keys[0].crv
    );
    let rotated = auth.tokens().refresh(&tokens.refresh_token, &ctx).await?;
    println!(
        "   refreshed: a new refresh token, same session {}",
        rotated.session_id
    );
    if let Err(err) = auth.tokens().refresh(&tokens.refresh_token, &ctx).await {
        println!(
            "   the old refresh token again: {} — and the session is revoked:",
            err.code()
        );
    }
    if let Err(err) = auth.tokens().verify_live(&rotated.access_token).await {
        println!("   verify_live of the newest access token: {}", err.code());
    }

    // 8. Passwordless: an email code, then a magic link opened on "another device".
    println!("\n8. an email code for bob@example.com (no account yet: it signs him up):");
    let sent = auth.codes().email().send("bob@example.com", &ctx).await?;
    auth.flush_deliveries().await;
    let Some(code) = outbox.last().and_then(|m| m.message.code) else {
        return Ok(());
    };
    let wrong = portcullis::crypto::OneTimeCode::new("not-it");
    let refused = auth
        .codes()
        .email()
        .verify(sent.request_id, &wrong, &ctx)
        .await;
    println!(
        "   a wrong code: {}",
        refused.map_or_else(|e| e.code().to_owned(), |_| "accepted?!".into())
    );
    if let SignIn::Complete(bob) = auth
        .codes()
        .email()
        .verify(sent.request_id, &code, &ctx)
        .await?
    {
        println!("   the right one: signed in as {}", bob.user_id);
    }

    println!("\n   a magic link for bob, asked for in this tab:");
    let links = auth.magic_links();
    let sent = links
        .send("bob@example.com", &LinkOptions::new(), &ctx)
        .await?;
    auth.flush_deliveries().await;
    let Some(link) = outbox.last().and_then(|m| m.message.link) else {
        return Ok(());
    };
    let token = portcullis::crypto::MagicLinkToken::new(
        link.secret().rsplit("token=").next().unwrap_or(""),
    );
    let phone = RequestContext::new().with_user_agent("a phone");
    let peek = links.peek(&token, &DeviceProof::none()).await?;
    println!(
        "   the phone opens it: valid {} s more, needs the tab's code: {}",
        peek.expires_in.as_secs(),
        peek.needs_device_code
    );
    let status = links
        .status(sent.request_id, &sent.poll_token, &ctx)
        .await?;
    println!(
        "   the tab polls: {}",
        if matches!(status, LinkStatus::Pending) {
            "pending"
        } else {
            "?"
        }
    );
    if let Some(device_code) = sent.device_code.clone() {
        let proof = DeviceProof::none().with_device_code(device_code);
        links.verify(&token, &proof, &phone).await?;
        println!("   the phone confirms with the code shown in the tab: signed in");
    }
    if let LinkStatus::Verified(SignIn::Complete(tab)) = links
        .status(sent.request_id, &sent.poll_token, &ctx)
        .await?
    {
        println!(
            "   the tab polls again: verified, its own session {}",
            tab.session_id
        );
    }
    let again = links.verify(&token, &DeviceProof::none(), &phone).await;
    println!(
        "   the link a second time: {}",
        again.map_or_else(|e| e.code().to_owned(), |_| "accepted?!".into())
    );

    // 9. A password, then TOTP: the next sign-in needs both.
    println!("\n9. carol signs up with a password and adds an authenticator app:");
    let password = portcullis::crypto::Password::new("correct horse battery staple");
    let started = auth
        .passwords()
        .sign_up("carol@example.com", &password, &ctx)
        .await?;
    auth.flush_deliveries().await;
    let Some(code) = outbox.last().and_then(|m| m.message.code) else {
        return Ok(());
    };
    println!("   no account until the code emailed to her comes back");
    let SignIn::Complete(carol) = auth
        .sign_ups()
        .confirm(started.request_id, &code, &ctx)
        .await?
    else {
        return Ok(());
    };
    let enrollment = auth.mfa().totp().enroll(carol.user_id, &ctx).await?;
    println!(
        "   scan {} bytes of PNG QR code, or type the secret into the app",
        enrollment.qr_png.len()
    );
    let app = |secret: &str| -> Result<portcullis::crypto::OneTimeCode, Error> {
        // What the app computes: the secret's current code.
        let bytes = portcullis::mfa::totp::decode_base32(secret)?;
        let now = u64::try_from(auth.now().unix_secs()).unwrap_or(0);
        let code = portcullis::mfa::totp::code_at(&bytes, now, "SHA1", 6)?;
        Ok(portcullis::crypto::OneTimeCode::new(code))
    };
    let backup = auth
        .mfa()
        .totp()
        .confirm(carol.user_id, &app(&enrollment.secret_base32)?, &ctx)
        .await?;
    println!(
        "   confirmed; {} backup codes, e.g. {}",
        backup.len(),
        backup[0].secret()
    );
    let short = auth
        .passwords()
        .sign_in(
            "carol@example.com",
            &portcullis::crypto::Password::new("nope"),
            &ctx,
        )
        .await;
    println!(
        "   a wrong password: {}",
        short.map_or_else(|e| e.code().to_owned(), |_| "accepted?!".into())
    );
    if let SignIn::MfaRequired(step) = auth
        .passwords()
        .sign_in("carol@example.com", &password, &ctx)
        .await?
    {
        let methods: Vec<_> = step.methods.iter().map(|m| m.as_str()).collect();
        println!("   the right password: a second factor is due ({methods:?})");
        let proof = portcullis::MfaProof::BackupCode(backup[0].clone());
        if let SignIn::Complete(done) = auth.mfa().verify(&step.mfa_token, &proof, &ctx).await? {
            let claims = auth.tokens().verify(&done.access_token).await?;
            println!(
                "   with a backup code: signed in, amr {:?}, {}",
                claims.amr, claims.acr
            );
        }
    }

    // 10. A passkey: sign up with one, sign in with it, no second factor needed.
    println!("\n10. dana signs up with a passkey (a software authenticator stands in):");
    passkeys(&auth, &ctx).await?;

    // 11. The directory: an organization, a role, an API credential, the login log.
    println!("\n11. an organization with roles, an API credential, a verified log:");
    directory(&auth, &ctx).await
}

/// Section 11: what an administrator manages.
async fn directory(auth: &Portcullis, ctx: &RequestContext) -> Result<(), Error> {
    let acme = auth
        .orgs()
        .create(portcullis::NewOrg::new("Acme", "acme"))
        .await?;
    let rbac = auth.rbac();
    rbac.define_permission(acme.id, "invoices:write", Some("Create invoices"))
        .await?;
    let clerk = rbac
        .create_role(
            acme.id,
            &portcullis::RoleSpec::new("clerk", &["invoices:*"]),
        )
        .await?;
    let in_acme = ctx.clone().with_org(acme.id);
    let erin = auth
        .users()
        .create(
            portcullis::NewUser::with_email("erin@example.com"),
            &in_acme,
        )
        .await?;
    rbac.add_member(erin.id, acme.id, &[clerk.id], ctx).await?;
    if let SignIn::Complete(set) = auth
        .complete_first_factor(erin.id, AuthMethod::Email, None, &in_acme)
        .await?
    {
        let claims = auth.tokens().verify(&set.access_token).await?;
        println!(
            "   erin in acme: roles {:?}, may write invoices: {}",
            claims.roles,
            claims.has_permission("invoices:write")
        );
    }
    let key = auth
        .api_keys()
        .create(
            acme.id,
            &portcullis::directory::NewApiKey::new("CI", &["users:read"]),
        )
        .await?;
    let caller = auth.api_keys().verify(&key.secret).await?;
    println!(
        "   an API credential (lk_…, shown once) verifies for {:?}; may read users: {}",
        caller.name,
        caller.allows("users:read")
    );
    println!(
        "   erin's login log: {:?}",
        auth.audit().verify_chain(erin.id).await?
    );
    Ok(())
}

/// Section 10: a passkey sign-up and sign-in with webauthn-authenticator-rs's software
/// authenticator playing the browser and the device.
async fn passkeys(auth: &Portcullis, ctx: &RequestContext) -> Result<(), Error> {
    use webauthn_authenticator_rs::WebauthnAuthenticator;
    use webauthn_authenticator_rs::softpasskey::SoftPasskey;

    let origin = auth.public_origin().clone();
    let mut device = SoftPasskey::new(true);
    let who = portcullis::Registrant::NewUser {
        email: "dana@example.com".parse()?,
        name: Some("Dana".into()),
    };
    let (ceremony, options) = auth.passkeys().start_registration(who, ctx).await?;
    println!(
        "   creation options for the browser: {} bytes of WebAuthn JSON",
        serde_json::to_string(&options).map_or(0, |json| json.len())
    );
    let Ok(answer) = device.do_registration(origin.clone(), options) else {
        return Ok(());
    };
    let registered = auth
        .passkeys()
        .finish_registration(&ceremony, &answer, Some("Demo key"), ctx)
        .await?;
    println!(
        "   registered {:?}; the ceremony is {:?}",
        registered.passkey.name,
        auth.passkeys().status(&ceremony).await?
    );
    let (ceremony, options) = auth
        .passkeys()
        .start_login(Some("dana@example.com"), ctx)
        .await?;
    let Ok(assertion) = device.do_authentication(origin, options) else {
        return Ok(());
    };
    if let SignIn::Complete(done) = auth
        .passkeys()
        .finish_login(&ceremony, &assertion, ctx)
        .await?
    {
        let claims = auth.tokens().verify(&done.access_token).await?;
        println!(
            "   signed in with it: amr {:?}, {} (a verified passkey is two factors)",
            claims.amr, claims.acr
        );
    }
    let again = auth
        .passkeys()
        .finish_login(&ceremony, &assertion, ctx)
        .await;
    println!(
        "   the same assertion again: {}",
        again.map_or_else(|e| e.code().to_owned(), |_| "accepted?!".into())
    );
    Ok(())
}
