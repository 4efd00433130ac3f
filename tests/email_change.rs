//! Checklist ACC-01 (issue 16, item 12): an email change cannot take an account over
//! silently. Each scenario is the attack, run on the memory adapter and on a real sled
//! directory.

// Failures are reported by panicking, like any test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis_test_support as support;
use portcullis_test_support::on_both_adapters;

use std::time::Duration;

use portcullis::crypto::{EmailRevertToken, OneTimeCode};
use portcullis::directory::UserUpdate;
use portcullis::model::AuthEventKind;
use portcullis::testing::race;
use portcullis::{Error, MessageKind, NewUser, RequestContext, SignIn, TokenSet, UserId};
use support::{Harness, code_of, harness, sled_harness};

on_both_adapters!(
    acc01_an_update_cannot_move_the_address_to_another_mailbox,
    acc01_a_change_waits_for_the_new_address_and_the_old_one_can_undo_it,
    acc01_the_revert_token_works_once_and_expires,
    acc01_a_code_confirms_only_its_own_user_and_address,
    acc01_an_address_another_account_holds_answers_like_a_free_one,
    acc01_a_revert_is_refused_while_another_account_holds_the_old_address,
    acc01_a_pending_change_dies_with_a_credential_change_and_has_five_tries,
    acc01_a_revert_voids_the_later_changes_and_what_was_added_since,
);

use support::ctx;

fn attacker() -> RequestContext {
    RequestContext::new().with_ip([203, 0, 113, 66].into())
}

const VICTIM: &str = "victim@example.com";
const ATTACKER: &str = "attacker@evil.example";

/// The victim's account, signed in twice by its owner (their phone and laptop).
async fn victim<S>(h: &Harness<S>) -> (UserId, TokenSet, TokenSet) {
    let user = verified_user(h, VICTIM).await;
    let first = sign_in(h, VICTIM).await;
    let second = sign_in(h, VICTIM).await;
    (user.id, first, second)
}

/// An account an administrator made, its address vouched for.
async fn verified_user<S>(h: &Harness<S>, email: &str) -> portcullis::model::User {
    let mut new = NewUser::with_email(email);
    new.email_verified = true;
    h.auth.users().create(new, &ctx()).await.unwrap()
}

/// Signs in by an emailed code.
async fn sign_in<S>(h: &Harness<S>, email: &str) -> TokenSet {
    h.clock.advance(Duration::from_secs(61));
    let sent = h.auth.codes().email().send(email, &ctx()).await.unwrap();
    let mail = last_of(h, MessageKind::EmailCode).await;
    assert_eq!(mail.to.as_str(), email);
    match h
        .auth
        .codes()
        .email()
        .verify(sent.request_id, &code_of(&mail.message), &ctx())
        .await
        .unwrap()
    {
        SignIn::Complete(tokens) => tokens,
        other => panic!("expected tokens: {other:?}"),
    }
}

async fn live<S>(h: &Harness<S>, tokens: &TokenSet) -> bool {
    h.auth
        .tokens()
        .verify_live(&tokens.access_token)
        .await
        .is_ok()
}

async fn email_of<S>(h: &Harness<S>, user: UserId) -> String {
    let user = h.auth.users().get(user).await.unwrap();
    user.email.unwrap().as_str().to_owned()
}

/// The newest email of this kind (background deliveries may finish in any order).
async fn last_of<S>(h: &Harness<S>, kind: MessageKind) -> portcullis::EmailMessage {
    let mut mails = h.mails().await;
    mails.retain(|m| m.message.kind == kind);
    mails.pop().expect("an email of that kind")
}

/// The revert token in the notice to the old address.
fn revert_token(mail: &portcullis::EmailMessage) -> EmailRevertToken {
    let link = mail.message.link.as_ref().expect("the notice has a link");
    let url = url::Url::parse(link.secret()).unwrap();
    assert_eq!(url.path(), "/email-revert");
    let token = url.query_pairs().find(|(k, _)| k == "token").unwrap().1;
    EmailRevertToken::new(token.into_owned())
}

