//! The directory: users and, per organization, roles, permissions and memberships, as an
//! administrator manages them.

pub mod orgs;
pub mod rbac;
pub mod users;

pub use orgs::{
    AppCreated, Branding, MfaRequirement, NewApp, NewOrg, OrgSettings, OrgUpdate, Orgs,
    PublicConfig, SignInMethods,
};
pub use rbac::{Rbac, RoleSpec};
pub use users::{NewUser, UserStatus, UserUpdate, Users};
