//! Organizations (tenants), their applications, roles, permissions and memberships.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{ApiCredentialId, ClientId, OrgId, PermissionId, RoleId, UserId};
use crate::crypto::SecretHash;
use crate::{Error, Timestamp};

/// An organization: a tenant with its own settings, apps, roles and members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    /// The organization's id.
    pub id: OrgId,
    /// Display name.
    pub name: String,
    /// URL-safe name, unique across organizations.
    pub slug: String,
    /// Custom domains (lowercase), each unique across organizations.
    pub domains: Vec<String>,
    /// The organization's settings (sign-in methods, MFA policy, branding…), as JSON.
    pub settings: serde_json::Value,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Bumped by the store on every update (compare-and-swap, as for users).
    pub revision: u64,
}

/// An application of an organization: what a `client_id` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    /// Public identifier, unique across all organizations.
    pub client_id: ClientId,
    /// The organization it belongs to.
    pub org_id: OrgId,
    /// Display name.
    pub name: String,
    /// Keyed hash of the client secret, for confidential clients.
    pub secret_hash: Option<SecretHash>,
    /// Exact redirect URIs this app may use.
    pub redirect_uris: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// How it signs in through the OpenID provider endpoints (`/oauth2/*`).
    #[serde(default)]
    pub client: ClientSettings,
}

impl App {
    /// Whether it is a confidential client (it holds a secret).
    pub fn is_confidential(&self) -> bool {
        self.secret_hash.is_some()
    }

    /// Whether `uri` is one of its redirect URIs: character for character, except that a
    /// native app's loopback URI (`http://127.0.0.1/cb`, `http://[::1]/cb`) matches on any
    /// port (RFC 8252 §7.3).
    pub fn allows_redirect(&self, uri: &str) -> bool {
        if self.redirect_uris.iter().any(|r| r == uri) {
            return true;
        }
        if self.client.application_type != ApplicationType::Native {
            return false;
        }
        let Some(presented) = loopback_without_port(uri) else {
            return false;
        };
        self.redirect_uris
            .iter()
            .filter_map(|r| loopback_without_port(r))
            .any(|registered| registered == presented)
    }

    /// How it authenticates at the token endpoint: the registered method, or by default
    /// `client_secret_basic` for a confidential client and `none` for a public one.
    pub fn auth_method(&self) -> TokenAuthMethod {
        match (
            self.client.token_endpoint_auth_method,
            self.is_confidential(),
        ) {
            (Some(method), _) => method,
            (None, true) => TokenAuthMethod::ClientSecretBasic,
            (None, false) => TokenAuthMethod::None,
        }
    }
}

/// An app's OpenID Connect client metadata (OpenID Connect Dynamic Client Registration
/// §2 names), as its organization's administrators register it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// `web` (redirect URIs on `https`) or `native` (a desktop or mobile app: loopback
    /// `http` redirect URIs on any port, or a private-use scheme).
    pub application_type: ApplicationType,
    /// How it authenticates at the token endpoint; `None`: `client_secret_basic` when it
    /// has a secret, `none` otherwise.
    pub token_endpoint_auth_method: Option<TokenAuthMethod>,
    /// Where RP-initiated logout may send the browser afterwards, matched exactly.
    pub post_logout_redirect_uris: Vec<String>,
    /// The scopes it may ask for (of `openid profile email phone offline_access roles`).
    pub scopes: Vec<String>,
    /// The grant types it may use (`authorization_code`, `refresh_token`).
    pub grant_types: Vec<String>,
    /// A first-party app of the installation: no consent screen. Only an installation
    /// administrator may set it.
    pub first_party: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            application_type: ApplicationType::Web,
            token_endpoint_auth_method: None,
            post_logout_redirect_uris: Vec::new(),
            scopes: ["openid", "profile", "email", "phone", "offline_access"]
                .map(String::from)
                .to_vec(),
            grant_types: ["authorization_code", "refresh_token"]
                .map(String::from)
                .to_vec(),
            first_party: false,
        }
    }
}

/// A loopback `http` URI (IP literal host) with its port taken out, written canonically;
/// `None` for any other URI.
fn loopback_without_port(uri: &str) -> Option<String> {
    let mut url = url::Url::parse(uri).ok()?;
    if url.as_str() != uri || url.scheme() != "http" {
        return None;
    }
    let loopback = match url.host()? {
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
        url::Host::Domain(_) => false,
    };
    if !loopback {
        return None;
    }
    url.set_port(None).ok()?;
    Some(url.into())
}

/// OpenID Connect's `application_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    /// A web application: `https` redirect URIs.
    #[default]
    Web,
    /// A native application (RFC 8252): loopback `http` on any port, or a private-use
    /// URI scheme.
    Native,
}

/// How a client authenticates at the token, revocation and introspection endpoints
/// (RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuthMethod {
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body.
    ClientSecretPost,
    /// A public client: no secret (PKCE binds its codes).
    None,
}

impl TokenAuthMethod {
    /// The registered name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenAuthMethod::ClientSecretPost => "client_secret_post",
            TokenAuthMethod::None => "none",
        }
    }
}

/// The bytes a permission name's parts are made of: `a-z`, `0-9`, `_`, `-` and `.`.
const PART_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'.');
        b += 1;
    }
    table
};

/// Whether `part` is a resource or an action: 1 to 64 bytes of [`PART_BYTES`].
fn part_ok(part: &str) -> bool {
    (1..=64).contains(&part.len()) && part.bytes().all(|b| PART_BYTES[usize::from(b)])
}

