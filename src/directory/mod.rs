//! The directory, as an administrator manages it: users, organizations with their apps
//! and settings, roles, permissions and memberships, and API credentials.

pub mod api_keys;
pub mod orgs;
pub mod rbac;
pub mod users;

pub use api_keys::{ApiKeyCreated, ApiKeyInfo, ApiKeys, NewApiKey};
pub use orgs::{
    AppCreated, Branding, MfaRequirement, NewApp, NewOrg, OrgSettings, OrgUpdate, Orgs,
    PublicConfig, SignInMethods, TemplateOverride,
};
pub use rbac::{Rbac, RoleSpec};

use crate::engine::Inner;
use crate::model::{AuthEvent, AuthEventKind, OrgId};
use crate::{Error, RequestContext};

/// Logs an administrator's change to an organization (`action`: `org_created`…). The
/// event names the organization; who acted is the management API's to log.
pub(crate) async fn log_admin(inner: &Inner, org: OrgId, action: &str) -> Result<(), Error> {
    let ctx = RequestContext::new().with_org(org);
    let event =
        AuthEvent::new(AuthEventKind::AdminAction, &ctx, inner.clock.now()).with_reason(action);
    Ok(inner.audit_log.append(&event).await?)
}
pub use users::{NewUser, UserStatus, UserUpdate, Users};
