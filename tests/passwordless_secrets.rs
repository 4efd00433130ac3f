//! Canary tests (ML-04, ML-07, OOB-07, invariant 1 and 12): every link token, poll token,
//! device code, one-time code and passkey ceremony token handed out during full
//! ceremonies is absent from everything the store holds and from every log line at TRACE
//! level.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;

use std::time::Duration;

use portcullis::testing::LogCapture;
use portcullis::{Config, DeviceProof, LinkOptions, LinkStatus, RequestContext};
use support::{code_of, harness_with, link_token};

// A current-thread runtime: background deliveries run on this thread, under the capture.
#[tokio::test(flavor = "current_thread")]
async fn no_secret_reaches_the_store_or_the_logs() {
    let capture = LogCapture::new();
    let _guard = tracing::subscriber::set_default(capture.clone());

    let mut config = Config::new("https://app.example.com");
    // Eight digits, so a code cannot turn up by chance among the timestamps and hashes.
    config.codes.digits = 8;
    let h = harness_with(config);
    let ctx = RequestContext::new().with_ip("203.0.113.9".parse().unwrap());
    let mut secrets: Vec<String> = Vec::new();
    // Everything the calls returned and the sinks saw, as `Debug` prints it.
    let mut printed = String::new();
    // What the store holds at every step, records that are gone by the end included.
    let mut dumps = String::new();
    let snapshot = |dumps: &mut String| {
        dumps.push_str(&String::from_utf8_lossy(&h.store.dump()));
    };

    // A magic link: sent, resent, peeked, verified from another browser, collected.
    let links = h.auth.magic_links();
    let sent = links
        .send("ana@example.com", &LinkOptions::new(), &ctx)
        .await
        .unwrap();
    secrets.push(link_token(&h.last_mail().await).secret().to_owned());
    printed.push_str(&format!("{sent:?} {:?}", h.mails().await));
    h.clock.advance(Duration::from_secs(30));
    snapshot(&mut dumps);
    links.resend(sent.request_id, &ctx).await.unwrap();
    snapshot(&mut dumps);
    let mail = h.last_mail().await;
    let token = link_token(&mail);
    secrets.push(token.secret().to_owned());
    secrets.push(mail.message.link.as_ref().unwrap().secret().to_owned());
    secrets.push(sent.poll_token.secret().to_owned());
    let device_code = sent.device_code.clone().unwrap();
    secrets.push(device_code.secret().to_owned());
    let peek = links.peek(&token, &DeviceProof::none()).await.unwrap();
    let proof = DeviceProof::none().with_device_code(device_code);
    let wrong = DeviceProof::none().with_poll_token(portcullis::crypto::PollToken::new("x"));
    let refused = links.verify(&token, &wrong, &ctx).await.unwrap_err();
    let signed_in = links.verify(&token, &proof, &ctx).await.unwrap();
    printed.push_str(&format!(
        "{peek:?} {proof:?} {refused:?} {refused} {signed_in:?}"
    ));
    snapshot(&mut dumps);
    let status = links
        .status(sent.request_id, &sent.poll_token, &ctx)
        .await
        .unwrap();
    assert!(matches!(status, LinkStatus::Verified(_)));
    printed.push_str(&format!("{status:?}"));

    // Email and SMS codes: a wrong try, a resend, the right code.
    for sms in [false, true] {
        h.clock.advance(Duration::from_secs(30));
        let channel = match sms {
            true => h.auth.codes().sms(),
            false => h.auth.codes().email(),
        };
        let to = if sms {
            "+15550109999"
        } else {
            "bo@example.com"
        };
        let sent = channel.send(to, &ctx).await.unwrap();
        snapshot(&mut dumps);
        h.clock.advance(Duration::from_secs(30));
        channel.resend(sent.request_id, &ctx).await.unwrap();
        snapshot(&mut dumps);
        let messages = match sms {
            true => h.texts().await.into_iter().map(|m| m.message).collect(),
            false => h
                .mails()
                .await
                .into_iter()
                .map(|m| m.message)
                .collect::<Vec<_>>(),
        };
        let codes: Vec<_> = messages.iter().rev().take(2).map(code_of).collect();
        for code in &codes {
            secrets.push(code.secret().to_owned());
        }
        let wrong = channel.verify(sent.request_id, &codes[1], &ctx).await;
        printed.push_str(&format!("{sent:?} {wrong:?} {messages:?}"));
        snapshot(&mut dumps);
        channel
            .verify(sent.request_id, &codes[0], &ctx)
            .await
            .unwrap();
    }
    h.auth.flush_deliveries().await;

    // A passkey: the ceremony tokens of a sign-up and a sign-in.
    let mut key = support::authenticator::TestKey::new("https://app.example.com");
    let who = portcullis::Registrant::NewUser {
        email: "cy@example.com".parse().unwrap(),
        name: None,
    };
    let passkeys = h.auth.passkeys();
    let (ceremony, options) = passkeys.start_registration(who, &ctx).await.unwrap();
    secrets.push(ceremony.secret().to_owned());
    snapshot(&mut dumps);
    let registered = passkeys
        .finish_registration(&ceremony, &key.register(&options), None, &ctx)
        .await
        .unwrap();
    // The sign-up's emailed code, and the account it makes.
    let pending = registered.pending.clone().unwrap();
    let mail = h.last_mail().await;
    secrets.push(code_of(&mail.message).secret().to_owned());
    snapshot(&mut dumps);
    let confirmed = support::confirm_sign_up(&h, &pending, &ctx).await.unwrap();
    printed.push_str(&format!("{pending:?} {confirmed:?}"));
    let (ceremony, options) = passkeys
        .start_login(Some("cy@example.com"), &ctx)
        .await
        .unwrap();
    secrets.push(ceremony.secret().to_owned());
    snapshot(&mut dumps);
    let signed_in = passkeys
        .finish_login(&ceremony, &key.sign(&options), &ctx)
        .await
        .unwrap();
    printed.push_str(&format!("{ceremony:?} {registered:?} {signed_in:?}"));

    snapshot(&mut dumps);
    let dump = dumps;
    let logs = capture.text();
    assert!(dump.contains("ana@example.com"), "the dump covers users");
    assert!(
        dump.contains("request:"),
        "the dump covers challenge records"
    );
    assert!(dump.contains("magic_link:"), "the dump covers link records");
    assert!(
        logs.contains(&sent.request_id.to_string()),
        "the flows log at TRACE level: {logs}"
    );
    assert!(logs.contains("message delivered"), "{logs}");
    assert!(printed.contains("InvalidInput"), "{printed}");
    for secret in &secrets {
        assert!(!dump.contains(secret.as_str()), "a secret is in the store");
        assert!(!logs.contains(secret.as_str()), "a secret is in the logs");
        assert!(
            !printed.contains(secret.as_str()),
            "a secret is in a Debug output"
        );
    }
    assert_eq!(secrets.len(), 12);
}
