//! Cursor paging for every listing API.

use serde::{Deserialize, Serialize};

/// An opaque position in a listing, handed back to fetch the next page.
///
/// Adapters choose what goes inside (usually the last item's key); callers must treat it
/// as opaque. A cursor stays valid when items are added or removed elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Cursor(String);

impl Cursor {
    /// Wraps cursor text (from an adapter, or from a client handing it back).
    pub fn new(text: impl Into<String>) -> Self {
        Cursor(text.into())
    }

    /// The cursor's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which page to fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// At most this many items (clamped to `1..=PageRequest::MAX_LIMIT`).
    pub limit: u32,
    /// Continue after this position; `None` for the first page.
    pub cursor: Option<Cursor>,
}

impl PageRequest {
    /// The largest page a store returns.
    pub const MAX_LIMIT: u32 = 500;

    /// The first page of at most `limit` items.
    pub fn first(limit: u32) -> Self {
        PageRequest {
            limit,
            cursor: None,
        }
    }

    /// The page after `cursor`.
    pub fn after(limit: u32, cursor: Cursor) -> Self {
        PageRequest {
            limit,
            cursor: Some(cursor),
        }
    }

    /// The limit clamped to `1..=MAX_LIMIT`, as adapters must apply it.
    pub fn effective_limit(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT) as usize
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(50)
    }
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this is the last page.
    pub next_cursor: Option<Cursor>,
}
