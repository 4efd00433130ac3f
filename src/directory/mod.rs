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
pub use users::{NewUser, UserStatus, UserUpdate, Users};
