//! The login log is tamper-evident: every event links to its user's previous one by a
//! keyed hash, and `audit().verify_chain()` finds an edited or removed event. The log
//! here is a plain list the test can edit behind the engine's back, as someone with
//! access to the database could.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use portcullis::model::{AuthEvent, EventId, Page, PageRequest, UserId};
use portcullis::store::{AuditLog, StoreResult};
use portcullis::testing::{test_keyring, test_pepper};
use portcullis::{
    AuthMethod, ChainStatus, Config, ManualClock, Portcullis, RequestContext, StoreError,
};
use portcullis_memory::MemoryStore;

/// An audit log kept as a list, with the chain rule every store applies.
#[derive(Debug, Clone, Default)]
struct EditableLog(Arc<Mutex<Vec<AuthEvent>>>);

impl EditableLog {
    fn edit(&self, f: impl FnOnce(&mut Vec<AuthEvent>)) {
        f(&mut self.0.lock().unwrap());
    }

    fn head_of(events: &[AuthEvent], user: UserId) -> Option<AuthEvent> {
        events
            .iter()
            .rev()
            .find(|e| e.user_id == Some(user))
            .cloned()
    }
}

#[async_trait]
impl AuditLog for EditableLog {
    async fn append(&self, event: &AuthEvent) -> StoreResult<()> {
        let mut events = self.0.lock().unwrap();
        if let Some(user) = event.user_id
            && Self::head_of(&events, user).map(|h| h.id) != event.prev
        {
            return Err(StoreError::Conflict { what: "chain" });
        }
        events.push(event.clone());
        Ok(())
    }

    async fn user_head(&self, user: UserId) -> StoreResult<Option<AuthEvent>> {
        Ok(Self::head_of(&self.0.lock().unwrap(), user))
    }

    async fn list_user_events(
        &self,
        user: UserId,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>> {
        let mut mine: Vec<AuthEvent> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.user_id == Some(user))
            .cloned()
            .collect();
        mine.sort_by_key(|e| std::cmp::Reverse(e.id));
        mine.truncate(page.limit as usize);
        Ok(Page {
            items: mine,
            next_cursor: None,
        })
    }

    async fn list_events(
        &self,
        query: &portcullis::store::EventQuery,
        page: &PageRequest,
    ) -> StoreResult<Page<AuthEvent>> {
        let mut matching: Vec<AuthEvent> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|e| query.matches(e))
            .cloned()
            .collect();
        matching.sort_by_key(|e| std::cmp::Reverse(e.id));
        matching.truncate(page.limit as usize);
        Ok(Page {
            items: matching,
            next_cursor: None,
        })
    }

    async fn forget_user(&self, user: UserId) -> StoreResult<u64> {
        let mut changed = 0;
        for e in self.0.lock().unwrap().iter_mut() {
            if e.user_id == Some(user) {
                e.ip = None;
                e.user_agent = None;
                changed += 1;
            }
        }
        Ok(changed)
    }
}

/// An engine writing to `log`, and a user with six events in it.
async fn logged_user(log: &EditableLog) -> (Portcullis, UserId, Vec<EventId>) {
    let store = MemoryStore::new();
    let auth = Portcullis::builder(Config::new("https://app.example.com"))
        .store(store)
        .audit_log(Arc::new(log.clone()))
        .clock(ManualClock::fixed())
        .pepper(test_pepper())
        .keyring(test_keyring())
        .build()
        .unwrap();
    let ctx = RequestContext::new()
        .with_ip("198.51.100.3".parse().unwrap())
        .with_user_agent("Firefox");
    let ana = auth
        .users()
        .create(portcullis::NewUser::with_email("ana@example.com"), &ctx)
        .await
        .unwrap()
        .id;
    for _ in 0..5 {
        auth.complete_first_factor(ana, AuthMethod::Email, None, &ctx)
            .await
            .unwrap();
    }
    let page = auth
        .audit()
        .login_log(ana, &PageRequest::first(100))
        .await
        .unwrap();
    let ids = page.items.iter().rev().map(|e| e.id).collect();
    (auth, ana, ids)
}

fn is_broken_at(status: &ChainStatus, at: EventId) -> bool {
    matches!(status, ChainStatus::Broken { at: found, .. } if *found == at)
}

