//! `angage admins ...`: a tenant's admins straight on the configured database, for the
//! operator (an owner locked out, an admin who must lose access now). Audited as `cli`.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;

use super::store::{now, open, tenant_id};
use angage_core::config::Loaded;
use angage_core::ids::random_base62;
use angage_core::tenant::TenantId;
use angage_store::admins::manage::{self, AdminChange};
use angage_store::admins::{self, AdminError, NewAdmin, Role};
use angage_store::db::Db;

const ACTOR: &str = "cli";

#[derive(Debug, Subcommand)]
pub enum AdminsCommand {
    /// Create an admin. The password is read from stdin when piped, else generated and printed once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        /// owner, admin or viewer (reads only).
        #[arg(long, default_value = "admin", value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        json: bool,
    },
    /// List a tenant's admins.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
    },
    /// Change an admin's role, or disable (their sessions end at once, their tokens stop) or
    /// enable them.
    Set {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        #[arg(long, conflicts_with = "enable")]
        disable: bool,
        #[arg(long)]
        enable: bool,
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (from stdin when piped, else generated and printed once); ends the
    /// admin's sessions.
    ResetPassword {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove an admin with their sessions and tokens.
    Delete {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("`{s}` is not a role: use owner, admin or viewer"))
}

pub(super) async fn run(loaded: Loaded, cmd: AdminsCommand) -> anyhow::Result<()> {
    let db = open(&loaded).await?;
    match cmd {
        AdminsCommand::Create { tenant, email, role, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            new_admin(&loaded, &db, &tenant, (&email, "--email"), role, json).await
        }
        AdminsCommand::List { tenant, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let list = admins::list(&db, &tenant).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for a in list {
                    let state = if a.disabled_at.is_some() { "disabled" } else { "active" };
                    println!("{:<40} {:<7} {:<9} {}", a.email, a.role, state, a.id);
                }
            }
            Ok(())
        }
        AdminsCommand::Set { tenant, email, role, disable, enable, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let disabled = (disable || enable).then_some(disable);
            if role.is_none() && disabled.is_none() {
                anyhow::bail!("nothing to change: pass --role, --disable or --enable");
            }
            let change = AdminChange { role, disabled, name: None };
            let admin = manage::update(&db, &tenant, &email, &change, ACTOR, now())
                .await
                .map_err(|e| cli_error(e, "--email"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&admin)?);
            } else {
                let state = if admin.disabled_at.is_some() { "disabled" } else { "active" };
                println!("admin {} is now {} and {state}", admin.email, admin.role);
            }
            Ok(())
        }
        AdminsCommand::ResetPassword { tenant, email, json } => {
            let tenant = tenant_id(&db, &tenant).await?;
            let (password, generated) = password_from_stdin()?;
            let admin =
                manage::reset_password(&db, &loaded.settings.admin, &tenant, &email, &password, ACTOR, now())
                    .await
                    .map_err(|e| cli_error(e, "--email"))?;
            let shown = generated.then_some(password);
            if json {
                println!("{}", json!({"id": admin.id, "email": admin.email, "password": shown}));
            } else {
                println!("reset the password of {}; their sessions ended", admin.email);
                if let Some(p) = shown {
                    println!("password: {p}\n(shown once; keep it now)");
                }
            }
            Ok(())
        }
        AdminsCommand::Delete { tenant, email } => {
            let tenant = tenant_id(&db, &tenant).await?;
            manage::delete(&db, &tenant, &email, ACTOR, now()).await.map_err(|e| cli_error(e, "--email"))?;
            println!("removed admin {email}");
            Ok(())
        }
    }
}

/// The password piped on stdin, or a generated one (`true`) when none is or stdin is a terminal.
fn password_from_stdin() -> anyhow::Result<(String, bool)> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok((random_base62(20), true));
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("reading the password from stdin")?;
    let line = line.trim_end_matches(['\r', '\n']).to_owned();
    Ok(if line.is_empty() { (random_base62(20), true) } else { (line, false) })
}

/// An admin whose password is read from stdin when piped, else generated and printed once.
/// `email` carries the argument it came from, for errors.
pub(super) async fn new_admin(
    loaded: &Loaded,
    db: &Db,
    tenant: &TenantId,
    (email, email_arg): (&str, &str),
    role: Role,
    json: bool,
) -> anyhow::Result<()> {
    let (password, generated) = password_from_stdin()?;
    let new = NewAdmin { email, password: &password, role };
    let admin = admins::create(db, &loaded.settings.admin, tenant, &new, ACTOR, now())
        .await
        .map_err(|e| cli_error(e, email_arg))?;
    let shown = generated.then_some(password);
    if json {
        println!("{}", json!({"id": admin.id, "email": admin.email, "role": admin.role, "password": shown}));
    } else {
        println!("created {} {} ({})", admin.role, admin.email, admin.id);
        if let Some(p) = shown {
            println!("password: {p}\n(shown once; keep it now)");
        }
    }
    Ok(())
}

/// One line naming the argument at fault.
fn cli_error(e: AdminError, email_arg: &str) -> anyhow::Error {
    match e {
        AdminError::BadEmail(_) | AdminError::Exists(_) | AdminError::NotFound(_) | AdminError::LastOwner => {
            anyhow::anyhow!("{email_arg}: {e}")
        }
        AdminError::WeakPassword => anyhow::anyhow!("password (stdin): {e}"),
        other => anyhow::Error::new(other),
    }
}