/// Requests a change of `user`'s address to `to` and returns the request id and the code
/// the new address received.
async fn request<S>(
    h: &Harness<S>,
    user: UserId,
    to: &str,
) -> (portcullis::model::RequestId, OneTimeCode) {
    h.clock.advance(Duration::from_secs(61));
    let sent = h
        .auth
        .users()
        .request_email_change(user, to, &attacker())
        .await
        .unwrap();
    let mail = last_of(h, MessageKind::EmailChange).await;
    assert_eq!(mail.to.as_str(), to);
    (sent.request_id, code_of(&mail.message))
}

/// ACC-01, attack (i): someone holding `users:write` (or a stolen session behind an
/// endpoint that calls `update`) moves the address to their own mailbox. Before: the
/// address changed at once, and a code sign-in to it claimed the account. Now the update
/// is refused and nothing changes until the new address confirms.
async fn acc01_an_update_cannot_move_the_address_to_another_mailbox<S>(h: Harness<S>) {
    let (victim, phone, _) = victim(&h).await;
    let mut update = UserUpdate::default();
    update.email = Some(Some(ATTACKER.into()));
    update.email_verified = Some(true);
    let refused = h.auth.users().update(victim, &update, &attacker()).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { field: "email", .. })),
        "an update must not set a new address: {refused:?}"
    );
    assert_eq!(email_of(&h, victim).await, VICTIM, "unchanged");
    assert!(h.auth.users().get(victim).await.unwrap().email_verified);
    assert!(live(&h, &phone).await);
    // Repeating the current address (in any case) is no change and passes.
    let mut same = UserUpdate::default();
    same.email = Some(Some("Victim@Example.com".into()));
    h.auth.users().update(victim, &same, &ctx()).await.unwrap();

    // The way that works: a request, confirmed from the new mailbox.
    let (request_id, code) = request(&h, victim, ATTACKER).await;
    assert_eq!(email_of(&h, victim).await, VICTIM, "still pending");
    let changed = h
        .auth
        .users()
        .confirm_email_change(victim, request_id, &code, None, &attacker())
        .await
        .unwrap();
    assert_eq!(changed.email.as_ref().unwrap().as_str(), ATTACKER);
    let notice = last_of(&h, MessageKind::EmailChanged).await;
    assert_eq!(notice.to.as_str(), VICTIM, "the old address is told");
    assert!(
        !notice.text.contains(ATTACKER),
        "the notice does not disclose the new address"
    );
}

/// ACC-01, attack (ii): an attacker with a session confirms a change to their mailbox
/// (they own it, so they can) and keeps their session. The owner's old mailbox has the
/// notice; its link puts the address back and ends every session, the attacker's too.
async fn acc01_a_change_waits_for_the_new_address_and_the_old_one_can_undo_it<S>(h: Harness<S>) {
    let (victim, phone, laptop) = victim(&h).await;
    let stolen = sign_in(&h, VICTIM).await;
    let (request_id, code) = request(&h, victim, ATTACKER).await;
    let user = h.auth.users().get(victim).await.unwrap();
    assert_eq!(
        user.email.unwrap().as_str(),
        VICTIM,
        "nothing changes on request"
    );
    assert!(user.email_verified);

    let before = h.auth.users().get(victim).await.unwrap().security_stamp;
    let changed = h
        .auth
        .users()
        .confirm_email_change(
            victim,
            request_id,
            &code,
            Some(stolen.session_id),
            &attacker(),
        )
        .await
        .unwrap();
    assert_eq!(changed.email.as_ref().unwrap().as_str(), ATTACKER);
    assert!(changed.email_verified, "the code proved the new address");
    assert_ne!(changed.security_stamp, before, "the stamp moved");
    assert!(live(&h, &stolen).await, "the confirming session stays");
    assert!(!live(&h, &phone).await && !live(&h, &laptop).await);
    let notice = last_of(&h, MessageKind::EmailChanged).await;
    assert_eq!(notice.to.as_str(), VICTIM);
    let token = revert_token(&notice);
    assert!(!format!("{token:?}").contains(token.secret()), "redacted");

    // Six days later the owner reads the notice and undoes it.
    h.clock.advance(Duration::from_secs(6 * 24 * 3600));
    let reverted = h
        .auth
        .users()
        .revert_email_change(&token, &ctx())
        .await
        .unwrap();
    assert_eq!(reverted, victim);
    let user = h.auth.users().get(victim).await.unwrap();
    assert_eq!(user.email.as_ref().unwrap().as_str(), VICTIM);
    assert!(user.email_verified);
    assert_ne!(user.security_stamp, changed.security_stamp);
    assert!(!live(&h, &stolen).await, "the attacker's session ended");
    let refreshed = h
        .auth
        .tokens()
        .refresh(&stolen.refresh_token, &attacker())
        .await;
    assert!(refreshed.is_err(), "and cannot be refreshed: {refreshed:?}");
    let told = last_of(&h, MessageKind::ContactChanged).await;
    assert_eq!(told.to.as_str(), ATTACKER, "the address taken off is told");
    // The owner signs in with the old address again; the attacker's address finds nothing.
    assert_eq!(sign_in(&h, VICTIM).await.user_id, victim);
    assert!(h.auth.users().get_by_email(ATTACKER).await.is_err());

    let reasons: Vec<String> = h
        .auth
        .audit()
        .login_log(victim, &portcullis::model::PageRequest::first(50))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.kind == AuthEventKind::UserUpdated)
        .filter_map(|e| e.reason)
        .collect();
    for reason in [
        "email_change_requested",
        "email_change_confirmed",
        "email_change_reverted",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "{reason} in {reasons:?}"
        );
    }
}

