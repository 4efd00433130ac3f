//! The examples' protected resource: the invoices of a pretend accounting app, readable
//! with `invoices:read`. Shared by both examples (`#[path]`), so each shows only how its
//! framework guards a route.

use portcullis_http::views::List;
use serde::Serialize;

portcullis_http::permission!(
    /// The permission the invoices need.
    pub InvoicesRead = "invoices:read"
);

/// One invoice.
#[derive(Debug, Serialize)]
pub struct Invoice {
    /// Its number.
    pub id: &'static str,
    /// Who pays it.
    pub customer: &'static str,
    /// How much, in cents.
    pub amount_cents: u64,
    /// ISO 4217.
    pub currency: &'static str,
    /// `open` or `paid`.
    pub status: &'static str,
}

const INVOICES: [Invoice; 3] = [
    Invoice {
        id: "INV-1001",
        customer: "Acme Corp.",
        amount_cents: 125_000,
        currency: "EUR",
        status: "paid",
    },
    Invoice {
        id: "INV-1002",
        customer: "Globex",
        amount_cents: 48_250,
        currency: "EUR",
        status: "open",
    },
    Invoice {
        id: "INV-1003",
        customer: "Initech",
        amount_cents: 9_900,
        currency: "EUR",
        status: "open",
    },
];

/// Every invoice, as one page.
pub fn all() -> List<Invoice> {
    List::all(INVOICES.into_iter().collect())
}
