//! Tenant limit rules in rhai: `policies/default.rhai` for every tenant, then
//! `policies/tenants/<tenant>.rhai`. Edited as files (picked up by a watcher) or through the
//! admin API; a script that does not compile or fails its dry run never replaces the one
//! serving. Every accepted change is a new version, kept in the store, and can be rolled back.

pub mod engine;
pub mod watch;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rhai::{AST, Engine};
use serde::Serialize;

use std::time::Duration;

use angage_core::config::PolicySettings;
use angage_core::limits::Limits;
use angage_store::db::Db;
use angage_store::rules as store;
pub use angage_store::rules::RuleVersion;
pub use engine::{Allowance, Inputs, RuleKey, RuleRequest, ScriptError};

/// Which script: the default for all tenants, or one tenant's.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuleScope {
    Default,
    /// Tenant id and slug.
    Tenant {
        id: String,
        slug: String,
    },
}

impl RuleScope {
    fn key(&self) -> &str {
        match self {
            Self::Default => "default",
            Self::Tenant { id, .. } => id,
        }
    }

    /// The file that holds this script, relative to `policies.dir`.
    pub fn file(&self) -> PathBuf {
        match self {
            Self::Default => PathBuf::from("default.rhai"),
            Self::Tenant { slug, .. } => Path::new("tenants").join(format!("{slug}.rhai")),
        }
    }

    fn label(&self) -> String {
        match self {
            Self::Default => "default".into(),
            Self::Tenant { slug, .. } => format!("tenants/{slug}"),
        }
    }
}

struct Compiled {
    ast: Arc<AST>,
    /// `tenants/demo@v3`: recorded on usage events and 429 bodies.
    name: String,
    version: i64,
}

/// The outcome of running the rules for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Evaluated {
    pub limits: Allowance,
    /// `name@vN` of the last rule that ran, if any.
    pub rule: Option<String>,
}