/// ACC-01, attack (ii): the revert token is single use, also under concurrency, and
/// expires with `ttl.email_change_revert` (7 days).
async fn acc01_the_revert_token_works_once_and_expires<S>(h: Harness<S>) {
    let (victim, _, _) = victim(&h).await;
    let (request_id, code) = request(&h, victim, "new@example.com").await;
    h.auth
        .users()
        .confirm_email_change(victim, request_id, &code, None, &ctx())
        .await
        .unwrap();
    let token = revert_token(&last_of(&h, MessageKind::EmailChanged).await);
    let auth = h.auth.clone();
    let results = race(8, move |_| {
        let auth = auth.clone();
        let token = token.clone();
        async move { auth.users().revert_email_change(&token, &ctx()).await }
    })
    .await;
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    assert!(
        results
            .iter()
            .all(|r| r.is_ok() || matches!(r, Err(Error::InvalidCredentials)))
    );
    assert_eq!(email_of(&h, victim).await, VICTIM);

    // A second change; its token outlives the period by a second.
    let (request_id, code) = request(&h, victim, "new@example.com").await;
    h.auth
        .users()
        .confirm_email_change(victim, request_id, &code, None, &ctx())
        .await
        .unwrap();
    let token = revert_token(&last_of(&h, MessageKind::EmailChanged).await);
    h.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    let late = h.auth.users().revert_email_change(&token, &ctx()).await;
    assert!(matches!(late, Err(Error::InvalidCredentials)), "{late:?}");
    assert_eq!(email_of(&h, victim).await, "new@example.com");
}

/// ACC-01, attack (iii): the code is bound to the user who asked and to the address it
/// was sent to. It confirms neither another user's request, nor another request of the
/// same user (for the attacker's address), nor another purpose; and it works once.
async fn acc01_a_code_confirms_only_its_own_user_and_address<S>(h: Harness<S>) {
    let (victim, _, _) = victim(&h).await;
    let other = verified_user(&h, "other@example.com").await.id;

    // The owner asks for a new address they hold; the attacker (with a session) asks for
    // theirs and tries the owner's code on their own request.
    let (owners, owners_code) = request(&h, victim, "victim@new.example").await;
    let (attackers, attackers_code) = request(&h, victim, ATTACKER).await;
    let users = h.auth.users();
    let swapped = users
        .confirm_email_change(victim, attackers, &owners_code, None, &attacker())
        .await;
    assert!(
        matches!(swapped, Err(Error::InvalidCredentials)),
        "{swapped:?}"
    );
    // Another account cannot use the request either.
    let foreign = users
        .confirm_email_change(other, owners, &owners_code, None, &attacker())
        .await;
    assert!(
        matches!(foreign, Err(Error::InvalidCredentials)),
        "{foreign:?}"
    );
    // Nor does the code sign anyone in.
    let signed = h
        .auth
        .codes()
        .email()
        .verify(owners, &owners_code, &ctx())
        .await;
    assert!(
        matches!(signed, Err(Error::InvalidCredentials)),
        "{signed:?}"
    );
    assert_eq!(email_of(&h, victim).await, VICTIM);
    assert_eq!(email_of(&h, other).await, "other@example.com");

    let changed = users
        .confirm_email_change(victim, owners, &owners_code, None, &ctx())
        .await
        .unwrap();
    assert_eq!(changed.email.unwrap().as_str(), "victim@new.example");
    let again = users
        .confirm_email_change(victim, owners, &owners_code, None, &ctx())
        .await;
    assert!(
        matches!(again, Err(Error::InvalidCredentials)),
        "single use: {again:?}"
    );
    // The confirmed change moved the stamp: the attacker's pending request is dead, even
    // with its right code.
    let dead = users
        .confirm_email_change(victim, attackers, &attackers_code, None, &attacker())
        .await;
    assert!(matches!(dead, Err(Error::InvalidCredentials)), "{dead:?}");
    assert_eq!(email_of(&h, victim).await, "victim@new.example");
}

