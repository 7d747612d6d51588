//! `angage webhooks ...`: a tenant's webhook endpoints and their delivery log, from the shell.
//! A running server (any node) delivers what these commands queue.

use clap::Subcommand;
use serde_json::json;

use super::manage::{cli_error, flag_error, parse_grace, truncate};
use super::store::{now, open, tenant_id};
use angage_core::config::Loaded;
use angage_store::keys::{Grace, Pepper};
use angage_store::resources::store::ListParams;
use angage_store::webhooks::deliveries::{self, Delivery};
use angage_store::webhooks::endpoints::{self, Endpoint, EndpointUpdate, EndpointWithSecret, NewEndpoint};
use angage_store::webhooks::{EVENT_TYPES, Sealer};

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Add an endpoint; its signing secret is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        url: String,
        /// An event type to deliver (repeatable); none: every type.
        #[arg(long = "event")]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's endpoints (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Show one endpoint.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop deliveries to an endpoint (they wait, pending, until it is enabled).
    Disable {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Resume deliveries to an endpoint.
    Enable {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Delete an endpoint and its deliveries.
    Delete {
        #[arg(long)]
        tenant: String,
        id: String,
    },
    /// A new signing secret (printed once); the old one also signs until the grace ends.
    RotateSecret {
        #[arg(long)]
        tenant: String,
        id: String,
        /// now, 1h, 24h or 7d.
        #[arg(long, default_value = "24h", value_parser = parse_grace)]
        grace: Grace,
        #[arg(long)]
        json: bool,
    },
    /// An endpoint's deliveries, newest first.
    Deliveries {
        #[arg(long)]
        tenant: String,
        id: String,
        /// pending, delivered or failed.
        #[arg(long, value_parser = ["pending", "delivered", "failed"])]
        state: Option<String>,
        /// How many (1 to 100).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=100))]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(loaded: Loaded, cmd: WebhooksCommand) -> anyhow::Result<()> {
    let db = open(&loaded).await?;
    let s = &loaded.settings;
    let rules = &s.webhooks;
    match cmd {
        WebhooksCommand::Create { tenant, url, events, description, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let body = json!({"url": url, "events": events, "description": description.unwrap_or_default()});
            let new = NewEndpoint::parse(&body, rules).map_err(|e| flag_error(e, &[("events", "event")]))?;
            let sealer = Sealer::new(&Pepper::resolve(&s.keys.pepper, &s.profile, &s.data.dir)?);
            let created = endpoints::create(&db, &sealer, &tenant, new, now()).await.map_err(cli_error)?;
            print_secret(&created, json);
        }
        WebhooksCommand::List { tenant, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let params = ListParams { limit: 100, ..ListParams::default() };
            let all = endpoints::list(&db, &tenant, &params, now()).await.map_err(cli_error)?.data;
            if json {
                println!("{}", serde_json::to_string(&all)?);
            } else {
                println!("{:<16} {:<8} {:<40} {:<30}", "ID", "STATUS", "URL", "EVENTS");
                for e in &all {
                    println!(
                        "{:<16} {:<8} {:<40} {:<30}",
                        e.id,
                        if e.enabled { "enabled" } else { "disabled" },
                        truncate(&e.url, 40),
                        truncate(&events_of(e), 30)
                    );
                }
            }
        }
        WebhooksCommand::Show { tenant, id, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            print_endpoint(&endpoints::get(&db, &tenant, &id, now()).await.map_err(cli_error)?, json);
        }
        WebhooksCommand::Disable { tenant, id, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let change = EndpointUpdate { enabled: Some(false), ..EndpointUpdate::default() };
            print_endpoint(
                &endpoints::update(&db, &tenant, &id, change, now()).await.map_err(cli_error)?,
                json,
            );
        }
        WebhooksCommand::Enable { tenant, id, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let change = EndpointUpdate { enabled: Some(true), ..EndpointUpdate::default() };
            print_endpoint(
                &endpoints::update(&db, &tenant, &id, change, now()).await.map_err(cli_error)?,
                json,
            );
        }
        WebhooksCommand::Delete { tenant, id } => {
            let tenant = tenant_id(&db, &tenant).await?;
            endpoints::delete(&db, &tenant, &id).await.map_err(cli_error)?;
            println!("deleted {id} and its deliveries");
        }
        WebhooksCommand::RotateSecret { tenant, id, grace, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let sealer = Sealer::new(&Pepper::resolve(&s.keys.pepper, &s.profile, &s.data.dir)?);
            let rotated = endpoints::rotate(&db, &sealer, &tenant, &id, grace.millis(), now())
                .await
                .map_err(cli_error)?;
            print_secret(&rotated, json);
        }
        WebhooksCommand::Deliveries { tenant, id, state, limit, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let params = ListParams { limit, ..ListParams::default() };
            let page =
                deliveries::list(&db, &tenant, &id, state.as_deref(), &params).await.map_err(cli_error)?;
            if json {
                println!("{}", serde_json::to_string(&page.data)?);
            } else {
                print_deliveries(&page.data);
            }
        }
    }
    Ok(())
}

fn events_of(e: &Endpoint) -> String {
    if e.events.is_empty() { format!("all {} types", EVENT_TYPES.len()) } else { e.events.join(",") }
}

fn print_secret(e: &EndpointWithSecret, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
    } else {
        println!("secret: {}\n(shown once: copy it now; it cannot be shown again)\n", e.secret);
        print_endpoint(&e.endpoint, false);
    }
}

fn print_endpoint(e: &Endpoint, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string(e).unwrap_or_default());
        return;
    }
    println!("id:          {}", e.id);
    println!("url:         {}", e.url);
    println!("description: {}", e.description);
    println!("events:      {}", events_of(e));
    println!("status:      {}", if e.enabled { "enabled" } else { "disabled" });
    if let Some(reason) = &e.disabled_reason {
        println!("disabled:    {reason}");
    }
    println!("secret:      {}", e.secret_hint);
    if let Some(until) = &e.previous_secret_expires_at {
        println!("old secret:  also signs until {until}");
    }
    if let Some(since) = &e.failing_since {
        println!("failing:     since {since}");
    }
    println!("created:     {}", e.created_at);
}

fn print_deliveries(list: &[Delivery]) {
    println!(
        "{:<16} {:<22} {:<9} {:>6} {:>8} {:>8}  NEXT OR ERROR",
        "ID", "EVENT", "STATE", "STATUS", "MS", "ATTEMPTS"
    );
    for d in list {
        let status = d.last_status.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let latency = d.last_latency_ms.map_or_else(|| "-".to_owned(), |s| s.to_string());
        let note = match (&d.next_attempt_at, &d.last_error) {
            (Some(next), _) => format!("next {next}"),
            (None, Some(error)) => error.clone(),
            (None, None) => String::new(),
        };
        println!(
            "{:<16} {:<22} {:<9} {:>6} {:>8} {:>8}  {}",
            d.id, d.event_type, d.state, status, latency, d.attempts, note
        );
    }
}
