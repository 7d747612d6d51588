//! What a database error means for the one who asked: the store was out of reach, or it
//! refused the statement (and why).

/// Whether an error means the database could not be reached or dropped the work (an outage,
/// a restart, a connection killed mid-transaction), as opposed to a statement it refused.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // PostgreSQL: connection exceptions (08), operator intervention such as an admin
            // shutdown (57P), too many connections (53300), a database refusing connections
            // (55000); SQLite: busy or locked beyond the busy timeout.
            c.starts_with("08")
                || c.starts_with("57P")
                || c == "53300"
                || c == "55000"
                || c == "5"
                || c == "6"
        }),
        _ => false,
    }
}

/// A unique constraint refused the write.
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.kind() == sqlx::error::ErrorKind::UniqueViolation)
}