/// ACC-01 with ENUM-03: asking for an address another account holds answers exactly like
/// a free one; no code goes out, and confirming fails as a wrong code does.
async fn acc01_an_address_another_account_holds_answers_like_a_free_one<S>(h: Harness<S>) {
    let (victim, _, _) = victim(&h).await;
    let holder = verified_user(&h, "taken@example.com").await.id;
    let mails = h.mails().await.len();

    h.clock.advance(Duration::from_secs(61));
    let users = h.auth.users();
    let to_taken = users
        .request_email_change(victim, "taken@example.com", &attacker())
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(61));
    let to_free = users
        .request_email_change(victim, "free@example.com", &attacker())
        .await
        .unwrap();
    assert_eq!(to_taken.expires_in, to_free.expires_in, "the same answer");
    let sent = h.mails().await;
    assert_eq!(sent.len(), mails + 1, "only the free address gets a code");
    assert_eq!(sent[mails].to.as_str(), "free@example.com");

    for guess in ["000000", "123456", "999999"] {
        let wrong = users
            .confirm_email_change(
                victim,
                to_taken.request_id,
                &OneTimeCode::new(guess),
                None,
                &attacker(),
            )
            .await;
        assert!(matches!(wrong, Err(Error::InvalidCredentials)), "{wrong:?}");
    }
    let unknown = users
        .confirm_email_change(
            victim,
            to_free.request_id,
            &OneTimeCode::new("000000"),
            None,
            &attacker(),
        )
        .await;
    assert!(
        matches!(unknown, Err(Error::InvalidCredentials)),
        "{unknown:?}"
    );
    assert_eq!(email_of(&h, victim).await, VICTIM);
    assert_eq!(email_of(&h, holder).await, "taken@example.com");
}

/// ACC-01: the revert is refused while another account holds the old address, and the
/// token stays usable until that changes.
async fn acc01_a_revert_is_refused_while_another_account_holds_the_old_address<S>(h: Harness<S>) {
    let (victim, _, _) = victim(&h).await;
    let (request_id, code) = request(&h, victim, "new@example.com").await;
    h.auth
        .users()
        .confirm_email_change(victim, request_id, &code, None, &ctx())
        .await
        .unwrap();
    let token = revert_token(&last_of(&h, MessageKind::EmailChanged).await);
    let squatter = h
        .auth
        .users()
        .create(NewUser::with_email(VICTIM), &ctx())
        .await
        .unwrap();
    let refused = h.auth.users().revert_email_change(&token, &ctx()).await;
    assert!(
        matches!(refused, Err(Error::Conflict { what: "email" })),
        "{refused:?}"
    );
    assert_eq!(email_of(&h, victim).await, "new@example.com");
    h.auth.users().delete(squatter.id, &ctx()).await.unwrap();
    h.auth
        .users()
        .revert_email_change(&token, &ctx())
        .await
        .unwrap();
    assert_eq!(email_of(&h, victim).await, VICTIM);
}

