//! A protected resource to show [`RequirePermission`](crate::RequirePermission): the
//! invoices of a pretend accounting app, readable with `invoices:read`.

use actix_web::web::Json;
use serde::Serialize;

use crate::extract::Authenticated;
use crate::views::List;

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

/// `GET /api/v1/demo/invoices`, behind `RequirePermission("invoices:read")`. The guard
/// has verified the bearer already; [`Authenticated`] takes its claims without a second
/// verification.
pub async fn invoices(user: Authenticated) -> Json<List<Invoice>> {
    tracing::debug!(user = %user.claims.sub, "invoices read");
    Json(List::all(INVOICES.into_iter().collect()))
}
