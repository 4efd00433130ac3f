//! The directory, as an administrator manages it: users, organizations with their apps
//! and settings, roles, permissions and memberships, and API credentials.

pub mod api_keys;
pub mod orgs;
pub mod rbac;
pub mod users;

pub use api_keys::{ApiKeyCreated, ApiKeyInfo, ApiKeys, NewApiKey};
pub use orgs::{
    AppCreated, AppUpdate, BotCheckRule, Branding, BreachedAction, FailMode, KNOWN_SCOPES,
    MessagePreview, MessageWording, MfaRequirement, NewApp, NewOrg, OrgSettings, OrgUpdate, Orgs,
    PublicConfig, SecuritySettings, SignInMethods, check_client,
};
pub use rbac::{Invitation, Rbac, RoleSpec};

use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, OrgId, UserId};
use crate::{Error, RequestContext};

/// Ends `user`'s sessions that run in `org` (they left it, or it is gone).
pub(crate) async fn end_sessions_in(inner: &Inner, user: UserId, org: OrgId) -> Result<(), Error> {
    let now = inner.clock.now();
    for session in inner.sessions.list_user_sessions(user, now).await? {
        if session.org_id == Some(org) {
            inner.sessions.revoke_session(session.id, now).await?;
        }
    }
    Ok(())
}

/// Logs an administrator's change to an organization (`action`: `org_created`…). The
/// event names the organization; who acted is the management API's to log. The change is
/// made by then, so a failure to log is reported to `tracing`, not to the caller (who
/// would otherwise lose, say, a secret shown only once).
pub(crate) async fn log_admin(inner: &Inner, org: OrgId, action: &str) {
    let ctx = RequestContext::new().with_org(org);
    let event =
        AuthEvent::new(AuthEventKind::AdminAction, &ctx, inner.clock.now()).with_reason(action);
    if let Err(err) = inner.audit_log.append(&event).await {
        tracing::error!(%org, action, error = %err, "an administrator's change was not logged");
    }
}
pub use users::{NewUser, UserStatus, UserUpdate, Users};
