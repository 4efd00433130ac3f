//! The trees, and write sets applied in one sled transaction.

use portcullis::StoreError;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::{IVec, Transactional, Tree};

macro_rules! trees {
    ($($name:ident),* $(,)?) => {
        /// Every tree of the store.
        pub(crate) struct Trees {
            $(pub(crate) $name: Tree,)*
        }

        impl Trees {
            pub(crate) fn open(db: &sled::Db) -> sled::Result<Self> {
                Ok(Trees {
                    $($name: db.open_tree(stringify!($name))?,)*
                })
            }
        }
    };
}

trees!(
    users,
    users_by_email,
    users_by_phone,
    passkeys,
    user_passkeys,
    totp,
    totp_owner,
    backup_codes,
    identities,
    user_identities,
    orgs,
    orgs_by_slug,
    orgs_by_domain,
    apps,
    org_apps,
    api_credentials,
    api_credential_hashes,
    org_api_credentials,
    sso_connections,
    org_sso_connections,
    domain_claims,
    domain_claimants,
    roles,
    permissions,
    members,
    member_orgs,
    sessions,
    refresh_hashes,
    session_hashes,
    user_sessions,
    signing_keys,
    events,
    user_events,
    user_heads,
    org_events,
    challenges,
    counters,
    meta,
);

/// Writes collected while the store kind's lock is held, then applied atomically.
/// Reads see the set's own pending writes first.
#[derive(Default)]
pub(crate) struct WriteSet {
    trees: Vec<Tree>,
    ops: Vec<(usize, Vec<u8>, Option<Vec<u8>>)>,
}

impl WriteSet {
    fn index(&mut self, tree: &Tree) -> usize {
        match self.trees.iter().position(|t| t.name() == tree.name()) {
            Some(i) => i,
            None => {
                self.trees.push(tree.clone());
                self.trees.len() - 1
            }
        }
    }

    pub(crate) fn get(&self, tree: &Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let pending = self
            .ops
            .iter()
            .rev()
            .find(|(i, k, _)| k.as_slice() == key && self.trees[*i].name() == tree.name());
        if let Some((_, _, value)) = pending {
            return Ok(value.clone());
        }
        Ok(tree.get(key).map_err(crate::backend)?.map(|v| v.to_vec()))
    }

    pub(crate) fn put(&mut self, tree: &Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) {
        let i = self.index(tree);
        self.ops.push((i, key.into(), Some(value.into())));
    }

    pub(crate) fn del(&mut self, tree: &Tree, key: impl Into<Vec<u8>>) {
        let i = self.index(tree);
        self.ops.push((i, key.into(), None));
    }

    /// Applies every write in one transaction: all or nothing, also across a crash.
    pub(crate) fn commit(self) -> Result<(), StoreError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let result = self.trees.as_slice().transaction(|tx| {
            for (i, key, value) in &self.ops {
                let tree = &tx[*i];
                match value {
                    Some(value) => tree.insert(key.as_slice(), value.as_slice())?,
                    None => tree.remove(key.as_slice())?,
                };
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        result.map_err(|err: TransactionError<()>| {
            crate::backend(format!("transaction failed: {err:?}"))
        })
    }
}

/// Keys of a prefix scan.
pub(crate) fn keys_with_prefix(tree: &Tree, prefix: &[u8]) -> Result<Vec<IVec>, StoreError> {
    tree.scan_prefix(prefix)
        .keys()
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::backend)
}
