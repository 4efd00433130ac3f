//! Plain data: what the engine stores and returns.

mod audit;
mod challenge;
mod contact;
mod ids;
mod org;
mod page;
mod session;
mod user;

pub use audit::{AuthEvent, AuthEventKind};
pub use challenge::{ChallengeKey, ChallengeKind, ChallengeRecord, Counter};
pub use contact::{Email, Phone};
pub use ids::{
    ApiCredentialId, ClientId, CredentialId, EventId, FactorId, OrgId, PermissionId, RequestId,
    RoleId, SessionId, UserId,
};
pub use org::{ApiCredential, App, Membership, Organization, Permission, PermissionDef, Role};
pub use page::{Cursor, Page, PageRequest};
pub use session::{Session, StoredSigningKey};
pub use user::{FactorStatus, PasskeyCredential, PasskeyUse, PasswordHash, TotpFactor, User};