/// A permission name, `resource:action` (`invoices:write`).
///
/// Both parts are 1 to 64 characters of `a-z`, `0-9`, `_`, `-` and `.`; `*` is allowed as
/// the whole action (`invoices:*`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Permission(String);

impl Permission {
    /// Checks and wraps a permission name.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        if !Self::is_valid(&name) {
            return Err(Error::invalid(
                "permission",
                "must look like resource:action (lowercase letters, digits, _ - .)",
            ));
        }
        Ok(Permission(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` is a permission name [`new`](Self::new) accepts. Allocates nothing.
    pub fn is_valid(name: &str) -> bool {
        match name.split_once(':') {
            Some((resource, action)) => part_ok(resource) && Self::is_valid_action(action),
            None => false,
        }
    }

    /// Whether `action` may follow `resource:` in a permission name: a name part, or `*`.
    pub(crate) fn is_valid_action(action: &str) -> bool {
        action == "*" || part_ok(action)
    }

    /// Whether holding `self` grants `wanted` (`invoices:*` grants `invoices:write`).
    pub fn grants(&self, wanted: &Permission) -> bool {
        self.grants_name(&wanted.0)
    }

    /// [`grants`](Self::grants) for a name already known to be valid
    /// ([`is_valid`](Self::is_valid)). Allocates nothing.
    pub fn grants_name(&self, wanted: &str) -> bool {
        if self.0 == wanted {
            return true;
        }
        match self.0.strip_suffix(":*") {
            Some(resource) => wanted
                .split_once(':')
                .is_some_and(|(wanted_resource, _)| wanted_resource == resource),
            None => false,
        }
    }
}

impl FromStr for Permission {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Permission::new(s)
    }
}

impl TryFrom<String> for Permission {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        Permission::new(value)
    }
}

impl From<Permission> for String {
    fn from(p: Permission) -> String {
        p.0
    }
}

impl fmt::Debug for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Permission({})", self.0)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A permission defined in an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionDef {
    /// The definition's id.
    pub id: PermissionId,
    /// The organization that defines it.
    pub org_id: OrgId,
    /// The permission, unique within the organization.
    pub name: Permission,
    /// What it allows, for people.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A named set of permissions in an organization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Role {
    /// The role's id.
    pub id: RoleId,
    /// The organization it belongs to.
    pub org_id: OrgId,
    /// Name, unique within the organization.
    pub name: String,
    /// What it is for, for people.
    pub description: Option<String>,
    /// The defined permissions it grants, by id: a permission renamed keeps its id, so a
    /// rename changes no role (and no adapter rewrites roles).
    pub permission_ids: Vec<PermissionId>,
    /// The wildcards it grants (`invoices:*`: every permission of a resource, defined now
    /// or later), by name.
    pub wildcards: Vec<Permission>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

impl Role {
    /// What the role grants, by name: its permissions' current names (from the
    /// organization's `defined` permissions; an id no longer defined grants nothing) and
    /// its wildcards. Sorted, without repeats.
    pub fn grants(&self, defined: &[PermissionDef]) -> Vec<Permission> {
        let mut names: Vec<Permission> = defined
            .iter()
            .filter(|d| self.permission_ids.contains(&d.id))
            .map(|d| d.name.clone())
            .chain(self.wildcards.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

/// A machine credential for an organization's management API. The secret is shown once
/// at creation; the store keeps only its keyed hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiCredential {
    /// The credential's id: its public client id.
    pub id: ApiCredentialId,
    /// The organization it acts for.
    pub org_id: OrgId,
    /// What it is for, for people.
    pub name: String,
    /// Keyed hash of the secret, unique across credentials.
    pub secret_hash: SecretHash,
    /// The permissions it holds (`users:read`, `users:*`).
    pub scopes: Vec<Permission>,
    /// When it was created.
    pub created_at: Timestamp,
    /// It stops working then, if set.
    pub expires_at: Option<Timestamp>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<Timestamp>,
    /// When it was revoked; a revoked credential never works again.
    pub revoked_at: Option<Timestamp>,
}

/// A user's membership in an organization and the roles it gives them there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Membership {
    /// The member.
    pub user_id: UserId,
    /// The organization.
    pub org_id: OrgId,
    /// Roles held in this organization.
    pub role_ids: Vec<RoleId>,
    /// When the user joined.
    pub created_at: Timestamp,
    /// Joined by signing up in the organization, rather than by an accepted invitation or
    /// an administrator's decision. Such a membership was chosen by whoever set the
    /// account up, so it goes when someone else proves the account's address.
    #[serde(default)]
    pub self_joined: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_are_resource_action() {
        for good in ["invoices:write", "billing.v2:read", "org_members:*", "a:b"] {
            assert!(Permission::new(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "invoices",
            ":write",
            "invoices:",
            "Invoices:write",
            "a:b:c",
            "*:read",
            "a b:c",
        ] {
            assert!(Permission::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcard_action_grants_within_its_resource_only() {
        let all = Permission::new("invoices:*").unwrap();
        assert!(all.grants(&Permission::new("invoices:write").unwrap()));
        assert!(!all.grants(&Permission::new("payments:write").unwrap()));
        let write = Permission::new("invoices:write").unwrap();
        assert!(!write.grants(&Permission::new("invoices:read").unwrap()));
        assert!(write.grants(&write));
    }
}