/// A rejected script, or a failed load of a rule file, kept for the admin API.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RuleProblem {
    pub errors: Vec<ScriptError>,
    /// `api` or `file`.
    pub source: String,
    pub at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("the script was rejected")]
    Rejected(Vec<ScriptError>),
    #[error("no version {0}")]
    NoVersion(i64),
    #[error("cannot write the rule file: {0}")]
    File(#[from] std::io::Error),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// The compiled rules of every scope, their versions, and the engine that runs them.
pub struct RuleSet {
    engine: Engine,
    dir: PathBuf,
    db: Db,
    compiled: RwLock<HashMap<String, Arc<Compiled>>>,
    problems: RwLock<HashMap<String, RuleProblem>>,
    /// One change at a time: an API save (store, then file) and a file sync (read, compare,
    /// store) never interleave, so a file read mid-save is never taken for an edit.
    changes: tokio::sync::Mutex<()>,
}

impl RuleSet {
    /// Loads the serving version of every scope from the store, then reconciles the files.
    pub async fn start(db: Db, settings: &PolicySettings, now: i64) -> Result<Arc<Self>, RuleError> {
        let set = Arc::new(Self {
            engine: engine::sandbox_with_budget(Duration::from_micros(settings.rule_budget_us)),
            dir: settings.dir.clone(),
            db,
            compiled: RwLock::new(HashMap::new()),
            problems: RwLock::new(HashMap::new()),
            changes: tokio::sync::Mutex::new(()),
        });
        for v in store::latest_all(&set.db).await? {
            match engine::compile(&set.engine, &v.body) {
                Ok(ast) => set.install(&v.scope_key, &v.label, ast, v.version),
                Err(e) => tracing::error!(scope = %v.scope_key, error = %e, "stored rule no longer compiles"),
            }
        }
        set.sync_files(now).await;
        Ok(set)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn install(&self, key: &str, label: &str, ast: AST, version: i64) {
        let compiled = Compiled { ast: Arc::new(ast), name: format!("{label}@v{version}"), version };
        self.compiled.write().unwrap_or_else(|p| p.into_inner()).insert(key.to_owned(), Arc::new(compiled));
    }

    /// Runs the default rule over the key's limits, then the tenant's over the default's result,
    /// clamped by it (a tenant's rule can tighten, never loosen). A rule that fails or runs
    /// past its budget is cut off and the limits before it apply. `inputs` is built only when
    /// a rule applies.
    pub fn evaluate(&self, tenant_id: &str, inputs: impl FnOnce() -> Inputs, limits: Allowance) -> Evaluated {
        let scripts: [Option<Arc<Compiled>>; 2] = {
            let compiled = self.compiled.read().unwrap_or_else(|p| p.into_inner());
            [compiled.get("default").cloned(), compiled.get(tenant_id).cloned()]
        };
        if scripts.iter().all(Option::is_none) {
            return Evaluated { limits, rule: None };
        }
        let inputs = inputs();
        let [default, tenant] = scripts;
        // The operator's default rule first: it alone may widen the key's limits.
        let mut current = Evaluated { limits, rule: None };
        if let Some(script) = default
            && let Some(l) = self.run(&script, &inputs, limits)
        {
            current = Evaluated { limits: l, rule: Some(script.name.clone()) };
        }
        // A tenant's rule refines within what the default allows; when it fails, the default's
        // result stands.
        if let Some(script) = tenant
            && let Some(l) = self.run(&script, &inputs, current.limits)
        {
            current = Evaluated { limits: l.within(&current.limits), rule: Some(script.name.clone()) };
        }
        current
    }

    /// One rule's run; a failure is logged and counted, never a 500.
    fn run(&self, script: &Compiled, inputs: &Inputs, limits: Allowance) -> Option<Allowance> {
        metrics::counter!("angage_rule_evaluations_total").increment(1);
        match engine::run(&self.engine, &script.ast, inputs, limits) {
            Ok(l) => Some(l),
            Err(e) => {
                metrics::counter!("angage_rule_failures_total").increment(1);
                tracing::warn!(rule = %script.name, error = %e, "rule failed; the limits before it apply");
                None
            }
        }
    }

    /// Compile errors of a draft, with line and column.
    pub fn validate(&self, text: &str) -> Vec<ScriptError> {
        match engine::compile(&self.engine, text) {
            Ok(ast) => match self.dry_run_ast(&ast, sample_request(), sample_key(), sample_limits()) {
                Ok(_) => Vec::new(),
                Err(e) => vec![e],
            },
            Err(e) => vec![e],
        }
    }

    /// Runs a draft against a sample request and key.
    pub fn dry_run(
        &self,
        text: &str,
        request: RuleRequest,
        key: RuleKey,
        limits: Allowance,
    ) -> Result<Allowance, ScriptError> {
        let ast = engine::compile(&self.engine, text)?;
        self.dry_run_ast(&ast, request, key, limits)
    }

    fn dry_run_ast(
        &self,
        ast: &AST,
        request: RuleRequest,
        key: RuleKey,
        limits: Allowance,
    ) -> Result<Allowance, ScriptError> {
        engine::run(&self.engine, ast, &Inputs::new(request, key), limits)
    }

    /// Accepts a new script for `scope` if it compiles and passes its dry run; stores a new
    /// version, swaps it in and writes the file.
    pub async fn save(
        &self,
        scope: &RuleScope,
        text: &str,
        actor: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<RuleVersion, RuleError> {
        let _change = self.changes.lock().await;
        self.save_locked(scope, text, actor, note, now).await
    }

    async fn save_locked(
        &self,
        scope: &RuleScope,
        text: &str,
        actor: &str,
        note: Option<&str>,
        now: i64,
    ) -> Result<RuleVersion, RuleError> {
        let ast = engine::compile(&self.engine, text).map_err(|e| RuleError::Rejected(vec![e]))?;
        self.dry_run_ast(&ast, sample_request(), sample_key(), sample_limits())
            .map_err(|e| RuleError::Rejected(vec![e]))?;
        let version = store::insert(&self.db, scope.key(), text, actor, note, now).await?;
        self.install(scope.key(), &scope.label(), ast, version.version);
        self.problems.write().unwrap_or_else(|p| p.into_inner()).remove(scope.key());
        self.write_file(scope, text)?;
        Ok(version)
    }

    /// Makes an earlier version serve again (as a new version).
    pub async fn rollback(
        &self,
        scope: &RuleScope,
        version: i64,
        actor: &str,
        now: i64,
    ) -> Result<RuleVersion, RuleError> {
        let old = store::get(&self.db, scope.key(), version).await?.ok_or(RuleError::NoVersion(version))?;
        self.save(scope, &old.body, actor, Some(&format!("rollback to v{version}")), now).await
    }

    /// Serves what the store holds for `scope_key` (`default` or a tenant id), saved by another
    /// node or process, and writes it to this node's file, so the file agrees and is not taken
    /// for an edit.
    pub async fn reload(&self, scope_key: &str) {
        let _change = self.changes.lock().await;
        let latest = match store::latest(&self.db, scope_key).await {
            Ok(Some(v)) => v,
            Ok(None) => return,
            Err(e) => return tracing::warn!(scope = scope_key, error = %e, "cannot reload a rule"),
        };
        let scope = if scope_key == "default" {
            RuleScope::Default
        } else {
            match angage_store::tenants::by_id(&self.db, scope_key).await {
                Ok(t) => RuleScope::Tenant { id: t.id, slug: t.slug },
                Err(e) => return tracing::warn!(scope = scope_key, error = %e, "cannot reload a rule"),
            }
        };
        let serving = self.compiled.read().unwrap_or_else(|p| p.into_inner()).get(scope_key).cloned();
        if serving.is_some_and(|c| c.version == latest.version) {
            return;
        }
        match engine::compile(&self.engine, &latest.body) {
            Ok(ast) => {
                self.install(scope_key, &scope.label(), ast, latest.version);
                if let Err(e) = self.write_file(&scope, &latest.body) {
                    tracing::warn!(rule = %scope.label(), error = %e, "cannot write a reloaded rule's file");
                }
                tracing::info!(rule = %scope.label(), version = latest.version, "rule changed elsewhere; serving it");
            }
            Err(e) => tracing::error!(scope = scope_key, error = %e, "stored rule no longer compiles"),
        }
    }

    /// [`Self::reload`] for every scope the store holds.
    pub async fn reload_all(&self) {
        match store::latest_all(&self.db).await {
            Ok(all) => {
                for v in all {
                    self.reload(&v.scope_key).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot reload the rules"),
        }
    }

    pub async fn current(&self, scope: &RuleScope) -> Result<Option<RuleVersion>, RuleError> {
        Ok(store::latest(&self.db, scope.key()).await?)
    }

    pub async fn versions(&self, scope: &RuleScope) -> Result<Vec<RuleVersion>, RuleError> {
        Ok(store::list(&self.db, scope.key()).await?)
    }

    pub fn problem(&self, scope: &RuleScope) -> Option<RuleProblem> {
        self.problems.read().unwrap_or_else(|p| p.into_inner()).get(scope.key()).cloned()
    }

    fn write_file(&self, scope: &RuleScope, text: &str) -> std::io::Result<()> {
        let path = self.dir.join(scope.file());
        if std::fs::read_to_string(&path).is_ok_and(|on_disk| on_disk == text) {
            return Ok(());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("rhai.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, path)
    }

    /// Reads a scope's file: a changed, valid script becomes a new version; an invalid one is
    /// recorded and the serving version stays.
    pub async fn load_file(&self, scope: &RuleScope, now: i64) {
        let _change = self.changes.lock().await;
        let path = self.dir.join(scope.file());
        let Ok(text) = tokio::fs::read_to_string(&path).await else { return };
        let current = self.current(scope).await.ok().flatten();
        if current.as_ref().is_some_and(|c| c.body == text) {
            return;
        }
        match self.save_locked(scope, &text, "file", None, now).await {
            Ok(v) => tracing::info!(rule = %scope.label(), version = v.version, "rule file accepted"),
            Err(RuleError::Rejected(errors)) => {
                tracing::warn!(file = %path.display(), errors = ?errors, "rule file rejected; the previous version keeps serving");
                metrics::counter!("angage_rule_rejections_total").increment(1);
                self.problems
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(scope.key().to_owned(), RuleProblem { errors, source: "file".into(), at: now });
            }
            Err(e) => tracing::error!(file = %path.display(), error = %e, "rule file not loaded"),
        }
    }

    /// Brings every file on disk into the store (start-up and after a watcher event).
    pub async fn sync_files(&self, now: i64) {
        self.load_file(&RuleScope::Default, now).await;
        let Ok(mut entries) = tokio::fs::read_dir(self.dir.join("tenants")).await else { return };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(slug) = name.strip_suffix(".rhai") else { continue };
            if let Ok(tenant) = angage_store::tenants::by_slug(&self.db, slug).await {
                self.load_file(&RuleScope::Tenant { id: tenant.id, slug: tenant.slug }, now).await;
            }
        }
    }
}

/// What a dry run uses when no sample is given: a read of customers by a live key.
pub fn sample_request() -> RuleRequest {
    RuleRequest {
        method: "GET".into(),
        route: "/v1/customers".into(),
        path: "/v1/customers".into(),
        module: "customers".into(),
        operation: "read".into(),
        time_ms: 0,
        timezone: "UTC".into(),
    }
}

pub fn sample_key() -> RuleKey {
    RuleKey {
        id: "key_sample".into(),
        name: "Sample".into(),
        environment: "live".into(),
        grants: Default::default(),
    }
}

pub fn sample_limits() -> Allowance {
    Allowance::new(Limits {
        per_second: Some(10),
        per_minute: Some(100),
        per_hour: Some(2000),
        per_day: Some(20000),
        burst: Some(20),
    })
}
