//! Typed identifiers. Each is a UUIDv7 (time-ordered, so stores can page by id and get
//! creation order), and each is its own type: a `UserId` cannot be passed where an
//! `OrgId` is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, unique, time-ordered id (UUIDv7 from the OS RNG).
            pub fn generate() -> Self {
                $name(Uuid::now_v7())
            }

            /// Wraps an existing UUID (as read back from a store).
            pub const fn from_uuid(uuid: Uuid) -> Self {
                $name(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// The 16 bytes of the UUID, big-endian: their byte order is creation order.
            pub const fn as_bytes(&self) -> &[u8; 16] {
                self.0.as_bytes()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Uuid::try_parse(s)
                    .map($name)
                    .map_err(|_| Error::invalid($field, "not a UUID"))
            }
        }
    };
}

uuid_id!(
    /// Identifies a user.
    UserId, "user_id"
);
uuid_id!(
    /// Identifies an organization (a tenant).
    OrgId, "org_id"
);
uuid_id!(
    /// Identifies a session (and its refresh-token family).
    SessionId, "session_id"
);
uuid_id!(
    /// Identifies a role within an organization.
    RoleId, "role_id"
);
uuid_id!(
    /// Identifies a permission defined in an organization.
    PermissionId, "permission_id"
);
uuid_id!(
    /// Identifies an MFA factor (a TOTP secret).
    FactorId, "factor_id"
);
uuid_id!(
    /// Identifies a management API credential (its public client id).
    ApiCredentialId, "api_credential_id"
);
uuid_id!(
    /// Identifies an organization's SSO connection.
    ConnectionId, "connection_id"
);
uuid_id!(
    /// Identifies a recorded authentication event.
    EventId, "event_id"
);
uuid_id!(
    /// Identifies a pending request (a magic-link or code request) across resends.
    RequestId, "request_id"
);

/// The public identifier of an organization's application (OAuth `client_id`).
///
/// Opaque printable ASCII, 1 to 128 characters; not a secret.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientId(String);

impl ClientId {
    /// Checks and wraps a client id.
    pub fn new(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        let printable = value.bytes().all(|b| b.is_ascii_graphic());
        if value.is_empty() || value.len() > 128 || !printable {
            return Err(Error::invalid(
                "client_id",
                "must be 1 to 128 printable ASCII characters",
            ));
        }
        Ok(ClientId(value))
    }

    /// The client id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        ClientId::new(value)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0)
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A WebAuthn credential id: raw bytes chosen by the authenticator (at most 1023 bytes,
/// WebAuthn L3 §5.8.4's limit).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "Vec<u8>", into = "Vec<u8>")]
pub struct CredentialId(Vec<u8>);

impl CredentialId {
    /// Checks and wraps a credential id.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, Error> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > 1023 {
            return Err(Error::invalid("credential_id", "must be 1 to 1023 bytes"));
        }
        Ok(CredentialId(bytes))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl TryFrom<Vec<u8>> for CredentialId {
    type Error = Error;
    fn try_from(value: Vec<u8>) -> Result<Self, Error> {
        CredentialId::new(value)
    }
}

impl From<CredentialId> for Vec<u8> {
    fn from(id: CredentialId) -> Vec<u8> {
        id.0
    }
}

impl fmt::Debug for CredentialId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CredentialId({})", crate::crypto::b64url(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let a = UserId::generate();
        let b = UserId::generate();
        assert!(a < b, "UUIDv7 ids generated later sort later");
        assert_eq!(a.to_string().parse::<UserId>().unwrap(), a);
        assert_eq!(a.as_uuid().get_version_num(), 7);
    }

    #[test]
    fn bad_ids_are_invalid_input() {
        let err = "not-a-uuid".parse::<OrgId>().unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert!(ClientId::new("").is_err());
        assert!(ClientId::new("has space").is_err());
        assert!(ClientId::new("x".repeat(129)).is_err());
        assert!(ClientId::new("app_01HZY").is_ok());
        assert!(CredentialId::new(Vec::new()).is_err());
        assert!(CredentialId::new(vec![0; 1024]).is_err());
        assert!(CredentialId::new(vec![0; 1023]).is_ok());
    }

    #[test]
    fn client_id_deserialization_validates() {
        let parsed: Result<ClientId, _> = serde_json::from_str("\"bad id\"");
        assert!(parsed.is_err());
    }
}
