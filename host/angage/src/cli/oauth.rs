//! `angage oauth-clients ...`: a tenant's OAuth 2.0 clients (client credentials), from the shell.

use clap::Subcommand;
use serde_json::json;

use super::manage::{cli_error, flag_error, truncate};
use super::store::{now, open, tenant_id};
use angage_core::config::Loaded;
use angage_store::keys::Pepper;
use angage_store::keys::store::Actor;
use angage_store::oauth::{self, ClientSpec, ClientView, IssuedClient};
use angage_store::resources::store::ListParams;

#[derive(Debug, Subcommand)]
pub enum OAuthClientsCommand {
    /// Create a client; its secret is printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// A scope its tokens may carry, `<module>:read` or `<module>:write` (repeatable).
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// An environment its tokens may be for, `live` or `test` (repeatable); none: both.
        #[arg(long = "environment")]
        environments: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's clients (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// A new secret, printed once; the old one stops working at once.
    RotateSecret {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client and every token it holds.
    Revoke {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn run(loaded: Loaded, cmd: OAuthClientsCommand) -> anyhow::Result<()> {
    let db = open(&loaded).await?;
    let s = &loaded.settings;
    let actor = Actor("cli".into());
    match cmd {
        OAuthClientsCommand::Create { tenant, name, scopes, environments, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let mut body = json!({"name": name, "scopes": scopes});
            if !environments.is_empty() {
                body["environments"] = json!(environments);
            }
            let spec = ClientSpec::parse(&body, true)
                .map_err(|e| flag_error(e, &[("scopes", "scope"), ("environments", "environment")]))?;
            let pepper = Pepper::resolve(&s.keys.pepper, &s.profile, &s.data.dir)?;
            let created =
                oauth::create(&db, &pepper, &tenant, &actor, spec, now()).await.map_err(cli_error)?;
            print_secret(&created, json);
        }
        OAuthClientsCommand::List { tenant, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let params = ListParams { limit: 100, ..ListParams::default() };
            let all = oauth::list(&db, &tenant, &params).await.map_err(cli_error)?.data;
            if json {
                println!("{}", serde_json::to_string(&all)?);
            } else {
                println!("{:<16} {:<8} {:<24} {:<40}", "CLIENT ID", "STATUS", "NAME", "SCOPES");
                for c in &all {
                    println!(
                        "{:<16} {:<8} {:<24} {:<40}",
                        c.id,
                        c.status,
                        truncate(&c.name, 24),
                        truncate(&c.scopes.join(" "), 40)
                    );
                }
            }
        }
        OAuthClientsCommand::RotateSecret { tenant, id, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let pepper = Pepper::resolve(&s.keys.pepper, &s.profile, &s.data.dir)?;
            let rotated =
                oauth::rotate_secret(&db, &pepper, &tenant, &actor, &id, now()).await.map_err(cli_error)?;
            print_secret(&rotated, json);
        }
        OAuthClientsCommand::Revoke { tenant, id, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            print_client(&oauth::revoke(&db, &tenant, &actor, &id, now()).await.map_err(cli_error)?, json);
        }
    }
    Ok(())
}

fn print_secret(c: &IssuedClient, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string(c).unwrap_or_default());
    } else {
        println!(
            "client_id: {}\nclient_secret: {}\n(shown once: copy it now; it cannot be shown again)\n",
            c.client_id, c.client_secret
        );
        print_client(&c.view, false);
    }
}

fn print_client(c: &ClientView, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string(c).unwrap_or_default());
        return;
    }
    println!("id:           {}", c.id);
    println!("name:         {}", c.name);
    println!("status:       {}", c.status);
    println!("scopes:       {}", c.scopes.join(" "));
    let envs: Vec<&str> = c.environments.iter().map(|e| e.as_str()).collect();
    println!("environments: {}", envs.join(", "));
}
