//! `angage init|tenants|keys ...`: manage a tenant straight on the configured database.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use angage_core::config::Loaded;
use angage_core::key::{Access, Environment, MODULES};
use angage_core::tenant::TenantId;
use angage_store::admins::Role;
use angage_store::keys::store::{self as key_store, Actor, IssuedKey, KeyView};
use angage_store::keys::{Grace, NewKey, Pepper};
use angage_store::resources::store::{ListParams, ResourceError};
use angage_store::tenants;

use super::store::{now, open, tenant_id};

#[derive(Debug, Subcommand)]
pub enum TenantsCommand {
    /// Create a tenant with the default settings.
    Create {
        /// Lowercase letters, digits and '-'.
        slug: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
}

/// `angage init`: the first tenant and its first admin, on a store that has none.
#[derive(Debug, Args)]
pub struct Init {
    /// The tenant's slug: lowercase letters, digits and '-'.
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    name: String,
    #[arg(long)]
    admin_email: String,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Issue a key; its secret is printed once.
    Create(CreateKey),
    /// List a tenant's keys (never their secrets).
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long, value_parser = parse_env)]
        env: Option<Environment>,
        #[arg(long)]
        json: bool,
    },
    /// Show one key.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once.
    Revoke {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Issue a new secret for a key; the old one works until the grace period ends.
    Rotate {
        #[arg(long)]
        tenant: String,
        id: String,
        /// now, 1h, 24h or 7d.
        #[arg(long, default_value = "24h", value_parser = parse_grace)]
        grace: Grace,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct CreateKey {
    #[arg(long)]
    tenant: String,
    #[arg(long)]
    name: String,
    #[arg(long)]
    description: Option<String>,
    #[arg(long, default_value = "live", value_parser = parse_env)]
    env: Environment,
    /// full, read-only or custom.
    #[arg(long, value_parser = ["full", "read-only", "read_only", "custom"])]
    scope: Option<String>,
    /// MODULE:none|read|read_write (implies --scope custom); repeatable.
    #[arg(long = "grant", value_parser = parse_grant)]
    grants: Vec<(String, Access)>,
    #[arg(long)]
    per_second: Option<i64>,
    #[arg(long)]
    per_minute: Option<i64>,
    #[arg(long)]
    per_hour: Option<i64>,
    #[arg(long)]
    per_day: Option<i64>,
    #[arg(long)]
    burst: Option<i64>,
    /// CIDR block or address allowed to use the key; repeatable.
    #[arg(long = "allow-ip")]
    allow_ip: Vec<String>,
    /// 0 for never; default: the tenant's default expiration.
    #[arg(long)]
    expires_in_days: Option<i64>,
    #[arg(long)]
    json: bool,
}

fn parse_env(s: &str) -> Result<Environment, String> {
    Environment::parse(s).ok_or_else(|| format!("`{s}` is not an environment: use live or test"))
}

pub(super) fn parse_grace(s: &str) -> Result<Grace, String> {
    Grace::parse(s).ok_or_else(|| format!("`{s}` is not a grace period: use now, 1h, 24h or 7d"))
}

fn parse_grant(s: &str) -> Result<(String, Access), String> {
    let (module, access) =
        s.split_once(':').ok_or_else(|| format!("`{s}` is not MODULE:ACCESS (e.g. orders:read)"))?;
    if !MODULES.contains(&module) {
        return Err(format!("`{module}` is not a module: use one of {}", MODULES.join(", ")));
    }
    let access = Access::parse(access)
        .ok_or_else(|| format!("`{access}` is not an access level: use none, read or read_write"))?;
    Ok((module.to_owned(), access))
}

/// Opens (and migrates) the configured store.
pub(super) async fn tenants(loaded: Loaded, cmd: TenantsCommand) -> anyhow::Result<()> {
    let TenantsCommand::Create { slug, name, json } = cmd;
    let db = open(&loaded).await?;
    let tenant = tenants::create(&db, &slug, &name, now()).await.map_err(|e| anyhow::anyhow!("SLUG: {e}"))?;
    if json {
        println!("{}", json!({"id": tenant.id, "slug": tenant.slug, "name": tenant.name}));
    } else {
        println!("created tenant {} ({})", tenant.slug, tenant.id);
    }
    Ok(())
}

/// Creates a tenant and its first admin (the production profile's first start does nothing
/// by itself: no demo tenant, no key, nothing secret in the logs).
pub(super) async fn init(loaded: Loaded, cmd: Init) -> anyhow::Result<()> {
    let db = open(&loaded).await?;
    let tenant = tenants::create(&db, &cmd.tenant, &cmd.name, now())
        .await
        .map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
    if !cmd.json {
        println!("created tenant {} ({})", tenant.slug, tenant.id);
    }
    let tenant = TenantId(tenant.id);
    super::admins::new_admin(
        &loaded,
        &db,
        &tenant,
        (&cmd.admin_email, "--admin-email"),
        Role::Owner,
        cmd.json,
    )
    .await
}

pub(super) async fn keys(loaded: Loaded, cmd: KeysCommand) -> anyhow::Result<()> {
    let db = open(&loaded).await?;
    let s = &loaded.settings;
    let pepper = Pepper::resolve(&s.keys.pepper, &s.profile, &s.data.dir)?;
    let actor = Actor("cli".into());
    match cmd {
        KeysCommand::Create(args) => {
            let tenant = tenant_id(&db, &args.tenant).await?;
            let json_out = args.json;
            let new = new_key(args)?;
            let issued =
                key_store::create(&db, &pepper, &tenant, &actor, new, now()).await.map_err(cli_error)?;
            print_issued(&issued, json_out);
        }
        KeysCommand::List { tenant, env, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let mut all = Vec::new();
            let mut params = ListParams { limit: 100, ..ListParams::default() };
            loop {
                let page = key_store::list(&db, &tenant, env, &params, now()).await.map_err(cli_error)?;
                all.extend(page.data);
                match page.next_cursor {
                    Some(c) => params.starting_after = Some(c),
                    None => break,
                }
            }
            if json {
                println!("{}", serde_json::to_string(&all)?);
            } else {
                println!(
                    "{:<18} {:<24} {:<5} {:<16} {:<9} {:<25} {:<25}",
                    "ID", "NAME", "ENV", "PREFIX", "STATUS", "CREATED", "LAST USED"
                );
                for k in &all {
                    println!(
                        "{:<18} {:<24} {:<5} {:<16} {:<9} {:<25} {:<25}",
                        k.id,
                        truncate(&k.name, 24),
                        k.environment.as_str(),
                        k.prefix,
                        k.status,
                        k.created_at,
                        k.last_used_at.as_deref().unwrap_or("never")
                    );
                }
            }
        }
        KeysCommand::Show { tenant, id, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let view = key_store::get(&db, &tenant, &id, now()).await.map_err(cli_error)?;
            print_view(&view, json);
        }
        KeysCommand::Revoke { tenant, id, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let view = key_store::revoke(&db, &tenant, &actor, &id, now()).await.map_err(cli_error)?;
            print_view(&view, json);
        }
        KeysCommand::Rotate { tenant, id, grace, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let issued = key_store::rotate(&db, &pepper, &tenant, &actor, &id, grace, now())
                .await
                .map_err(cli_error)?;
            print_issued(&issued, json);
        }
    }
    db.close().await;
    Ok(())
}

/// Builds the key through the same parser as the admin API, naming flags in its errors.
fn new_key(a: CreateKey) -> anyhow::Result<NewKey> {
    let scope = match (&a.scope, a.grants.is_empty()) {
        (Some(s), _) => s.replace('-', "_"),
        (None, false) => "custom".into(),
        (None, true) => "full".into(),
    };
    let mut body = json!({"name": a.name, "environment": a.env.as_str(), "scope": scope, "ip_allowlist": a.allow_ip,
                          "rate_limits": {"per_second": a.per_second, "per_minute": a.per_minute, "per_hour": a.per_hour,
                                          "per_day": a.per_day, "burst": a.burst}});
    if let Some(d) = a.description {
        body["description"] = Value::from(d);
    }
    if let Some(d) = a.expires_in_days {
        body["expires_in_days"] = Value::from(d);
    }
    if !a.grants.is_empty() {
        body["grants"] = a
            .grants
            .iter()
            .map(|(m, acc)| (m.clone(), Value::from(acc.as_str())))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    NewKey::parse(&body).map_err(|errors| {
        let first = errors.first().map(|e| (flag_for(&e.field), e.message.clone())).unwrap_or_default();
        anyhow::anyhow!("{}: {}", first.0, first.1)
    })
}

fn flag_for(field: &str) -> String {
    let leaf = field.rsplit('.').next().unwrap_or(field);
    match leaf {
        f if f.starts_with("ip_allowlist") => "--allow-ip".into(),
        "environment" => "--env".into(),
        "grants" => "--grant".into(),
        f if MODULES.contains(&f) => "--grant".into(),
        f => format!("--{}", f.replace('_', "-")),
    }
}

pub(super) fn cli_error(e: ResourceError) -> anyhow::Error {
    match e {
        ResourceError::NotFound { .. } => anyhow::anyhow!("ID: {e}"),
        ResourceError::Conflict { detail, .. } => anyhow::anyhow!("ID: {detail}"),
        other => anyhow::Error::new(other),
    }
}

/// Field errors as the flags that carry them (`renames`: a field whose flag is named otherwise,
/// such as `events` for `--event`), on one line.
pub(super) fn flag_error(
    errors: Vec<angage_core::validate::FieldError>,
    renames: &[(&str, &str)],
) -> anyhow::Error {
    let lines: Vec<String> = errors
        .iter()
        .map(|e| {
            let field = e.field.split(['[', '.']).next().unwrap_or("");
            let flag = renames.iter().find(|(f, _)| *f == field).map_or(field, |(_, flag)| flag);
            format!("--{flag}: {}", e.message)
        })
        .collect();
    anyhow::anyhow!(lines.join("; "))
}

pub(super) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    }
}

fn print_issued(issued: &IssuedKey, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string(issued).unwrap_or_default());
    } else {
        println!("key:  {}\n(shown once: copy it now; it cannot be shown again)\n", issued.key);
        print_view(&issued.view, false);
    }
}

fn print_view(view: &KeyView, json_out: bool) {
    if json_out {
        println!("{}", serde_json::to_string(view).unwrap_or_default());
        return;
    }
    let grants: Vec<String> = view.grants.iter().map(|(m, a)| format!("{m}:{}", a.as_str())).collect();
    println!("id:           {}", view.id);
    println!("name:         {}", view.name);
    println!("environment:  {}", view.environment.as_str());
    println!("prefix:       {}", view.prefix);
    println!("status:       {}", view.status);
    println!("scope:        {}", view.scope.as_str());
    println!("grants:       {}", grants.join(" "));
    println!("rate limits:  {}", serde_json::to_string(&view.rate_limits).unwrap_or_default());
    println!(
        "ip allowlist: {}",
        if view.ip_allowlist.is_empty() { "any".into() } else { view.ip_allowlist.join(", ") }
    );
    println!("expires:      {}", view.expires_at.as_deref().unwrap_or("never"));
    println!("created:      {} by {}", view.created_at, view.created_by);
    println!("last used:    {}", view.last_used_at.as_deref().unwrap_or("never"));
    if let Some(to) = &view.rotated_to {
        println!("rotated to:   {to}");
    }
}
