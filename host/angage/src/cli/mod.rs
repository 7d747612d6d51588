//! The `angage` command line: `serve` (the default), `migrate`, `config show`, and the
//! management commands (`tenants`, `admins`, `keys`) that work on the configured database
//! without a running server.

mod admins;
mod manage;
mod oauth;
mod plugins;
mod sign;
mod store;
mod webhooks;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use figment::value::Value;

use crate::app::{App, Deps, shutdown_signal};
use crate::telemetry;
use angage_core::config::{self, Loaded, Sources};
use angage_store::db::Db;

#[derive(Debug, Parser)]
#[command(name = "angage", version, about = "The Angage API Platform server and admin CLI")]
pub struct Cli {
    /// Extra configuration file, above config/<profile>.toml and below the environment.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Configuration profile (default: ANGAGE_PROFILE, else `development`).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Directory holding default.toml and <profile>.toml.
    #[arg(long, global = true, value_name = "DIR", env = "ANGAGE_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,
    /// Overrides `server.addr`.
    #[arg(long, global = true, value_name = "ADDR")]
    pub addr: Option<String>,
    /// Overrides `database.url`.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,
    /// Overrides `log.level`.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Overrides `log.format` (`pretty` or `json`).
    #[arg(long, global = true)]
    pub log_format: Option<String>,
    /// Overrides `plugins.dir`.
    #[arg(long, global = true, value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,
    /// Overrides `policies.dir`.
    #[arg(long, global = true, value_name = "DIR")]
    pub policies_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Create the first tenant and its first admin (the production profile does not do it on
    /// its first start).
    Init(manage::Init),
    /// Create tenants.
    #[command(subcommand)]
    Tenants(manage::TenantsCommand),
    /// Create, list, change, disable and remove admins.
    #[command(subcommand)]
    Admins(admins::AdminsCommand),
    /// Issue, list, show, revoke and rotate API keys.
    #[command(subcommand)]
    Keys(manage::KeysCommand),
    /// Plugins for the whole cluster, stored in the database.
    #[command(subcommand)]
    Plugins(plugins::PluginsCommand),
    /// Add, list, change and remove webhook endpoints; read their deliveries.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Create, list, rotate and revoke OAuth 2.0 clients (client credentials).
    #[command(subcommand)]
    OauthClients(oauth::OAuthClientsCommand),
    /// Print the RFC 9421 signature headers for one request (for curl), signed with an
    /// Ed25519 private key that stays on this machine.
    Sign(sign::Sign),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration, secrets redacted, with the source of each value.
    Show,
}

impl Cli {
    /// The configuration layers this command line asks for.
    pub fn sources(&self) -> Sources {
        let mut flags: Vec<(&'static str, Value)> = Vec::new();
        let text = |v: &str| Value::from(v.to_owned());
        let path = |p: &PathBuf| Value::from(p.display().to_string());
        if let Some(v) = &self.addr {
            flags.push(("server.addr", text(v)));
        }
        if let Some(v) = &self.database_url {
            flags.push(("database.url", text(v)));
        }
        if let Some(v) = &self.log_level {
            flags.push(("log.level", text(v)));
        }
        if let Some(v) = &self.log_format {
            flags.push(("log.format", text(v)));
        }
        if let Some(v) = &self.plugins_dir {
            flags.push(("plugins.dir", path(v)));
        }
        if let Some(v) = &self.policies_dir {
            flags.push(("policies.dir", path(v)));
        }
        Sources {
            config_dir: self.config_dir.clone(),
            profile: self.profile.clone(),
            config_file: self.config.clone(),
            flags,
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    // Signing needs no configuration (and must not read the caller's `ANGAGE_*` variables as
    // configuration keys).
    if let Some(Command::Sign(cmd)) = cli.command {
        return sign::run(cmd);
    }
    let loaded = cli.sources().load()?;
    match cli.command {
        Some(Command::Config(ConfigCommand::Show)) => {
            print!("{}", config::render_show(&loaded));
            Ok(())
        }
        Some(Command::Migrate) => runtime()?.block_on(migrate(loaded)),
        Some(Command::Init(cmd)) => runtime()?.block_on(manage::init(loaded, cmd)),
        Some(Command::Tenants(cmd)) => runtime()?.block_on(manage::tenants(loaded, cmd)),
        Some(Command::Admins(cmd)) => runtime()?.block_on(admins::run(loaded, cmd)),
        Some(Command::Keys(cmd)) => runtime()?.block_on(manage::keys(loaded, cmd)),
        Some(Command::Plugins(cmd)) => runtime()?.block_on(plugins::run(loaded, cmd)),
        Some(Command::Webhooks(cmd)) => runtime()?.block_on(webhooks::run(loaded, cmd)),
        Some(Command::OauthClients(cmd)) => runtime()?.block_on(oauth::run(loaded, cmd)),
        Some(Command::Sign(_)) | Some(Command::Serve) | None => runtime()?.block_on(serve(loaded)),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

async fn migrate(loaded: Loaded) -> anyhow::Result<()> {
    telemetry::init_tracing(&loaded.settings.log);
    let db = Db::connect(&loaded.settings.database).await?;
    db.migrate().await?;
    db.close().await;
    println!("migrations applied");
    Ok(())
}

async fn serve(loaded: Loaded) -> anyhow::Result<()> {
    telemetry::init_tracing(&loaded.settings.log);
    let app = App::build(loaded.settings, Deps::default()).await?;
    let addr = app.local_addr();
    tracing::info!(%addr, profile = %loaded.profile, "listening");
    if let Some(banner) = &app.banner {
        let scheme = if app.state().tls.is_some() { "https" } else { "http" };
        println!("{}", banner.render(&format!("{scheme}://{addr}")));
    }
    app.serve(shutdown_signal()).await
}
