//! Every refusal the policy engine answers with, built in one place so each code reads the
//! same wherever it comes from (a plugin's own denial is bounded in `plugins/outputs.rs`).

use angage_core::key::KeyRecord;
use angage_core::policy::{Refusal, Stage};

/// 401 for a key no authenticator may admit: revoked, or past its expiry at `now`.
pub(crate) fn unusable(key: &KeyRecord, now: i64) -> Option<Refusal> {
    let revoked = key.revoked_at.is_some();
    let (code, detail) = match (key.oauth, revoked) {
        (_, false) if key.expires_at.is_none_or(|t| t > now) => return None,
        (false, true) => ("revoked_api_key", "This API key has been revoked"),
        (false, false) => ("expired_api_key", "This API key has expired"),
        (true, true) => ("revoked_token", "This access token has been revoked"),
        (true, false) => ("expired_token", "This access token has expired; request a new one"),
    };
    Some(Refusal { status: 401, code: code.into(), detail: detail.into(), retry_after: None })
}

/// 401 for an OAuth access token while its tenant has OAuth off, whatever the authenticator.
pub(crate) fn oauth_off(key: &crate::plugins::KeyRef) -> Option<Refusal> {
    (key.key.oauth && !key.settings.security.oauth_enabled).then(|| Refusal {
        status: 401,
        code: "oauth_disabled".into(),
        detail:
            "OAuth 2.0 is off for this tenant (its \"OAuth 2.0\" setting); access tokens are not accepted"
                .into(),
        retry_after: None,
    })
}

/// 503 for a stage that failed (or, without a stage, a lane that stopped); logged, since the
/// client only learns that the policy is unavailable.
pub(crate) fn unavailable(stage: Option<Stage>, e: &dyn std::fmt::Display) -> Refusal {
    let name = stage.map_or("policy", Stage::as_str);
    tracing::error!(stage = name, error = %e, "policy stage failed; failing closed");
    let detail = match stage {
        Some(_) => format!("The {name} policy is unavailable; retry later"),
        None => "The policy stages are unavailable; retry later".to_owned(),
    };
    Refusal { status: 503, code: "policy_unavailable".into(), detail, retry_after: None }
}

/// 503 when this thread's lane already holds as many requests as it queues: refused at once,
/// so a burst the plugins cannot keep up with does not grow a queue every tenant waits in.
pub(crate) fn overloaded() -> Refusal {
    metrics::counter!("angage_requests_shed_total").increment(1);
    Refusal {
        status: 503,
        code: "overloaded".into(),
        detail: "The policy stages are answering as many requests as they can; retry shortly".into(),
        retry_after: Some(1),
    }
}

/// 429 for the window that refused the charge.
pub(crate) fn rate_limited(window: Option<&str>, retry: u64, send_retry_after: bool) -> Refusal {
    let window = window.unwrap_or("window");
    Refusal {
        status: 429,
        code: "rate_limited".into(),
        detail: format!("Rate limit exceeded for the {window} window; retry in {retry} seconds"),
        retry_after: send_retry_after.then_some(retry),
    }
}

/// 429 for an address that has sent too many requests without a valid key.
pub(crate) fn unauthenticated(retry: u64) -> Refusal {
    Refusal {
        status: 429,
        code: "rate_limited".into(),
        detail: format!(
            "Too many requests without a valid API key from this address; retry in {retry} seconds"
        ),
        retry_after: Some(retry),
    }
}

/// 503 while `redis.failure = "closed"` and the shared counters cannot be reached. Not logged
/// per request: the outage is warned about once, and counted.
pub(crate) fn counters_unavailable() -> Refusal {
    Refusal {
        status: 503,
        code: "rate_limit_unavailable".into(),
        detail: "The shared rate-limit counters cannot be reached; retry shortly".into(),
        retry_after: Some(1),
    }
}

/// 503 when the store could not say who the caller is or what their tenant allows.
pub(crate) fn store_unavailable(e: &sqlx::Error) -> Refusal {
    tracing::error!(error = %e, "reading the caller's key or tenant settings");
    Refusal {
        status: 503,
        code: "database_unavailable".into(),
        detail: "Retry later".into(),
        retry_after: None,
    }
}