/// ACC-01, SES-11 (DESIGN invariant 13): a pending change dies when the account's
/// credentials change (here: a block and unblock), and a request allows five wrong codes.
async fn acc01_a_pending_change_dies_with_a_credential_change_and_has_five_tries<S>(h: Harness<S>) {
    let (victim, _, _) = victim(&h).await;
    let users = h.auth.users();
    let (request_id, code) = request(&h, victim, ATTACKER).await;
    users.block(victim, &ctx()).await.unwrap();
    users.unblock(victim, &ctx()).await.unwrap();
    let stale = users
        .confirm_email_change(victim, request_id, &code, None, &attacker())
        .await;
    assert!(matches!(stale, Err(Error::InvalidCredentials)), "{stale:?}");
    assert_eq!(email_of(&h, victim).await, VICTIM);

    let (request_id, code) = request(&h, victim, ATTACKER).await;
    let wrong = if code.secret() == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..5 {
        let guess = users
            .confirm_email_change(
                victim,
                request_id,
                &OneTimeCode::new(wrong),
                None,
                &attacker(),
            )
            .await;
        assert!(matches!(guess, Err(Error::InvalidCredentials)), "{guess:?}");
    }
    let spent = users
        .confirm_email_change(victim, request_id, &code, None, &attacker())
        .await;
    assert!(
        matches!(
            spent,
            Err(Error::InvalidCredentials | Error::RateLimited { .. })
        ),
        "the request died after five wrong codes: {spent:?}"
    );
    assert_eq!(email_of(&h, victim).await, VICTIM);

    // A code expires with ttl.one_time_code.
    let (request_id, code) = request(&h, victim, ATTACKER).await;
    h.clock.advance(Duration::from_secs(601));
    let late = users
        .confirm_email_change(victim, request_id, &code, None, &ctx())
        .await;
    assert!(matches!(late, Err(Error::InvalidCredentials)), "{late:?}");
}

/// Moves `user`'s address to `to` with the code `to` received, from the attacker's session.
async fn change<S>(h: &Harness<S>, user: UserId, to: &str, keep: &TokenSet) {
    let (request_id, code) = request(h, user, to).await;
    h.auth
        .users()
        .confirm_email_change(user, request_id, &code, Some(keep.session_id), &attacker())
        .await
        .unwrap();
}

/// ACC-01 (issue 16, item 12; found in review): with a stolen session the attacker moves
/// the address twice (victim to B to C, both theirs), so the revert link of the second
/// change goes to a mailbox they read, and sets up a password and an authenticator app
/// meanwhile. The owner's revert must void the later link and take off what was added
/// since the change.
async fn acc01_a_revert_voids_the_later_changes_and_what_was_added_since<S>(h: Harness<S>) {
    let (victim, _, _) = victim(&h).await;
    let stolen = sign_in(&h, VICTIM).await;
    change(&h, victim, ATTACKER, &stolen).await;
    let first = revert_token(&last_of(&h, MessageKind::EmailChanged).await);
    // A password of the attacker's choosing, and an authenticator app.
    h.clock.advance(Duration::from_secs(61));
    let reset = h
        .auth
        .passwords()
        .send_reset(ATTACKER, &attacker())
        .await
        .unwrap();
    let code = code_of(&last_of(&h, MessageKind::PasswordReset).await.message);
    let password = portcullis::crypto::Password::new("a fresh and quite unusual passphrase");
    let SignIn::Complete(after_reset) = h
        .auth
        .passwords()
        .reset(reset.request_id, &code, &password, &attacker())
        .await
        .unwrap()
    else {
        panic!("no MFA yet")
    };
    support::enable_totp(&h, victim).await;
    change(&h, victim, "second@evil.example", &after_reset).await;
    let second = revert_token(&last_of(&h, MessageKind::EmailChanged).await);

    // The owner undoes the first change.
    h.auth
        .users()
        .revert_email_change(&first, &ctx())
        .await
        .unwrap();
    let user = h.auth.users().get(victim).await.unwrap();
    assert_eq!(user.email.as_ref().unwrap().as_str(), VICTIM);
    assert!(
        user.password_hash.is_none(),
        "the attacker's password is gone"
    );
    let status = h.auth.users().status(victim).await.unwrap();
    assert!(!status.totp, "the attacker's authenticator app is gone");
    let signed_in = h
        .auth
        .passwords()
        .sign_in(VICTIM, &password, &attacker())
        .await;
    assert!(
        matches!(signed_in, Err(Error::InvalidCredentials)),
        "{signed_in:?}"
    );
    // The revert link of the later change, in the attacker's mailbox, is void.
    let back = h
        .auth
        .users()
        .revert_email_change(&second, &attacker())
        .await;
    assert!(
        back.is_err(),
        "the later change's link took the account back: {back:?}"
    );
    assert_eq!(email_of(&h, victim).await, VICTIM);
}
