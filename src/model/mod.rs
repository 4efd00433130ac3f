//! Plain data: what the engine stores and returns.

mod audit;
mod challenge;
mod contact;
mod ids;
mod org;
mod page;
mod session;
mod sso;
mod user;

pub use audit::{AuthEvent, AuthEventKind};
pub use challenge::{ChallengeKey, ChallengeKind, ChallengeRecord, Counter};
pub use contact::{Email, Phone};
pub use ids::{
    ApiCredentialId, ClientId, ConnectionId, CredentialId, EventId, FactorId, OrgId, PermissionId,
    RequestId, RoleId, SessionId, UserId,
};
pub use org::{
    ApiCredential, App, ApplicationType, ClientSettings, Membership, Organization, Permission,
    PermissionDef, Role, TokenAuthMethod,
};
pub use page::{Cursor, Page, PageRequest};
pub use session::{Session, StoredSigningKey};
pub use sso::{
    ClaimMapping, ConnectionKind, ConnectionStatus, DOMAIN_CHALLENGE_LABEL, DomainClaim,
    FederatedIdentity, NameIdFormat, OidcEndpoints, Preset, SamlSettings, SsoConnection,
};
pub use user::{FactorStatus, PasskeyCredential, PasskeyUse, PasswordHash, TotpFactor, User};

/// A trimmed name or label people give things (a user, an organization, a passkey, a
/// role): 1 to `max_chars` characters, without control characters.
pub(crate) fn checked_label(
    text: &str,
    field: &'static str,
    max_chars: usize,
) -> Result<String, crate::Error> {
    let text = text.trim();
    let chars = text.chars().count();
    if chars == 0 || chars > max_chars || text.chars().any(char::is_control) {
        return Err(crate::Error::invalid(
            field,
            format!("must be 1 to {max_chars} characters, without control characters"),
        ));
    }
    Ok(text.to_owned())
}