#[tokio::test]
async fn an_untouched_log_verifies_and_forgetting_personal_data_keeps_it_whole() {
    let log = EditableLog::default();
    let (auth, ana, ids) = logged_user(&log).await;
    assert_eq!(ids.len(), 6);
    let status = auth.audit().verify_chain(ana).await.unwrap();
    assert_eq!(status, ChainStatus::Intact { events: 6 });
    auth.users()
        .delete(ana, &RequestContext::new())
        .await
        .unwrap();
    let status = auth.audit().verify_chain(ana).await.unwrap();
    assert_eq!(status, ChainStatus::Intact { events: 7 });
}

#[tokio::test]
async fn an_edited_event_breaks_the_chain() {
    let log = EditableLog::default();
    let (auth, ana, ids) = logged_user(&log).await;
    log.edit(|events| {
        let e = events.iter_mut().find(|e| e.id == ids[2]).unwrap();
        e.kind = portcullis::model::AuthEventKind::SignInFailed;
    });
    let status = auth.audit().verify_chain(ana).await.unwrap();
    assert!(is_broken_at(&status, ids[2]), "{status:?}");
}

#[tokio::test]
async fn a_changed_address_breaks_the_chain() {
    let log = EditableLog::default();
    let (auth, ana, ids) = logged_user(&log).await;
    log.edit(|events| {
        let e = events.iter_mut().find(|e| e.id == ids[5]).unwrap();
        e.ip = Some("203.0.113.66".parse().unwrap());
    });
    let status = auth.audit().verify_chain(ana).await.unwrap();
    assert!(
        is_broken_at(&status, ids[5]),
        "even the newest event: {status:?}"
    );
}

#[tokio::test]
async fn a_removed_event_breaks_the_chain() {
    let log = EditableLog::default();
    let (auth, ana, ids) = logged_user(&log).await;
    log.edit(|events| events.retain(|e| e.id != ids[3]));
    let status = auth.audit().verify_chain(ana).await.unwrap();
    assert!(is_broken_at(&status, ids[4]), "{status:?}");

    // Removing the first event is caught too.
    let log = EditableLog::default();
    let (auth, ana, ids) = logged_user(&log).await;
    log.edit(|events| events.retain(|e| e.id != ids[0]));
    let status = auth.audit().verify_chain(ana).await.unwrap();
    assert!(is_broken_at(&status, ids[1]), "{status:?}");
}

#[tokio::test]
async fn a_forged_event_cannot_be_linked_without_the_pepper() {
    let log = EditableLog::default();
    let (auth, ana, ids) = logged_user(&log).await;
    // A forger appends an event after the head, with a made-up link.
    log.edit(|events| {
        let mut forged = events.iter().find(|e| e.id == ids[5]).unwrap().clone();
        forged.id = EventId::generate();
        forged.prev = Some(ids[5]);
        forged.prev_hash = Some("00".repeat(32));
        events.push(forged);
    });
    let status = auth.audit().verify_chain(ana).await.unwrap();
    assert!(matches!(status, ChainStatus::Broken { .. }), "{status:?}");
}

#[tokio::test]
async fn an_event_slipped_into_the_middle_breaks_the_chain() {
    let log = EditableLog::default();
    let (auth, ana, ids) = logged_user(&log).await;
    // A copy of an event, linked where a real one is, with its personal data blanked.
    log.edit(|events| {
        let third = events.iter().find(|e| e.id == ids[3]).unwrap().clone();
        let mut slipped = third.clone();
        slipped.id = EventId::generate();
        slipped.kind = portcullis::model::AuthEventKind::PasswordChanged;
        slipped.ip = None;
        slipped.user_agent = None;
        events.push(slipped);
    });
    let status = auth.audit().verify_chain(ana).await.unwrap();
    assert!(matches!(status, ChainStatus::Broken { .. }), "{status:?}");
}

#[tokio::test]
async fn erasing_the_history_behind_the_head_breaks_the_chain() {
    let log = EditableLog::default();
    let (auth, ana, ids) = logged_user(&log).await;
    log.edit(|events| {
        events.retain(|e| !ids[..5].contains(&e.id));
        let head = events.iter_mut().find(|e| e.id == ids[5]).unwrap();
        head.prev = None;
        head.prev_hash = None;
    });
    let status = auth.audit().verify_chain(ana).await.unwrap();
    assert!(is_broken_at(&status, ids[5]), "{status:?}");
}
