//! Webhooks: endpoints per tenant, the events the store's changes raise (written in the change's
//! own transaction: the outbox) and the deliveries a worker claims and records. Sending them is
//! the delivery worker's (`angage-webhooks`); this module owns only the tables.

pub mod deliveries;
pub mod endpoints;
pub mod outbox;
mod seal;
pub mod target;

pub use seal::{Sealer, Unsealable};

/// Every event type, with what raises it, in the order the documentation lists them.
pub const EVENT_TYPES: &[(&str, &str)] = &[
    ("customer.created", "A customer was created."),
    ("customer.updated", "A customer's fields changed."),
    ("customer.deleted", "A customer was deleted; the object is the customer as it was."),
    ("product.created", "A product was created."),
    ("product.updated", "A product's fields changed."),
    ("product.deleted", "A product was deleted; the object is the product as it was."),
    ("order.created", "An order was placed (draft or confirmed)."),
    ("order.updated", "An order's lines, notes or addresses changed."),
    ("order.cancelled", "An order was cancelled; its reserved stock was released."),
    ("order.fulfilled", "An order was fulfilled; its stock left the warehouse."),
    ("invoice.created", "An invoice was issued."),
    ("invoice.paid", "Payments cover an invoice in full."),
    ("invoice.partially_paid", "A payment covers part of an invoice."),
    ("payment.created", "A payment was recorded."),
    ("inventory.updated", "A product's stock on hand or reserved changed."),
    ("inventory.low", "A product's available stock fell below its `low_stock_threshold`."),
    ("api_key.created", "An API key was issued."),
    ("api_key.revoked", "An API key was revoked."),
    ("api_key.rotated", "An API key was rotated; the object is the new key."),
    ("api_key.expiring", "An API key expires within seven days (sent once per key)."),
];

/// The event a test send carries; never raised by a change, so no endpoint subscribes to it.
pub const TEST_EVENT: &str = "webhook.test";

pub fn is_event_type(name: &str) -> bool {
    EVENT_TYPES.iter().any(|(t, _)| *t == name)
}
