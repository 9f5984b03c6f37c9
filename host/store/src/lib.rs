//! Users, the login audit trail, refresh tokens, the codes waiting for their
//! exchange and the signing keys, in a real database: SQLite in the data
//! directory by default (WAL mode), or PostgreSQL when several hosts share
//! the work. The schema is in `host/store/migrations/{sqlite,postgres}/`, one
//! folder per backend with the same versions.
//!
//! One set of SQL serves both, through sqlx's `Any` driver: plain types
//! (TEXT, BIGINT, INTEGER 0/1), `$n` placeholders, `ON CONFLICT`,
//! `RETURNING`. What differs is confined to [`Backend`] checks here.
//!
//! It must not decide login outcomes, mint tokens or run plugins, and depends
//! only on `claimsmith-core` and `claimsmith-config`: it stores the core
//! shapes the pipeline and the service hand it. The decisions it
//! makes are the ones only the database can make for several hosts at once:
//! a code is redeemed once ([`Store::redeem_code`]), a refresh token is good
//! once and presenting it again revokes its whole family
//! ([`Store::consume_refresh_token`]; rotation with reuse detection, RFC 6819
//! §5.2.2.3, OAuth 2.1 §4.3.1), and one host at a time prunes
//! ([`Store::prune_expired`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool};
use sqlx::{ConnectOptions as _, Executor as _};

mod plugin_canaries;
mod plugin_shadows;
mod plugin_versions;
mod roles;
mod schema;

pub use plugin_canaries::Canary;
pub use plugin_shadows::{MAX_SHADOW_DIFFERENCES, Shadow, ShadowTally};
pub use plugin_versions::{Deployment, NewPluginVersion, PluginVersion};
pub use roles::{Authorization, AuthorizationQuery, HeldPermission, Permission, Role, RoleChange};

use claimsmith_config::{Database, Synchronous};

use claimsmith_core::{StoredUser, UserRecord};

/// How long a connection waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
const BUSY_TIMEOUT_PRAGMA: &str = "PRAGMA busy_timeout = 5000";

/// The PostgreSQL advisory lock held while a host prunes expired rows: the
/// others skip their turn instead of deleting the same rows at once.
const PRUNE_LOCK: i64 = 0x636c_6169_6d73_0001;
/// Held while a host adds the first signing key of an empty database.
const FIRST_KEY_LOCK: i64 = 0x636c_6169_6d73_0002;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the directory of database {}: {error}", path.display())]
    CreateDir {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("cannot open database {database}: {error}")]
    Open {
        database: String,
        error: sqlx::Error,
    },

    #[error("cannot migrate database {database}: {error}")]
    Migrate {
        database: String,
        error: sqlx::migrate::MigrateError,
    },

    #[error("database operation {op} failed: {error}")]
    Query {
        op: &'static str,
        error: sqlx::Error,
    },

    #[error("{op}: cannot convert {what} to or from JSON: {error}")]
    Json {
        op: &'static str,
        what: &'static str,
        error: serde_json::Error,
    },

    #[error("{op}: invalid stored row: {detail}")]
    Corrupt { op: &'static str, detail: String },
}

/// Which database the store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The database. Cheap to clone: clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}
/// A stored user as [`Store::load_user`] returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredUserRow {
    /// The state the pipeline starts a login from.
    pub user: StoredUser,
    /// The profile snapshot of the last successful login.
    pub profile: Map<String, Value>,
    /// RFC 3339: the time of the first successful login.
    pub created_at: String,
}

/// One login attempt, whatever its outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// RFC 3339.
    pub at: String,
    /// None when the login failed before a user was known.
    pub user_id: Option<String>,
    pub client_id: String,
    pub connection: String,
    pub outcome: AuditOutcome,
    /// The pipeline's `Vec<StepReport>` serialized (plugin names, durations,
    /// status); stored as JSON text.
    pub steps: Value,
    /// The id an app was given with an error, and the log lines carry.
    #[serde(default)]
    pub correlation_id: Option<String>,
    /// The chain that ran the login ([`claimsmith_pipeline::Pipeline::chain_version`]);
    /// None when it failed before the chain ran.
    #[serde(default)]
    pub chain_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum AuditOutcome {
    Minted,
    Denied { reason: String },
    Failed { error: String },
}

/// A refresh token's grant as the store keeps it: the family and client it
/// is revoked and presented by, and what it stands for, `sealed` by the
/// service under its key and bound to the token. The store neither reads
/// nor checks the seal: whoever can write the database cannot forge one.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredGrant {
    /// Random id shared by a chain of rotated tokens.
    pub family: String,
    pub client_id: String,
    pub sealed: String,
}

/// One `logins` row: at, user_id, client_id, connection, outcome, detail,
/// steps, correlation_id, chain_version.
type AuditRow = (
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

/// A `logins` row's id, then an [`AuditRow`].
type NumberedAuditRow = (
    i64,
    String,
    Option<String>,
    String,
    String,
    String,
    Option<String>,
    String,
    Option<String>,
    Option<String>,
);

/// The columns of an [`AuditRow`], as a literal for `concat!`: sqlx takes
/// only SQL known at compile time unless told otherwise.
macro_rules! audit_columns {
    () => {
        "at, user_id, client_id, connection, outcome, detail, steps, correlation_id, chain_version"
    };
}

/// One page of a listing, and how many there are in all.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
}

/// A user as the Management API lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserListing {
    pub user_id: String,
    pub row: StoredUserRow,
}

/// An audit row with its id (the Management API's `log_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoginListing {
    pub id: i64,
    pub entry: AuditEntry,
}

/// Which audit rows a listing wants; None matches any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginFilter {
    pub user_id: Option<String>,
    pub client_id: Option<String>,
    /// `minted`, `denied` or `failed`.
    pub outcome: Option<String>,
}

/// What an administrator did, for the `admin_actions` trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminAction {
    /// RFC 3339.
    pub at: String,
    /// The Management API client, or the console user.
    pub actor: String,
    pub action: String,
    pub target: String,
    /// What was asked (never a secret value).
    pub detail: Value,
}

/// What became of a code presented for exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redemption {
    /// This presentation won: what the code stands for, as it was sealed.
    Redeemed { sealed: String },
    /// It was redeemed before: a replay. `family` is the refresh token
    /// family the first redemption started.
    Replayed { family: Option<String> },
    /// Unknown or expired.
    Unknown,
}

/// What one pruning pass deleted; None from [`Store::prune_expired`] when
/// another host was pruning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    pub refresh_tokens: u64,
    pub codes: u64,
    pub users_signing_in: u64,
    pub spent_logins: u64,
    pub suspended_logins: u64,
    pub ended_console_sessions: u64,
    pub audit_rows: u64,
}

/// How long [`Store::prune_expired`] keeps rows past their use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A used or expired code is remembered this long, to spot a replay.
    pub code_memory_secs: u64,
    /// The audit trail (`logins`) keeps rows this long.
    pub audit_trail_secs: u64,
}

/// One row of `signing_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRow {
    pub kid: String,
    pub algorithm: String,
    /// The PKCS#8 private key, sealed under the key-encryption key.
    pub sealed_pkcs8: String,
    /// Unix seconds: published from then.
    pub created_at: u64,
    /// Unix seconds: signs from then, until a later key signs.
    pub signs_from: u64,
}

impl Store {
    /// Opens the configured database and brings its schema up to date.
    pub async fn open(database: &Database, synchronous: Synchronous) -> Result<Self, StoreError> {
        match database {
            Database::Sqlite(path) => Self::open_sqlite(path, synchronous).await,
            Database::Postgres(url) => Self::open_postgres(url.expose()).await,
        }
    }

    /// Opens (creating if needed) `<path>` as SQLite in WAL mode, foreign keys
    /// on, busy timeout 5 s, `synchronous` as configured, runs the migrations.
    pub async fn open_sqlite(path: &Path, synchronous: Synchronous) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let absolute = absolute_sqlite_path(path).await?;
        let url = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(&absolute)
            .create_if_missing(true)
            .to_url_lossy();
        let options = AnyConnectOptions::from_url(&url).map_err(|error| StoreError::Open {
            database: shown.clone(),
            error,
        })?;
        let pool = connect_sqlite(options, synchronous, &shown).await?;

        // SQLite silently keeps its old journal mode where WAL is not possible
        // (some network file systems): say so rather than run slower unawares.
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&pool)
            .await
            .map_err(|error| StoreError::Open {
                database: shown.clone(),
                error,
            })?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %shown, %mode, "database is not in WAL mode");
        }

        schema::migrator(Backend::Sqlite)
            .run(&pool)
            .await
            .map_err(|error| StoreError::Migrate {
                database: shown,
                error,
            })?;
        Ok(Self {
            pool,
            backend: Backend::Sqlite,
        })
    }

    /// Connects to PostgreSQL at `url` and runs the migrations. Several hosts
    /// may do this at once: sqlx's migrator takes an advisory lock.
    pub async fn open_postgres(url: &str) -> Result<Self, StoreError> {
        let shown = without_password(url);
        let options: AnyConnectOptions = url.parse().map_err(|error| StoreError::Open {
            database: shown.clone(),
            error,
        })?;
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|error| StoreError::Open {
                database: shown.clone(),
                error,
            })?;
        schema::migrator(Backend::Postgres)
            .run(&pool)
            .await
            .map_err(|error| StoreError::Migrate {
                database: shown,
                error,
            })?;
        Ok(Self {
            pool,
            backend: Backend::Postgres,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Whether the database answers a query now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(query_error("ping"))
    }

    /// Closes every connection; later queries fail. For shutdown, and for
    /// tests of what the service says without its database.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// SQLite's own check of the database (`PRAGMA integrity_check`): "ok"
    /// when it is sound, else what is wrong.
    pub async fn integrity_check(&self) -> Result<String, StoreError> {
        sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&self.pool)
            .await
            .map_err(query_error("integrity_check"))
    }

    /// The stored state the pipeline starts a login from; None for a first
    /// login.
    pub async fn load_user(&self, user_id: &str) -> Result<Option<StoredUserRow>, StoreError> {
        const OP: &str = "load_user";
        let row: Option<(String, String, String, i64, Option<String>, String)> = sqlx::query_as(
            "SELECT profile, user_metadata, app_metadata, logins_count, last_login, created_at \
                 FROM users WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error(OP))?;
        let Some((profile, user_metadata, app_metadata, logins_count, last_login, created_at)) =
            row
        else {
            return Ok(None);
        };
        let logins_count = u32::try_from(logins_count).map_err(|_| StoreError::Corrupt {
            op: OP,
            detail: format!("user {user_id}: logins_count {logins_count} is out of range"),
        })?;
        Ok(Some(StoredUserRow {
            user: StoredUser {
                user_metadata: from_json(OP, "user_metadata", &user_metadata)?,
                app_metadata: from_json(OP, "app_metadata", &app_metadata)?,
                logins_count,
                last_login,
                created_at: Some(created_at.clone()),
                ..StoredUser::default()
            },
            profile: from_json(OP, "profile", &profile)?,
            created_at,
        }))
    }

    /// Shows `row` as user `user_id` while the login `login_key` runs its
    /// chain, until `expires_at` (unix seconds) at the latest; see
    /// [`Store::user_signing_in`].
    pub async fn begin_sign_in(
        &self,
        login_key: &str,
        user_id: &str,
        row: &StoredUserRow,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        const OP: &str = "begin_sign_in";
        let json = serde_json::to_string(row).map_err(|error| StoreError::Json {
            op: OP,
            what: "row_json",
            error,
        })?;
        sqlx::query(
            "INSERT INTO users_signing_in (login_key, user_id, row_json, expires_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(login_key)
        .bind(user_id)
        .bind(json)
        .bind(to_db_seconds(expires_at))
        .execute(&self.pool)
        .await
        .map_err(query_error(OP))?;
        Ok(())
    }

    /// Ends what [`Store::begin_sign_in`] showed, whatever the login's outcome.
    pub async fn end_sign_in(&self, login_key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM users_signing_in WHERE login_key = $1")
            .bind(login_key)
            .execute(&self.pool)
            .await
            .map_err(query_error("end_sign_in"))?;
        Ok(())
    }

    /// The user as a login now signing them in shows them (the latest such
    /// login, if several), for the Management API to answer during a chain.
    pub async fn user_signing_in(
        &self,
        user_id: &str,
        now: u64,
    ) -> Result<Option<StoredUserRow>, StoreError> {
        const OP: &str = "user_signing_in";
        let json: Option<String> = sqlx::query_scalar(
            "SELECT row_json FROM users_signing_in WHERE user_id = $1 AND expires_at >= $2 \
             ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(to_db_seconds(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error(OP))?;
        json.map(|json| from_json(OP, "row_json", &json))
            .transpose()
    }

    /// Records one login attempt in the audit trail and, when it minted,
    /// upserts its user (JIT provisioning) and stores the authorization code
    /// a sign-in answers with, in one transaction: a login whose tokens went
    /// out always has its rows, one recorded as minted always has its code,
    /// and one that failed to store any of them leaves none. A `captured`
    /// login (a capturing plugin ran) is kept beside its audit row, under
    /// the row's id; the id is returned.
    pub async fn record_login(
        &self,
        entry: &AuditEntry,
        minted: Option<SavedUser<'_>>,
        code: Option<NewCode<'_>>,
        captured: Option<&Value>,
    ) -> Result<i64, StoreError> {
        const OP: &str = "record_login";
        let mut transaction = self.pool.begin().await.map_err(query_error(OP))?;
        if let Some(minted) = minted {
            upsert_user(&mut transaction, minted).await?;
            if let Some(names) = minted.upstream_roles {
                roles::sync_upstream_roles(&mut transaction, &minted.user.user_id, names)
                    .await
                    .map_err(query_error(OP))?;
            }
        }
        if let Some(code) = code {
            insert_code(&mut transaction, code).await?;
        }
        let id = insert_audit_row(&mut transaction, entry).await?;
        if let Some(captured) = captured {
            sqlx::query("INSERT INTO login_captures (login_id, captured) VALUES ($1, $2)")
                .bind(id)
                .bind(to_json(OP, "captured", captured)?)
                .execute(&mut *transaction)
                .await
                .map_err(query_error(OP))?;
        }
        transaction.commit().await.map_err(query_error(OP))?;
        Ok(id)
    }

    /// The login kept beside audit row `id` by [`Store::record_login`], if
    /// one was captured and the row is still in the trail.
    pub async fn login_capture(&self, id: i64) -> Result<Option<Value>, StoreError> {
        const OP: &str = "login_capture";
        let captured: Option<String> =
            sqlx::query_scalar("SELECT captured FROM login_captures WHERE login_id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(query_error(OP))?;
        captured
            .map(|json| from_json(OP, "captured", &json))
            .transpose()
    }

    /// Marks the pending login of `upstream_state` spent, until `expires_at`
    /// (Unix seconds, when its sealed cookie expires). True for the first
    /// callback of that login on any host, false for every later one.
    pub async fn spend_pending_login(
        &self,
        upstream_state: &str,
        expires_at: u64,
    ) -> Result<bool, StoreError> {
        self.record_hash_once(
            "INSERT INTO spent_logins (state_hash, expires_at) VALUES ($1, $2) \
             ON CONFLICT (state_hash) DO NOTHING",
            upstream_state,
            expires_at,
            "spend_pending_login",
        )
        .await
    }

    /// Keeps a sign-in an action sent to a page, `sealed` by the service,
    /// under its `state` until `expires_at` (Unix seconds).
    pub async fn suspend_login(
        &self,
        state: &str,
        sealed: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO suspended_logins (state_hash, sealed, expires_at) VALUES ($1, $2, $3)",
        )
        .bind(token_hash(state))
        .bind(sealed)
        .bind(to_db_seconds(expires_at))
        .execute(&self.pool)
        .await
        .map_err(query_error("suspend_login"))?;
        Ok(())
    }

    /// The sealed sign-in waiting under `state`, unless it expired by `now`
    /// or was taken. Reading it takes nothing: see
    /// [`Store::take_suspended_login`].
    pub async fn suspended_login(
        &self,
        state: &str,
        now: u64,
    ) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar(
            "SELECT sealed FROM suspended_logins WHERE state_hash = $1 AND expires_at > $2",
        )
        .bind(token_hash(state))
        .bind(to_db_seconds(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("suspended_login"))
    }

    /// Takes the sign-in waiting under `state` for good: true when this call
    /// took it, false when another (on any host) did first.
    pub async fn take_suspended_login(&self, state: &str) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM suspended_logins WHERE state_hash = $1")
            .bind(token_hash(state))
            .execute(&self.pool)
            .await
            .map_err(query_error("take_suspended_login"))?
            .rows_affected();
        Ok(deleted == 1)
    }

    /// Runs `insert` (an `INSERT ... ON CONFLICT DO NOTHING` of a hash and
    /// an expiry) for the SHA-256 of `value`: true when this call recorded
    /// it, false when it was recorded before, on any host.
    async fn record_hash_once(
        &self,
        insert: &'static str,
        value: &str,
        expires_at: u64,
        op: &'static str,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(insert)
            .bind(token_hash(value))
            .bind(to_db_seconds(expires_at))
            .execute(&self.pool)
            .await
            .map_err(query_error(op))?
            .rows_affected();
        Ok(inserted == 1)
    }

    /// Ends the console session whose id is `session_id` on every host: it
    /// is refused from now on, though its sealed cookie is good until
    /// `expires_at` (Unix seconds).
    pub async fn end_console_session(
        &self,
        session_id: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        // Signing out twice ends it once: whether this call was first does
        // not matter.
        self.record_hash_once(
            "INSERT INTO ended_console_sessions (session_hash, expires_at) VALUES ($1, $2) \
             ON CONFLICT (session_hash) DO NOTHING",
            session_id,
            expires_at,
            "end_console_session",
        )
        .await
        .map(drop)
    }

    /// Whether the console session `session_id` was ended by signing out.
    pub async fn console_session_ended(&self, session_id: &str) -> Result<bool, StoreError> {
        let ended: Option<i64> = sqlx::query_scalar(
            "SELECT expires_at FROM ended_console_sessions WHERE session_hash = $1",
        )
        .bind(token_hash(session_id))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error("console_session_ended"))?;
        Ok(ended.is_some())
    }

    /// The audit entries of a user, oldest first (for tests and operators).
    pub async fn audit_for_user(&self, user_id: &str) -> Result<Vec<AuditEntry>, StoreError> {
        const OP: &str = "audit_for_user";
        let rows: Vec<AuditRow> = sqlx::query_as(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM logins WHERE user_id = $1 ORDER BY id"
        ))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        rows.into_iter().map(|row| audit_entry(OP, row)).collect()
    }

    /// The `limit` newest audit entries, newest first, whoever they are for.
    pub async fn recent_logins(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        const OP: &str = "recent_logins";
        let rows: Vec<AuditRow> = sqlx::query_as(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM logins ORDER BY id DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        rows.into_iter().map(|row| audit_entry(OP, row)).collect()
    }

    /// Users whose id or email is `query` or starts with it (an email
    /// compared without case), by user id, `limit` from `offset`.
    pub async fn search_users(
        &self,
        query: &str,
        offset: u64,
        limit: u64,
    ) -> Result<Page<UserListing>, StoreError> {
        const OP: &str = "search_users";
        const MATCHES: &str = "(user_id = $1 OR email = $2 OR user_id LIKE $3 ESCAPE '\\' \
             OR email LIKE $4 ESCAPE '\\')";
        let prefix = |text: &str| format!("{}%", like_escaped(text));
        let email = query.to_lowercase();
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM users WHERE {MATCHES}"
        )))
        .bind(query)
        .bind(&email)
        .bind(prefix(query))
        .bind(prefix(&email))
        .fetch_one(&self.pool)
        .await
        .map_err(query_error(OP))?;
        let ids: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT user_id FROM users WHERE {MATCHES} ORDER BY user_id LIMIT $5 OFFSET $6"
        )))
        .bind(query)
        .bind(&email)
        .bind(prefix(query))
        .bind(prefix(&email))
        .bind(to_db_seconds(limit))
        .bind(to_db_seconds(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        Ok(Page {
            items: self.listings(ids).await?,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    /// The users `ids` name, in their order (one that vanished meanwhile is
    /// left out).
    async fn listings(&self, ids: Vec<String>) -> Result<Vec<UserListing>, StoreError> {
        let mut users = Vec::with_capacity(ids.len());
        for user_id in ids {
            if let Some(row) = self.load_user(&user_id).await? {
                users.push(UserListing { user_id, row });
            }
        }
        Ok(users)
    }

    /// The users whose email is `email` exactly (without case), by user id,
    /// at most `limit` (Auth0's `users-by-email`).
    pub async fn users_with_email(
        &self,
        email: &str,
        limit: u64,
    ) -> Result<Vec<UserListing>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT user_id FROM users WHERE email = $1 ORDER BY user_id LIMIT $2",
        )
        .bind(email.to_lowercase())
        .bind(to_db_seconds(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error("users_with_email"))?;
        self.listings(ids).await
    }

    /// Replaces a user's metadata (the caller merged it); false when there
    /// is no such user.
    pub async fn update_metadata(
        &self,
        user_id: &str,
        user_metadata: &Map<String, Value>,
        app_metadata: &Map<String, Value>,
    ) -> Result<bool, StoreError> {
        const OP: &str = "update_metadata";
        let updated = sqlx::query(
            "UPDATE users SET user_metadata = $2, app_metadata = $3 WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(to_json(OP, "user_metadata", user_metadata)?)
        .bind(to_json(OP, "app_metadata", app_metadata)?)
        .execute(&self.pool)
        .await
        .map_err(query_error(OP))?
        .rows_affected();
        Ok(updated == 1)
    }

    /// Audit rows matching `filter`, newest first, `limit` from `offset`.
    pub async fn logins(
        &self,
        filter: &LoginFilter,
        offset: u64,
        limit: u64,
    ) -> Result<Page<LoginListing>, StoreError> {
        const OP: &str = "logins";
        const MATCHES: &str = "($1 IS NULL OR user_id = $1) AND ($2 IS NULL OR client_id = $2) \
             AND ($3 IS NULL OR outcome = $3)";
        let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM logins WHERE {MATCHES}"
        )))
        .bind(filter.user_id.as_deref())
        .bind(filter.client_id.as_deref())
        .bind(filter.outcome.as_deref())
        .fetch_one(&self.pool)
        .await
        .map_err(query_error(OP))?;
        let rows: Vec<NumberedAuditRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT id, {} FROM logins WHERE {MATCHES} ORDER BY id DESC LIMIT $4 OFFSET $5",
            audit_columns!()
        )))
        .bind(filter.user_id.as_deref())
        .bind(filter.client_id.as_deref())
        .bind(filter.outcome.as_deref())
        .bind(to_db_seconds(limit))
        .bind(to_db_seconds(offset))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        let items = rows
            .into_iter()
            .map(
                |(
                    id,
                    at,
                    user_id,
                    client_id,
                    connection,
                    outcome,
                    detail,
                    steps,
                    correlation_id,
                    chain_version,
                )| {
                    audit_entry(
                        OP,
                        (
                            at,
                            user_id,
                            client_id,
                            connection,
                            outcome,
                            detail,
                            steps,
                            correlation_id,
                            chain_version,
                        ),
                    )
                    .map(|entry| LoginListing { id, entry })
                },
            )
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            total: u64::try_from(total).unwrap_or(0),
        })
    }

    /// The audit row `id`.
    pub async fn login(&self, id: i64) -> Result<Option<LoginListing>, StoreError> {
        const OP: &str = "login";
        let row: Option<AuditRow> = sqlx::query_as(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM logins WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error(OP))?;
        row.map(|row| audit_entry(OP, row).map(|entry| LoginListing { id, entry }))
            .transpose()
    }

    /// Appends to the trail of what administrators did.
    pub async fn record_admin_action(&self, action: &AdminAction) -> Result<(), StoreError> {
        const OP: &str = "record_admin_action";
        sqlx::query(
            "INSERT INTO admin_actions (at, actor, action, target, detail) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&action.at)
        .bind(&action.actor)
        .bind(&action.action)
        .bind(&action.target)
        .bind(to_json(OP, "detail", &action.detail)?)
        .execute(&self.pool)
        .await
        .map_err(query_error(OP))?;
        Ok(())
    }

    /// The `limit` newest admin actions, newest first.
    pub async fn admin_actions(&self, limit: u64) -> Result<Vec<AdminAction>, StoreError> {
        const OP: &str = "admin_actions";
        let rows: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "SELECT at, actor, action, target, detail FROM admin_actions \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(to_db_seconds(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        rows.into_iter()
            .map(|(at, actor, action, target, detail)| {
                Ok(AdminAction {
                    detail: from_json(OP, "detail", &detail)?,
                    at,
                    actor,
                    action,
                    target,
                })
            })
            .collect()
    }

    /// Stores a refresh token by the sha256 hex of its value (never the value
    /// itself), expiring at `expires_at` (Unix seconds), with the token it
    /// was `rotated_from` if any.
    ///
    /// A token added to a family already revoked for reuse is stored revoked:
    /// a rotation that raced the reuse detection stays dead.
    pub async fn insert_refresh_token(
        &self,
        token: &str,
        rotated_from: Option<&str>,
        grant: &StoredGrant,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        const OP: &str = "insert_refresh_token";
        sqlx::query(
            "INSERT INTO refresh_tokens \
                 (token_hash, family, sealed_grant, expires_at, used, revoked, client_id, \
                  parent_hash) \
             VALUES ($1, $2, $3, $4, 0, 0, $5, $6)",
        )
        .bind(token_hash(token))
        .bind(&grant.family)
        .bind(&grant.sealed)
        .bind(to_db_seconds(expires_at))
        .bind(&grant.client_id)
        .bind(rotated_from.map(token_hash))
        .execute(&self.pool)
        .await
        .map_err(query_error(OP))?;
        // Written first, looked at second (see `revoke_refresh_family`): a
        // token of a family revoked before, or while, it was written is
        // revoked too.
        sqlx::query(
            "UPDATE refresh_tokens SET revoked = 1 \
             WHERE token_hash = $1 AND revoked = 0 AND EXISTS \
                 (SELECT 1 FROM refresh_tokens AS other WHERE other.family = $2 \
                      AND other.revoked = 1)",
        )
        .bind(token_hash(token))
        .bind(&grant.family)
        .execute(&self.pool)
        .await
        .map_err(query_error(OP))?;
        Ok(())
    }

    /// Deletes the refresh token families whose every token expired before
    /// `now` (Unix seconds), used, revoked or not: while a family lives its
    /// spent tokens are remembered, so that presenting one (a successor a
    /// retry expired, say) still revokes it. Then the codes that expired more than
    /// `retention.code_memory_secs` before it (kept that long to spot a
    /// replay), the spent pending logins and the views of users signing in
    /// that expired, and the audit rows older than
    /// `retention.audit_trail_secs`. On PostgreSQL one host at a time
    /// prunes: the others get None.
    pub async fn prune_expired(
        &self,
        now: u64,
        retention: Retention,
    ) -> Result<Option<Pruned>, StoreError> {
        const OP: &str = "prune_expired";
        let mut transaction = self.pool.begin().await.map_err(query_error(OP))?;
        if self.backend == Backend::Postgres {
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
                .bind(PRUNE_LOCK)
                .fetch_one(&mut *transaction)
                .await
                .map_err(query_error(OP))?;
            if !locked {
                return Ok(None);
            }
        }
        let code_cutoff = now.saturating_sub(retention.code_memory_secs);
        let audit_cutoff = claimsmith_core::rfc3339(now.saturating_sub(retention.audit_trail_secs));
        let audit_rows = sqlx::query("DELETE FROM logins WHERE at < $1")
            .bind(audit_cutoff)
            .execute(&mut *transaction)
            .await
            .map_err(query_error(OP))?
            .rows_affected();
        let mut delete_expired = async |statement: &'static str, before: u64| {
            sqlx::query(statement)
                .bind(to_db_seconds(before))
                .execute(&mut *transaction)
                .await
                .map(|done| done.rows_affected())
                .map_err(query_error(OP))
        };
        let pruned = Pruned {
            refresh_tokens: delete_expired(
                "DELETE FROM refresh_tokens WHERE family IN (SELECT family FROM refresh_tokens \
                     GROUP BY family HAVING MAX(expires_at) < $1)",
                now,
            )
            .await?,
            codes: delete_expired(
                "DELETE FROM authorization_codes WHERE expires_at < $1",
                code_cutoff,
            )
            .await?,
            users_signing_in: delete_expired(
                "DELETE FROM users_signing_in WHERE expires_at < $1",
                now,
            )
            .await?,
            spent_logins: delete_expired("DELETE FROM spent_logins WHERE expires_at < $1", now)
                .await?,
            suspended_logins: delete_expired(
                "DELETE FROM suspended_logins WHERE expires_at < $1",
                now,
            )
            .await?,
            ended_console_sessions: delete_expired(
                "DELETE FROM ended_console_sessions WHERE expires_at < $1",
                now,
            )
            .await?,
            audit_rows,
        };
        transaction.commit().await.map_err(query_error(OP))?;
        Ok(Some(pruned))
    }

    /// Redeems `code` once, at `now`, recording `family` as the refresh
    /// token family it starts. One conditional UPDATE: of any number of
    /// hosts presenting the same code at once, exactly one sees it unredeemed.
    pub async fn redeem_code(
        &self,
        code: &str,
        family: &str,
        now: u64,
    ) -> Result<Redemption, StoreError> {
        const OP: &str = "redeem_code";
        let hash = token_hash(code);
        let sealed: Option<String> = sqlx::query_scalar(
            "UPDATE authorization_codes SET redeemed = 1, family = $2 \
             WHERE code_hash = $1 AND redeemed = 0 AND expires_at > $3 \
             RETURNING sealed",
        )
        .bind(&hash)
        .bind(family)
        .bind(to_db_seconds(now))
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error(OP))?;
        if let Some(sealed) = sealed {
            return Ok(Redemption::Redeemed { sealed });
        }
        let replayed: Option<Option<String>> = sqlx::query_scalar(
            "SELECT family FROM authorization_codes WHERE code_hash = $1 AND redeemed = 1",
        )
        .bind(&hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error(OP))?;
        Ok(match replayed {
            Some(family) => Redemption::Replayed { family },
            None => Redemption::Unknown,
        })
    }

    /// Every signing key, oldest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, StoreError> {
        const OP: &str = "signing_keys";
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
            "SELECT kid, algorithm, sealed_pkcs8, created_at, signs_from \
             FROM signing_keys ORDER BY signs_from, created_at",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(query_error(OP))?;
        rows.into_iter()
            .map(|(kid, algorithm, sealed_pkcs8, created_at, signs_from)| {
                let seconds = |value: i64| {
                    u64::try_from(value).map_err(|_| StoreError::Corrupt {
                        op: OP,
                        detail: format!("signing key {kid}: negative time {value}"),
                    })
                };
                Ok(SigningKeyRow {
                    created_at: seconds(created_at)?,
                    signs_from: seconds(signs_from)?,
                    kid,
                    algorithm,
                    sealed_pkcs8,
                })
            })
            .collect()
    }

    /// Adds a signing key. With `only_if_none`, only when the table is
    /// empty (the first start of a deployment, which several hosts may race):
    /// false when another key was there first.
    pub async fn insert_signing_key(
        &self,
        row: &SigningKeyRow,
        only_if_none: bool,
    ) -> Result<bool, StoreError> {
        const OP: &str = "insert_signing_key";
        let mut transaction = self.pool.begin().await.map_err(query_error(OP))?;
        if self.backend == Backend::Postgres && only_if_none {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(FIRST_KEY_LOCK)
                .execute(&mut *transaction)
                .await
                .map_err(query_error(OP))?;
        }
        // One statement that writes: SQLite runs it under its write lock, so
        // the check and the insert cannot be split by another writer.
        let inserted = sqlx::query(
            "INSERT INTO signing_keys (kid, algorithm, sealed_pkcs8, created_at, signs_from) \
             SELECT $1, $2, $3, $4, $5 \
             WHERE $6 = 0 OR NOT EXISTS (SELECT 1 FROM signing_keys)",
        )
        .bind(&row.kid)
        .bind(&row.algorithm)
        .bind(&row.sealed_pkcs8)
        .bind(to_db_seconds(row.created_at))
        .bind(to_db_seconds(row.signs_from))
        .bind(i64::from(only_if_none))
        .execute(&mut *transaction)
        .await
        .map_err(query_error(OP))?
        .rows_affected();
        transaction.commit().await.map_err(query_error(OP))?;
        Ok(inserted == 1)
    }

    /// Deletes the signing keys `kids` (retired ones).
    pub async fn delete_signing_keys(&self, kids: &[String]) -> Result<(), StoreError> {
        for kid in kids {
            sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
                .bind(kid)
                .execute(&self.pool)
                .await
                .map_err(query_error("delete_signing_keys"))?;
        }
        Ok(())
    }

    /// Atomically consumes a refresh token (rotation): returns its grant and
    /// marks it used when it exists, is unused, not revoked and not expired at
    /// `now` (Unix seconds; a token is expired from `expires_at` on).
    ///
    /// A token presented a second time returns None AND revokes every token of
    /// the same family (reuse detection, RFC 6819 §5.2.2.3 / OAuth 2.1
    /// §4.3.1): one of the two presenters is not the legitimate client, and we
    /// cannot tell which. Except within `grace_secs` of its first use while
    /// no token rotated from it was used: that is a client
    /// retrying after losing the answer (or after the refresh failed). The
    /// retry gets the grant again and the unused successor is expired, so at
    /// most one live token remains.
    ///
    /// Presented by a client other than the one it was issued to, it is left
    /// as it is and None is returned: another client cannot burn it.
    pub async fn consume_refresh_token(
        &self,
        token: &str,
        client_id: &str,
        now: u64,
        grace_secs: u64,
    ) -> Result<Option<StoredGrant>, StoreError> {
        const OP: &str = "consume_refresh_token";
        let hash = token_hash(token);
        // One statement: of two concurrent presentations exactly one sees
        // `used = 0`.
        let grant: Option<(String, String)> = sqlx::query_as(
            "UPDATE refresh_tokens SET used = 1, used_at = $2 \
             WHERE token_hash = $1 AND used = 0 AND revoked = 0 AND expires_at > $2 \
                 AND client_id = $3 \
             RETURNING family, sealed_grant",
        )
        .bind(&hash)
        .bind(to_db_seconds(now))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(query_error(OP))?;
        let stored = |(family, sealed)| StoredGrant {
            family,
            client_id: client_id.to_owned(),
            sealed,
        };
        if let Some(grant) = grant {
            return Ok(Some(stored(grant)));
        }

        let mut transaction = self.pool.begin().await.map_err(query_error(OP))?;
        let retried = retry_within_grace(&mut transaction, &hash, client_id, now, grace_secs)
            .await
            .map_err(query_error(OP))?;
        if let Some(grant) = retried {
            transaction.commit().await.map_err(query_error(OP))?;
            tracing::info!(token_hash = %hash, "refresh token retried within the grace window");
            return Ok(Some(stored(grant)));
        }

        // Not consumable. When it was consumed before, this is a reuse.
        let revoked = revoke_reused_family(&mut transaction, &hash, client_id)
            .await
            .map_err(query_error(OP))?;
        transaction.commit().await.map_err(query_error(OP))?;
        if revoked > 0 {
            tracing::warn!(
                token_hash = %hash,
                tokens = revoked,
                "refresh token reused: its family is revoked"
            );
        }
        Ok(None)
    }

    /// Revokes the family of `token` when it was issued to `client_id`
    /// (RFC 7009): true when a family was revoked.
    pub async fn revoke_refresh_token(
        &self,
        token: &str,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        const OP: &str = "revoke_refresh_token";
        let revoked = sqlx::query(
            "UPDATE refresh_tokens SET revoked = 1 \
             WHERE family = (SELECT family FROM refresh_tokens \
                             WHERE token_hash = $1 AND client_id = $2)",
        )
        .bind(token_hash(token))
        .bind(client_id)
        .execute(&self.pool)
        .await
        .map_err(query_error(OP))?
        .rows_affected();
        Ok(revoked > 0)
    }

    /// Revokes every refresh token of `family`, including any issued later
    /// (until `until`, Unix seconds: past the family's own lifetime).
    ///
    /// A code replayed while its first exchange is still minting finds no
    /// token of the family yet. So the revocation is first recorded for the
    /// family itself (a revoked row no token hashes to), committed, and only
    /// then are the family's tokens revoked; [`Store::insert_refresh_token`]
    /// writes its token first and then looks for that record. Whichever
    /// order the two hosts run in, one of them sees the other's write.
    pub async fn revoke_refresh_family(&self, family: &str, until: u64) -> Result<(), StoreError> {
        const OP: &str = "revoke_refresh_family";
        sqlx::query(
            "INSERT INTO refresh_tokens \
                 (token_hash, family, sealed_grant, expires_at, used, revoked, client_id) \
             VALUES ($1, $2, '', $3, 1, 1, '') ON CONFLICT (token_hash) DO NOTHING",
        )
        .bind(format!("revoked family {family}"))
        .bind(family)
        .bind(to_db_seconds(until))
        .execute(&self.pool)
        .await
        .map_err(query_error(OP))?;
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family = $1")
            .bind(family)
            .execute(&self.pool)
            .await
            .map_err(query_error(OP))?;
        Ok(())
    }
}

/// `path` with its folder created and resolved to an absolute path.
async fn absolute_sqlite_path(path: &Path) -> Result<PathBuf, StoreError> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|error| StoreError::CreateDir {
                path: path.to_owned(),
                error,
            })?;
    }
    // The Any driver takes a URL, and a relative path in one reads as
    // a host (`sqlite://data/../x.db`): the file goes in as an absolute
    // path, its folder resolved.
    Ok(match (path.parent(), path.file_name()) {
        (Some(dir), Some(file)) => tokio::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .await
        .map(|dir| dir.join(file))
        .map_err(|error| StoreError::CreateDir {
            path: path.to_owned(),
            error,
        })?,
        _ => path.to_owned(),
    })
}

/// The SQLite pool, each of its connections set up with the store's pragmas.
async fn connect_sqlite(
    options: AnyConnectOptions,
    synchronous: Synchronous,
    shown: &str,
) -> Result<AnyPool, StoreError> {
    let synchronous = match synchronous {
        Synchronous::Normal => "PRAGMA synchronous = NORMAL",
        Synchronous::Full => "PRAGMA synchronous = FULL",
    };
    sqlx::any::install_default_drivers();
    // The Any driver takes a URL, which carries no pragmas: each new
    // connection sets them. Not pinged before each use: the file cannot
    // go away like a network peer, and each ping is one more hop to the
    // connection's thread (two per login, measured under load).
    AnyPoolOptions::new()
        .test_before_acquire(false)
        .after_connect(move |connection, _| {
            Box::pin(async move {
                for pragma in [
                    "PRAGMA journal_mode = WAL",
                    synchronous,
                    "PRAGMA foreign_keys = ON",
                    BUSY_TIMEOUT_PRAGMA,
                ] {
                    connection.execute(pragma).await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|error| StoreError::Open {
            database: shown.to_owned(),
            error,
        })
}

/// The family and sealed grant of a used token retried within the grace
/// window, its unused successors expired.
async fn retry_within_grace(
    connection: &mut AnyConnection,
    hash: &str,
    client_id: &str,
    now: u64,
    grace_secs: u64,
) -> Result<Option<(String, String)>, sqlx::Error> {
    // A write (that changes nothing) rather than a SELECT: a transaction
    // that reads first and then writes fails at once in SQLite when
    // another writer got in between; one that writes first waits its turn.
    let retried: Option<(String, String)> = sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = used_at \
         WHERE token_hash = $1 AND client_id = $2 AND used = 1 AND revoked = 0 \
             AND expires_at > $3 AND used_at >= $3 - $4 \
             AND NOT EXISTS (SELECT 1 FROM refresh_tokens AS successor \
                 WHERE successor.parent_hash = refresh_tokens.token_hash \
                     AND successor.used = 1) \
         RETURNING family, sealed_grant",
    )
    .bind(hash)
    .bind(client_id)
    .bind(to_db_seconds(now))
    .bind(to_db_seconds(grace_secs))
    .fetch_optional(&mut *connection)
    .await?
    .filter(|_| grace_secs > 0);
    let Some((family, sealed)) = retried else {
        return Ok(None);
    };
    // Expired rather than revoked: a revoked token marks the whole
    // family dead, and the retry's new token belongs to it.
    sqlx::query("UPDATE refresh_tokens SET expires_at = 0 WHERE family = $1 AND used = 0")
        .bind(&family)
        .execute(&mut *connection)
        .await?;
    Ok(Some((family, sealed)))
}

/// Revokes the family of a token used before (a reuse), or of a successor a
/// retry expired (its answer was said to be lost, yet someone holds it):
/// how many tokens it revoked.
async fn revoke_reused_family(
    connection: &mut AnyConnection,
    hash: &str,
    client_id: &str,
) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(
        "UPDATE refresh_tokens SET revoked = 1 \
         WHERE family = (SELECT family FROM refresh_tokens \
                         WHERE token_hash = $1 AND (used = 1 OR expires_at = 0) \
                             AND client_id = $2)",
    )
    .bind(hash)
    .bind(client_id)
    .execute(connection)
    .await?
    .rows_affected())
}

/// The user of a login that minted, as [`Store::record_login`] stores it.
#[derive(Debug, Clone, Copy)]
pub struct SavedUser<'a> {
    pub user: &'a UserRecord,
    /// A sign-in, not a refresh: `logins_count` goes up by one.
    pub counts_as_login: bool,
    /// The role names the connection's `roles_from` found at this sign-in:
    /// the roles the upstream gives the user become the existing roles of
    /// these names. None leaves them as they are.
    pub upstream_roles: Option<&'a [String]>,
}

/// An issued authorization code, stored by the SHA-256 of its value with
/// what it stands for `sealed` by the caller, until `expires_at` (Unix seconds).
#[derive(Debug, Clone, Copy)]
pub struct NewCode<'a> {
    pub code: &'a str,
    pub sealed: &'a str,
    pub expires_at: u64,
}

async fn insert_code(connection: &mut AnyConnection, code: NewCode<'_>) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO authorization_codes (code_hash, sealed, expires_at) VALUES ($1, $2, $3)",
    )
    .bind(token_hash(code.code))
    .bind(code.sealed)
    .bind(to_db_seconds(code.expires_at))
    .execute(connection)
    .await
    .map_err(query_error("insert_code"))?;
    Ok(())
}

/// Upserts the user: profile snapshot of this login, metadata, logins_count,
/// last_login. created_at is set on insert only, to this login's time
/// (`last_login`). The count is incremented in SQL, so two logins of one user
/// at once both count.
async fn upsert_user(
    connection: &mut AnyConnection,
    SavedUser {
        user,
        counts_as_login,
        ..
    }: SavedUser<'_>,
) -> Result<(), StoreError> {
    const OP: &str = "save_user";
    sqlx::query(
        "INSERT INTO users \
             (user_id, profile, user_metadata, app_metadata, logins_count, last_login, created_at, \
              email) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, $8) \
         ON CONFLICT (user_id) DO UPDATE SET \
             profile = excluded.profile, \
             user_metadata = excluded.user_metadata, \
             app_metadata = excluded.app_metadata, \
             logins_count = users.logins_count + $7, \
             last_login = excluded.last_login, \
             email = excluded.email",
    )
    .bind(&user.user_id)
    .bind(to_json(OP, "profile", &user.profile)?)
    .bind(to_json(OP, "user_metadata", &user.user_metadata)?)
    .bind(to_json(OP, "app_metadata", &user.app_metadata)?)
    .bind(i64::from(user.logins_count))
    .bind(&user.last_login)
    .bind(i64::from(counts_as_login))
    .bind(
        user.profile
            .get("email")
            .and_then(Value::as_str)
            .map(str::to_lowercase),
    )
    .execute(connection)
    .await
    .map_err(query_error(OP))?;
    Ok(())
}

async fn insert_audit_row(
    connection: &mut AnyConnection,
    entry: &AuditEntry,
) -> Result<i64, StoreError> {
    const OP: &str = "record_login";
    let (outcome, detail) = match &entry.outcome {
        AuditOutcome::Minted => ("minted", None),
        AuditOutcome::Denied { reason } => ("denied", Some(reason.as_str())),
        AuditOutcome::Failed { error } => ("failed", Some(error.as_str())),
    };
    sqlx::query_scalar(concat!(
        "INSERT INTO logins (",
        audit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id"
    ))
    .bind(&entry.at)
    .bind(entry.user_id.as_deref())
    .bind(&entry.client_id)
    .bind(&entry.connection)
    .bind(outcome)
    .bind(detail)
    .bind(to_json(OP, "steps", &entry.steps)?)
    .bind(entry.correlation_id.as_deref())
    .bind(entry.chain_version.as_deref())
    .fetch_one(connection)
    .await
    .map_err(query_error(OP))
}

fn audit_entry(
    op: &'static str,
    (at, user_id, client_id, connection, outcome, detail, steps, correlation_id, chain_version): AuditRow,
) -> Result<AuditEntry, StoreError> {
    let outcome = match (outcome.as_str(), detail) {
        ("minted", _) => AuditOutcome::Minted,
        ("denied", Some(reason)) => AuditOutcome::Denied { reason },
        ("failed", Some(error)) => AuditOutcome::Failed { error },
        (other, detail) => {
            return Err(StoreError::Corrupt {
                op,
                detail: format!("login at {at}: outcome {other:?} with detail {detail:?}"),
            });
        }
    };
    Ok(AuditEntry {
        steps: from_json(op, "steps", &steps)?,
        at,
        user_id,
        client_id,
        connection,
        outcome,
        correlation_id,
        chain_version,
    })
}

/// The key a refresh token is stored under.
fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The URL to show in messages: the password replaced.
fn without_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<the configured database_url>".to_owned(),
    }
}

/// Unix seconds as the database stores them (BIGINT): far-future times
/// saturate rather than wrap.
/// `text` with LIKE's wildcards (and the escape character) escaped by `\`.
fn like_escaped(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn to_db_seconds(seconds: u64) -> i64 {
    i64::try_from(seconds).unwrap_or(i64::MAX)
}

fn query_error(op: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |error| StoreError::Query { op, error }
}

fn to_json<T: Serialize + ?Sized>(
    op: &'static str,
    what: &'static str,
    value: &T,
) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|error| StoreError::Json { op, what, error })
}

fn from_json<T: for<'de> Deserialize<'de>>(
    op: &'static str,
    what: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Json { op, what, error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use claimsmith_core::{StepKind, StepReport, StepStatus};
    use serde_json::json;

    /// What a test's database lives in; dropped after the test.
    pub(crate) enum Scratch {
        Sqlite(#[expect(dead_code, reason = "held for its Drop")] tempfile::TempDir),
        Postgres(
            #[expect(dead_code, reason = "held for its Drop")] claimsmith_testkit::ScratchPostgres,
        ),
    }

    /// A plugin version to push, as a deployer would.
    pub(crate) fn new_version<'a>(
        plugin: &'a str,
        sha256: &'a str,
        component: &'a [u8],
    ) -> NewPluginVersion<'a> {
        NewPluginVersion {
            plugin,
            sha256,
            world: "post-login-action",
            language: "Rust",
            created_at: "2026-12-07T12:00:00Z",
            created_by: "deployer",
            component,
        }
    }

    pub(crate) async fn open_temp(backend: Backend) -> (Scratch, Store) {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = Store::open_sqlite(
                    &dir.path().join("data").join("claimsmith.db"),
                    Synchronous::default(),
                )
                .await
                .expect("open");
                (Scratch::Sqlite(dir), store)
            }
            Backend::Postgres => {
                let database = claimsmith_testkit::ScratchPostgres::create().await;
                let store = Store::open_postgres(&database.url).await.expect("open");
                (Scratch::Postgres(database), store)
            }
        }
    }

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    /// The audit entry of a login of `user` that minted.
    fn minted_entry(user: &UserRecord) -> AuditEntry {
        AuditEntry {
            at: "2025-01-01T00:00:00Z".to_owned(),
            user_id: Some(user.user_id.clone()),
            client_id: "web".to_owned(),
            connection: "github".to_owned(),
            outcome: AuditOutcome::Minted,
            steps: Value::Array(Vec::new()),
            correlation_id: None,
            chain_version: None,
        }
    }

    /// Retention that remembers codes `code_memory_secs` and keeps the
    /// audit trail for ever.
    fn codes_for(code_memory_secs: u64) -> Retention {
        Retention {
            code_memory_secs,
            audit_trail_secs: u64::MAX,
        }
    }

    /// Stores `code` as a sign-in that minted would.
    async fn store_code(store: &Store, code: &str, sealed: &str, expires_at: u64) {
        let code = NewCode {
            code,
            sealed,
            expires_at,
        };
        let mut connection = store.pool.acquire().await.expect("connection");
        insert_code(&mut connection, code).await.expect("insert");
    }

    /// Stores `user` as the login of an audit entry would.
    pub(crate) async fn save_user(store: &Store, user: &UserRecord, counts_as_login: bool) {
        sign_in(store, user, counts_as_login, None).await;
    }

    /// Stores `user` as a login whose connection's `roles_from` found
    /// `upstream_roles`.
    pub(crate) async fn sign_in(
        store: &Store,
        user: &UserRecord,
        counts_as_login: bool,
        upstream_roles: Option<&[String]>,
    ) {
        let saved = SavedUser {
            user,
            counts_as_login,
            upstream_roles,
        };
        store
            .record_login(&minted_entry(user), Some(saved), None, None)
            .await
            .expect("save");
    }

    /// Consumes `token` as client `web`.
    async fn consume(store: &Store, token: &str, now: u64) -> Option<StoredGrant> {
        store
            .consume_refresh_token(token, "web", now, 0)
            .await
            .expect("consume")
    }

    async fn insert(store: &Store, token: &str, grant: &StoredGrant, expires_at: u64) {
        rotate(store, None, token, grant, expires_at).await;
    }

    /// Stores `token`, rotated from `parent` when given.
    async fn rotate(
        store: &Store,
        parent: Option<&str>,
        token: &str,
        grant: &StoredGrant,
        expires_at: u64,
    ) {
        store
            .insert_refresh_token(token, parent, grant, expires_at)
            .await
            .expect("insert");
    }

    /// A grant of client `web` in `family`; the store keeps its seal as
    /// it is given.
    fn grant(family: &str) -> StoredGrant {
        StoredGrant {
            family: family.to_owned(),
            client_id: "web".to_owned(),
            sealed: format!("sealed grant of {family}"),
        }
    }

    async fn a_retry_within_the_grace_window_gets_the_grant_and_expires_the_lost_successor(
        backend: Backend,
    ) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        let family = grant("fam-g");
        insert(&store, "rt-1", &family, now + 3600).await;
        let taken = |token: &'static str, at: u64| {
            let store = store.clone();
            async move {
                store
                    .consume_refresh_token(token, "web", at, 10)
                    .await
                    .expect("consume")
            }
        };
        assert_eq!(taken("rt-1", now).await, Some(family.clone()));
        // The answer carrying rt-2 is lost; the client retries rt-1.
        rotate(&store, Some("rt-1"), "rt-2", &family, now + 3600).await;
        assert_eq!(taken("rt-1", now + 5).await, Some(family.clone()));
        rotate(&store, Some("rt-1"), "rt-3", &family, now + 3600).await;
        assert_eq!(
            taken("rt-3", now + 6).await,
            Some(family.clone()),
            "the retry's successor serves"
        );
        rotate(&store, Some("rt-3"), "rt-4", &family, now + 3600).await;
        // A prune in between forgets none of the family's tokens: it lives.
        store
            .prune_expired(now + 6, codes_for(60))
            .await
            .expect("prune");
        assert_eq!(
            taken("rt-2", now + 7).await,
            None,
            "the lost successor is dead"
        );
        assert_eq!(
            taken("rt-4", now + 7).await,
            None,
            "and presenting it revokes the family: the answer the client said it lost \
             is in someone's hands"
        );

        // Once a later token was used, a retry is a reuse: all revoked.
        let later = grant("fam-i");
        insert(&store, "rt-x", &later, now + 3600).await;
        assert_eq!(taken("rt-x", now).await, Some(later.clone()));
        rotate(&store, Some("rt-x"), "rt-y", &later, now + 3600).await;
        assert_eq!(taken("rt-y", now + 1).await, Some(later.clone()));
        rotate(&store, Some("rt-y"), "rt-z", &later, now + 3600).await;
        assert_eq!(taken("rt-x", now + 2).await, None);
        assert_eq!(taken("rt-z", now + 2).await, None, "the family is revoked");

        // Past the window too.
        let other = grant("fam-h");
        insert(&store, "rt-a", &other, now + 3600).await;
        assert_eq!(taken("rt-a", now).await, Some(other.clone()));
        rotate(&store, Some("rt-a"), "rt-b", &other, now + 3600).await;
        assert_eq!(taken("rt-a", now + 11).await, None);
        assert_eq!(taken("rt-b", now + 11).await, None, "the family is revoked");
    }

    async fn revoking_a_refresh_token_revokes_its_family_for_its_own_client_only(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        insert(&store, "rt-1", &grant("fam-r"), now + 3600).await;
        assert!(consume(&store, "rt-1", now).await.is_some());
        rotate(&store, Some("rt-1"), "rt-2", &grant("fam-r"), now + 3600).await;
        assert!(!store.revoke_refresh_token("rt-1", "other").await.unwrap());
        assert!(!store.revoke_refresh_token("unknown", "web").await.unwrap());
        assert!(store.revoke_refresh_token("rt-1", "web").await.unwrap());
        assert_eq!(consume(&store, "rt-2", now).await, None);
    }

    async fn expired_refresh_tokens_are_pruned(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        store
            .insert_refresh_token("rt-old", None, &grant("fam-o"), now - 1)
            .await
            .expect("insert");
        store
            .insert_refresh_token("rt-new", None, &grant("fam-n"), now + 60)
            .await
            .expect("insert");
        let pruned = store
            .prune_expired(now, codes_for(60))
            .await
            .expect("prune");
        assert_eq!(pruned.map(|pruned| pruned.refresh_tokens), Some(1));
        let taken = consume(&store, "rt-new", now).await;
        assert!(taken.is_some());
    }

    async fn a_pending_login_is_spent_once_until_pruned(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        let spend = |state: &'static str| {
            let store = store.clone();
            tokio::spawn(async move { store.spend_pending_login(state, now + 600).await })
        };
        let tries: Vec<_> = (0..8).map(|_| spend("state-1")).collect();
        let mut firsts = 0;
        for try_ in tries {
            firsts += usize::from(try_.await.expect("task").expect("spend"));
        }
        assert_eq!(firsts, 1, "of eight callbacks at once, one is first");
        assert!(spend("state-2").await.expect("task").expect("spend"));
        let pruned = store
            .prune_expired(now + 601, codes_for(0))
            .await
            .expect("prune");
        assert_eq!(pruned.map(|pruned| pruned.spent_logins), Some(2));
    }

    async fn a_suspended_login_is_read_until_taken_once_or_expired(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        store
            .suspend_login("state-1", "sealed-1", now + 900)
            .await
            .expect("suspend");
        let read = |state: &'static str, at: u64| {
            let store = store.clone();
            async move { store.suspended_login(state, at).await.expect("read") }
        };
        assert_eq!(read("state-1", now).await.as_deref(), Some("sealed-1"));
        assert_eq!(
            read("state-1", now).await.as_deref(),
            Some("sealed-1"),
            "reading takes nothing"
        );
        assert_eq!(read("state-1", now + 900).await, None, "expired");
        assert_eq!(read("state-2", now).await, None);
        let take = |state: &'static str| {
            let store = store.clone();
            tokio::spawn(async move { store.take_suspended_login(state).await })
        };
        let tries: Vec<_> = (0..8).map(|_| take("state-1")).collect();
        let mut firsts = 0;
        for try_ in tries {
            firsts += usize::from(try_.await.expect("task").expect("take"));
        }
        assert_eq!(firsts, 1, "of eight continues at once, one takes it");
        assert_eq!(read("state-1", now).await, None, "taken");
        store
            .suspend_login("state-3", "sealed-3", now + 900)
            .await
            .expect("suspend");
        let pruned = store
            .prune_expired(now + 901, codes_for(0))
            .await
            .expect("prune");
        assert_eq!(pruned.map(|pruned| pruned.suspended_logins), Some(1));
    }

    async fn an_ended_console_session_stays_ended_until_pruned(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        let ended = |id: &'static str| {
            let store = store.clone();
            async move { store.console_session_ended(id).await.expect("query") }
        };
        assert!(!ended("session-1").await);
        for _ in 0..2 {
            store
                .end_console_session("session-1", now + 60)
                .await
                .expect("sign out, twice");
        }
        assert!(ended("session-1").await);
        assert!(!ended("session-2").await, "only the session signed out");
        let pruned = store
            .prune_expired(now + 61, codes_for(0))
            .await
            .expect("prune");
        assert_eq!(pruned.map(|pruned| pruned.ended_console_sessions), Some(1));
    }

    async fn the_audit_trail_and_its_captures_are_pruned_by_age(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let user = UserRecord {
            user_id: "github|1".to_owned(),
            profile: Map::new(),
            user_metadata: Map::new(),
            app_metadata: Map::new(),
            logins_count: 1,
            last_login: "2025-01-01T00:00:00Z".to_owned(),
        };
        let mut ids = Vec::new();
        for at in ["2025-01-01T00:00:00Z", "2025-01-09T00:00:00Z"] {
            let entry = AuditEntry {
                at: at.to_owned(),
                ..minted_entry(&user)
            };
            let captured = json!({ "input": { "at": at } });
            let id = store
                .record_login(&entry, None, None, Some(&captured))
                .await
                .expect("record");
            ids.push(id);
        }
        let [old, recent] = ids[..] else {
            panic!("two rows")
        };
        let old_capture = store.login_capture(old).await.expect("capture");
        assert_eq!(
            old_capture,
            Some(json!({ "input": { "at": "2025-01-01T00:00:00Z" } })),
            "a capture is kept under its audit row's id"
        );
        // 2025-01-10T00:00:00Z, keeping a week.
        let now = 1_736_467_200;
        let week = Retention {
            code_memory_secs: 0,
            audit_trail_secs: 7 * 86_400,
        };
        let pruned = store.prune_expired(now, week).await.expect("prune");
        assert_eq!(pruned.map(|pruned| pruned.audit_rows), Some(1));
        let kept = store.audit_for_user("github|1").await.expect("audit");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].at, "2025-01-09T00:00:00Z");
        let captures = (
            store.login_capture(old).await.expect("old capture"),
            store.login_capture(recent).await.expect("recent capture"),
        );
        assert_eq!(
            captures,
            (
                None,
                Some(json!({ "input": { "at": "2025-01-09T00:00:00Z" } }))
            ),
            "a pruned row's capture goes with it"
        );
    }

    async fn another_client_can_neither_use_nor_burn_a_refresh_token(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        let family = grant("fam-x");
        insert(&store, "rt-web", &family, now + 3600).await;
        for _ in 0..2 {
            let taken = store
                .consume_refresh_token("rt-web", "other", now, 0)
                .await
                .expect("consume");
            assert_eq!(taken, None);
        }
        let taken = consume(&store, "rt-web", now).await;
        assert_eq!(taken, Some(family));
    }

    #[tokio::test]
    async fn a_database_a_newer_host_migrated_stops_an_older_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("claimsmith.db");
        let store = Store::open_sqlite(&path, Synchronous::default())
            .await
            .expect("open");
        // What a host with a migration this one does not know leaves.
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from a newer host', 1, X'00', 0)",
        )
        .execute(&store.pool)
        .await
        .expect("insert");
        store.close().await;
        let error = Store::open_sqlite(&path, Synchronous::default())
            .await
            .expect_err("an older host refuses the database");
        assert!(error.to_string().contains("9999"), "{error}");
    }

    #[tokio::test]
    async fn waits_for_the_disk_as_configured() {
        let dir = tempfile::tempdir().expect("tempdir");
        // SQLite numbers the modes: NORMAL is 1, FULL is 2.
        for (setting, pragma) in [(Synchronous::Normal, 1), (Synchronous::Full, 2)] {
            let path = dir.path().join(format!("{setting:?}.db"));
            let store = Store::open_sqlite(&path, setting).await.expect("open");
            let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&store.pool)
                .await
                .expect("synchronous");
            assert_eq!(synchronous, pragma, "{setting:?}");
        }
    }

    #[tokio::test]
    async fn a_user_signing_in_is_shown_until_the_login_ends_or_expires() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open_sqlite(&dir.path().join("c.db"), Synchronous::default())
            .await
            .expect("open");
        let row = |count: u32| StoredUserRow {
            user: StoredUser {
                logins_count: count,
                ..StoredUser::default()
            },
            profile: serde_json::from_value(json!({ "geo_ip_country": "NZ" })).unwrap(),
            created_at: "2026-12-03T00:00:00Z".to_owned(),
        };
        assert_eq!(store.user_signing_in("okta|ada", 100).await.unwrap(), None);
        store
            .begin_sign_in("first", "okta|ada", &row(1), 400)
            .await
            .unwrap();
        store
            .begin_sign_in("later", "okta|ada", &row(2), 500)
            .await
            .unwrap();
        // The latest login's view wins; another user sees nothing of it.
        assert_eq!(
            store.user_signing_in("okta|ada", 100).await.unwrap(),
            Some(row(2))
        );
        assert_eq!(store.user_signing_in("okta|bob", 100).await.unwrap(), None);
        store.end_sign_in("later").await.unwrap();
        assert_eq!(
            store.user_signing_in("okta|ada", 100).await.unwrap(),
            Some(row(1))
        );
        // Expired, it is not shown, and pruning deletes it.
        assert_eq!(store.user_signing_in("okta|ada", 401).await.unwrap(), None);
        let pruned = store
            .prune_expired(401, codes_for(0))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(pruned.users_signing_in, 1);
        assert_eq!(store.user_signing_in("okta|ada", 100).await.unwrap(), None);
    }

    #[tokio::test]
    async fn opens_twice_in_wal_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("claimsmith.db");
        let first = Store::open_sqlite(&path, Synchronous::default())
            .await
            .expect("first open");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&first.pool)
            .await
            .expect("journal_mode");
        assert_eq!(mode, "wal");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&first.pool)
            .await
            .expect("foreign_keys");
        assert_eq!(foreign_keys, 1);

        let user = UserRecord {
            user_id: "github|42".to_owned(),
            profile: Map::new(),
            user_metadata: Map::new(),
            app_metadata: Map::new(),
            logins_count: 1,
            last_login: "2025-01-01T00:00:00Z".to_owned(),
        };
        save_user(&first, &user, true).await;

        // Re-open while the first is still open (a second process), then
        // again after it closed: the migrations are not applied twice.
        let second = Store::open_sqlite(&path, Synchronous::default())
            .await
            .expect("second open");
        assert!(second.load_user("github|42").await.expect("load").is_some());
        first.pool.close().await;
        second.pool.close().await;
        let third = Store::open_sqlite(&path, Synchronous::default())
            .await
            .expect("third open");
        let migrations: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
            .fetch_one(&third.pool)
            .await
            .expect("count migrations");
        let shipped = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
            .expect("the migrations folder")
            .count();
        assert_eq!(
            migrations,
            i64::try_from(shipped).expect("a small count"),
            "each applied once"
        );
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&third.pool)
            .await
            .expect("journal_mode");
        assert_eq!(mode, "wal");
    }

    #[tokio::test]
    async fn opens_a_relative_path_with_dot_dots_where_it_points() {
        // Unit tests run in host/store/: this is <workspace>/target/….
        let unique = format!("store-relative-{}", std::process::id());
        let relative = PathBuf::from(format!("../../target/{unique}/data/../db/claimsmith.db"));
        let store = Store::open_sqlite(&relative, Synchronous::default())
            .await
            .expect("open a relative path");
        store.ping().await.expect("it answers");
        store.close().await;
        let created = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../target/{unique}/db/claimsmith.db"));
        assert!(created.exists(), "{} is missing", created.display());
        let _ = std::fs::remove_dir_all(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../target/{unique}")),
        );
    }

    #[tokio::test]
    async fn open_reports_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        // A directory where the database file should be.
        let path = dir.path().join("is-a-dir");
        std::fs::create_dir(&path).expect("mkdir");
        let error = Store::open_sqlite(&path, Synchronous::default())
            .await
            .expect_err("must fail");
        assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
        assert!(error.to_string().contains("is-a-dir"), "{error}");
    }

    /// Makes every insert into `table` fail with `message` (a trigger).
    async fn fail_inserts_into(store: &Store, table: &str, message: &str) {
        let trigger = format!(
            "CREATE TRIGGER {table}_down BEFORE INSERT ON {table} \
             BEGIN SELECT RAISE(ABORT, '{message}'); END"
        );
        sqlx::query(sqlx::AssertSqlSafe(trigger))
            .execute(&store.pool)
            .await
            .expect("trigger");
    }

    /// A user of one login, with nothing stored about them yet.
    pub(crate) fn new_user(user_id: &str) -> UserRecord {
        UserRecord {
            user_id: user_id.to_owned(),
            profile: Map::new(),
            user_metadata: Map::new(),
            app_metadata: Map::new(),
            logins_count: 1,
            last_login: "2025-01-01T10:00:00Z".to_owned(),
        }
    }

    #[tokio::test]
    async fn a_login_whose_audit_row_cannot_be_written_stores_no_user() {
        let (_dir, store) = open_temp(Backend::Sqlite).await;
        fail_inserts_into(&store, "logins", "audit down").await;
        let user = new_user("github|42");
        let saved = SavedUser {
            user: &user,
            counts_as_login: true,
            upstream_roles: None,
        };
        let error = store
            .record_login(&minted_entry(&user), Some(saved), None, None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("audit down"), "{error}");
        assert_eq!(store.load_user("github|42").await.expect("load"), None);
    }

    #[tokio::test]
    async fn a_login_whose_code_cannot_be_stored_is_not_recorded_as_minted() {
        let (_dir, store) = open_temp(Backend::Sqlite).await;
        fail_inserts_into(&store, "authorization_codes", "codes down").await;
        let user = new_user("github|42");
        let saved = SavedUser {
            user: &user,
            counts_as_login: true,
            upstream_roles: None,
        };
        let code = NewCode {
            code: "the-code",
            sealed: "sealed-grant",
            expires_at: 4_000_000_000,
        };
        let error = store
            .record_login(&minted_entry(&user), Some(saved), Some(code), None)
            .await
            .unwrap_err();
        assert!(error.to_string().contains("codes down"), "{error}");
        let recorded = store.recent_logins(10).await.expect("logins");
        assert!(recorded.is_empty(), "{} audit rows", recorded.len());
        assert_eq!(store.load_user("github|42").await.expect("load"), None);
    }

    async fn users_round_trip_and_keep_created_at(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        assert_eq!(store.load_user("github|42").await.expect("load"), None);

        let first = UserRecord {
            user_id: "github|42".to_owned(),
            profile: object(json!({"email": "ada@example.com", "name": "Ada"})),
            user_metadata: object(json!({"theme": "dark"})),
            app_metadata: object(json!({"roles": ["admin"], "plan": {"tier": 2}})),
            logins_count: 1,
            last_login: "2025-01-01T10:00:00Z".to_owned(),
        };
        save_user(&store, &first, true).await;
        let loaded = store.load_user("github|42").await.expect("load");
        assert_eq!(
            loaded,
            Some(StoredUserRow {
                user: StoredUser {
                    user_metadata: first.user_metadata.clone(),
                    app_metadata: first.app_metadata.clone(),
                    logins_count: 1,
                    last_login: Some("2025-01-01T10:00:00Z".to_owned()),
                    created_at: Some("2025-01-01T10:00:00Z".to_owned()),
                    ..StoredUser::default()
                },
                profile: first.profile.clone(),
                created_at: "2025-01-01T10:00:00Z".to_owned(),
            })
        );

        let second = UserRecord {
            user_id: "github|42".to_owned(),
            profile: object(json!({"email": "ada@new.example.com"})),
            user_metadata: object(json!({"theme": "light"})),
            app_metadata: object(json!({"roles": []})),
            logins_count: 2,
            last_login: "2025-02-02T12:30:00Z".to_owned(),
        };
        save_user(&store, &second, true).await;
        let loaded = store
            .load_user("github|42")
            .await
            .expect("load")
            .expect("present");
        assert_eq!(loaded.created_at, "2025-01-01T10:00:00Z");
        assert_eq!(loaded.profile, second.profile);
        assert_eq!(loaded.user.user_metadata, second.user_metadata);
        assert_eq!(loaded.user.app_metadata, second.app_metadata);
        assert_eq!(loaded.user.logins_count, 2);
        assert_eq!(
            loaded.user.last_login.as_deref(),
            Some("2025-02-02T12:30:00Z")
        );
        // Two logins computed from the same stored state both count, and a
        // refresh does not.
        save_user(&store, &second, true).await;
        save_user(&store, &second, false).await;
        let loaded = store
            .load_user("github|42")
            .await
            .expect("load")
            .expect("present");
        assert_eq!(loaded.user.logins_count, 3);

        // Another user is not affected.
        assert_eq!(store.load_user("github|43").await.expect("load"), None);
    }

    async fn audit_keeps_order_steps_and_outcomes(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let steps = serde_json::to_value(vec![
            StepReport {
                name: "github-profile".to_owned(),
                version: None,
                kind: StepKind::ProfileFetcher,
                duration: Duration::from_millis(12),
                fuel_consumed: Some(123_456),
                status: StepStatus::Succeeded,
                limit_tripped: None,
            },
            StepReport {
                name: "deny-unverified".to_owned(),
                version: Some(3),
                kind: StepKind::PostLoginAction,
                duration: Duration::from_micros(850),
                fuel_consumed: Some(7),
                status: StepStatus::Denied {
                    reason: "email not verified".to_owned(),
                },
                limit_tripped: None,
            },
        ])
        .expect("steps to JSON");
        let entry = |at: &str, user_id: Option<&str>, outcome: AuditOutcome| AuditEntry {
            at: at.to_owned(),
            user_id: user_id.map(str::to_owned),
            client_id: "web".to_owned(),
            connection: "github".to_owned(),
            outcome,
            steps: steps.clone(),
            correlation_id: Some(format!("corr-{at}")),
            chain_version: Some("0123456789abcdef".to_owned()),
        };
        let entries = vec![
            entry(
                "2025-01-01T10:00:00Z",
                Some("github|42"),
                AuditOutcome::Minted,
            ),
            entry(
                "2025-01-01T10:00:01Z",
                Some("github|42"),
                AuditOutcome::Denied {
                    reason: "email not verified".to_owned(),
                },
            ),
            entry(
                "2025-01-01T10:00:02Z",
                Some("github|42"),
                AuditOutcome::Failed {
                    error: "plugin trapped: out of fuel".to_owned(),
                },
            ),
        ];
        // Interleave entries of nobody and of someone else.
        store
            .record_login(
                &entry(
                    "2025-01-01T09:59:59Z",
                    None,
                    AuditOutcome::Failed {
                        error: "unknown connection".to_owned(),
                    },
                ),
                None,
                None,
                None,
            )
            .await
            .expect("record anonymous");
        for (i, e) in entries.iter().enumerate() {
            store
                .record_login(e, None, None, None)
                .await
                .expect("record");
            store
                .record_login(
                    &entry(
                        &format!("other {i}"),
                        Some("github|7"),
                        AuditOutcome::Minted,
                    ),
                    None,
                    None,
                    None,
                )
                .await
                .expect("record other");
        }

        let audit = store.audit_for_user("github|42").await.expect("audit");
        assert_eq!(audit, entries);
        assert_eq!(audit[0].steps[0]["name"], "github-profile");
        assert_eq!(
            audit[1].steps[1]["status"]["denied"]["reason"],
            "email not verified"
        );
        assert_eq!(
            store.audit_for_user("github|7").await.expect("audit").len(),
            3
        );
        assert!(
            store
                .audit_for_user("nobody")
                .await
                .expect("audit")
                .is_empty()
        );

        let anonymous: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM logins WHERE user_id IS NULL")
                .fetch_one(&store.pool)
                .await
                .expect("count");
        assert_eq!(anonymous, 1);
    }

    async fn refresh_tokens_rotate_once_and_reuse_revokes_the_family(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        let family = grant("fam-1");
        insert(&store, "rt-first", &family, now + 3600).await;
        assert_eq!(consume(&store, "rt-first", now).await, Some(family.clone()));
        // The rotation's successor, then an unrelated family.
        insert(&store, "rt-second", &family, now + 3600).await;
        let other = grant("fam-2");
        insert(&store, "rt-other", &other, now + 3600).await;

        // Reuse: None, and the sibling is revoked.
        assert_eq!(consume(&store, "rt-first", now + 1).await, None);
        assert_eq!(consume(&store, "rt-second", now + 2).await, None);
        // A token the service adds to the revoked family (a rotation that
        // raced the reuse) is dead too.
        insert(&store, "rt-late", &family, now + 3600).await;
        assert_eq!(consume(&store, "rt-late", now + 3).await, None);
        // Other families are untouched.
        assert_eq!(consume(&store, "rt-other", now + 4).await, Some(other));
        // Unknown tokens are just None.
        assert_eq!(consume(&store, "rt-unknown", now).await, None);
    }

    async fn expired_refresh_tokens_are_refused_without_revoking(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        let family = grant("fam-exp");
        insert(&store, "rt-expired", &family, now).await;
        insert(&store, "rt-live", &family, now + 60).await;
        // Expired from `expires_at` on.
        assert_eq!(consume(&store, "rt-expired", now).await, None);
        assert_eq!(consume(&store, "rt-expired", now + 10).await, None);
        // Expiry is not reuse: the family lives on.
        assert_eq!(consume(&store, "rt-live", now + 59).await, Some(family));
        // Far-future expiry saturates instead of wrapping negative.
        store
            .insert_refresh_token("rt-forever", None, &grant("fam-forever"), u64::MAX)
            .await
            .expect("insert forever");
        assert!(consume(&store, "rt-forever", now).await.is_some());
    }

    async fn refresh_tokens_are_stored_hashed(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let token = "very-secret-refresh-token-value";
        store
            .insert_refresh_token(token, None, &grant("fam-hash"), 2_000_000_000)
            .await
            .expect("insert");
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT token_hash, family, sealed_grant FROM refresh_tokens")
                .fetch_all(&store.pool)
                .await
                .expect("select");
        assert_eq!(rows.len(), 1);
        let (hash, family, sealed_grant) = &rows[0];
        // `printf %s very-secret-refresh-token-value | sha256sum`
        assert_eq!(
            hash,
            "b5e705dca3382cd2dfad754f2446b418727d56bd29c8e402c57ff248888e282d"
        );
        assert_eq!(family, "fam-hash");
        for column in [hash, family, sealed_grant] {
            assert!(!column.contains(token), "raw token stored: {column}");
        }
    }

    async fn concurrent_presentations_consume_a_token_once(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        store
            .insert_refresh_token("rt-race", None, &grant("fam-race"), now + 60)
            .await
            .expect("insert");
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(
                    async move { store.consume_refresh_token("rt-race", "web", now, 0).await },
                )
            })
            .collect();
        let mut granted = 0;
        for task in tasks {
            if task.await.expect("join").expect("consume").is_some() {
                granted += 1;
            }
        }
        assert_eq!(granted, 1);
        let revoked: i64 =
            sqlx::query_scalar("SELECT revoked FROM refresh_tokens WHERE family = 'fam-race'")
                .fetch_one(&store.pool)
                .await
                .expect("select");
        assert_eq!(revoked, 1, "the losing presentations are reuse");
    }

    async fn a_family_revoked_before_its_first_token_is_written_gets_no_live_token(
        backend: Backend,
    ) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        // A replayed code revokes the family while the first exchange is
        // still minting its token.
        store
            .revoke_refresh_family("fam-late", now + 3600)
            .await
            .expect("revoke");
        insert(&store, "rt-late", &grant("fam-late"), now + 3600).await;
        assert_eq!(consume(&store, "rt-late", now).await, None);
        insert(&store, "rt-other", &grant("fam-other"), now + 3600).await;
        assert!(
            consume(&store, "rt-other", now).await.is_some(),
            "another family is untouched"
        );
    }

    async fn a_code_is_redeemed_once_and_a_replay_names_its_family(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        store_code(&store, "code-1", "sealed-1", now + 60).await;
        assert_eq!(
            store
                .redeem_code("code-1", "fam-1", now)
                .await
                .expect("redeem"),
            Redemption::Redeemed {
                sealed: "sealed-1".to_owned()
            }
        );
        assert_eq!(
            store
                .redeem_code("code-1", "fam-2", now)
                .await
                .expect("replay"),
            Redemption::Replayed {
                family: Some("fam-1".to_owned())
            },
            "the replay names the first redemption's family, not its own"
        );
        assert_eq!(
            store
                .redeem_code("code-2", "fam-3", now)
                .await
                .expect("unknown"),
            Redemption::Unknown
        );
        store_code(&store, "code-old", "sealed", now - 1).await;
        assert_eq!(
            store
                .redeem_code("code-old", "fam-4", now)
                .await
                .expect("expired"),
            Redemption::Unknown,
            "expired at its expires_at"
        );
        let stored: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM authorization_codes")
            .fetch_all(&store.pool)
            .await
            .expect("select");
        assert!(
            stored.iter().all(|hash| !hash.contains("code")),
            "{stored:?}"
        );

        // A redeemed code is remembered for `code_memory_secs` after it
        // expired, then pruned.
        let pruned = store
            .prune_expired(now + 60 + 30, codes_for(60))
            .await
            .expect("prune");
        assert_eq!(
            pruned.map(|pruned| pruned.codes),
            Some(1),
            "only the old one"
        );
        assert!(matches!(
            store
                .redeem_code("code-1", "fam-5", now)
                .await
                .expect("replay"),
            Redemption::Replayed { .. }
        ));
        let pruned = store
            .prune_expired(now + 60 + 61, codes_for(60))
            .await
            .expect("prune");
        assert_eq!(pruned.map(|pruned| pruned.codes), Some(1));
    }

    async fn concurrent_redemptions_of_a_code_have_one_winner(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let now = 1_700_000_000;
        for round in 0..20 {
            let code = format!("code-{round}");
            store_code(&store, &code, "sealed", now + 60).await;
            let tasks: Vec<_> = (0..4)
                .map(|task| {
                    let (store, code) = (store.clone(), code.clone());
                    tokio::spawn(async move {
                        store.redeem_code(&code, &format!("fam-{task}"), now).await
                    })
                })
                .collect();
            let mut winners = 0;
            for task in tasks {
                match task.await.expect("join").expect("redeem") {
                    Redemption::Redeemed { .. } => winners += 1,
                    Redemption::Replayed { family } => assert!(family.is_some()),
                    Redemption::Unknown => panic!("a redeemed code is known"),
                }
            }
            assert_eq!(winners, 1, "round {round}");
        }
    }

    async fn the_first_signing_key_is_added_once(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        let row = |kid: &str| SigningKeyRow {
            kid: kid.to_owned(),
            algorithm: "ES256".to_owned(),
            sealed_pkcs8: "sealed".to_owned(),
            created_at: 1,
            signs_from: 0,
        };
        let tasks: Vec<_> = (0..6)
            .map(|host| {
                let (store, row) = (store.clone(), row(&format!("kid-{host}")));
                tokio::spawn(async move { store.insert_signing_key(&row, true).await })
            })
            .collect();
        let mut added = 0;
        for task in tasks {
            added += usize::from(task.await.expect("join").expect("insert"));
        }
        assert_eq!(added, 1, "hosts starting at once add one first key");
        assert!(
            store
                .insert_signing_key(&row("next"), false)
                .await
                .expect("rotate")
        );
        let kids: Vec<String> = store
            .signing_keys()
            .await
            .expect("keys")
            .into_iter()
            .map(|key| key.kid)
            .collect();
        assert_eq!(kids.len(), 2, "{kids:?}");
        store.delete_signing_keys(&kids[..1]).await.expect("delete");
        assert_eq!(store.signing_keys().await.expect("keys").len(), 1);
    }

    #[tokio::test]
    async fn a_host_skips_pruning_while_another_prunes() {
        let (_dir, store) = open_temp(Backend::Postgres).await;
        let mut other_host = store.pool.acquire().await.expect("connection");
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(PRUNE_LOCK)
            .execute(&mut *other_host)
            .await
            .expect("lock");
        assert_eq!(
            store.prune_expired(1, codes_for(0)).await.expect("prune"),
            None
        );
        sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(PRUNE_LOCK)
            .execute(&mut *other_host)
            .await
            .expect("unlock");
        assert_eq!(
            store.prune_expired(1, codes_for(0)).await.expect("prune"),
            Some(Pruned::default())
        );
    }

    #[test]
    fn a_database_url_is_shown_without_its_password() {
        let shown = without_password("postgres://claimsmith:s3cret@db.internal:5432/auth");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("db.internal:5432/auth"), "{shown}");
        assert!(!without_password("not a url s3cret").contains("s3cret"));
    }

    async fn users_are_searched_and_logins_filtered_and_paged(backend: Backend) {
        let (_dir, store) = open_temp(backend).await;
        for (id, email) in [
            ("okta|1", "Ada@Example.com"),
            ("okta|2", "bob@example.com"),
            ("gh|100%", "c_d@x.org"),
        ] {
            let user = UserRecord {
                user_id: id.to_owned(),
                profile: object(json!({"email": email})),
                user_metadata: Map::new(),
                app_metadata: Map::new(),
                logins_count: 1,
                last_login: "2025-01-01T00:00:00Z".to_owned(),
            };
            save_user(&store, &user, true).await;
        }
        let found = |page: Page<UserListing>| -> Vec<String> {
            page.items
                .into_iter()
                .map(|listing| listing.user_id)
                .collect()
        };
        assert_eq!(
            found(store.search_users("ada@example.COM", 0, 10).await.unwrap()),
            ["okta|1"]
        );
        assert_eq!(
            found(store.search_users("okta|", 0, 10).await.unwrap()),
            ["okta|1", "okta|2"]
        );
        assert_eq!(
            found(store.search_users("okta|", 1, 10).await.unwrap()),
            ["okta|2"]
        );
        assert_eq!(store.search_users("okta|", 1, 10).await.unwrap().total, 2);
        assert!(
            found(store.search_users("%", 0, 10).await.unwrap()).is_empty(),
            "% is literal"
        );
        assert_eq!(
            found(store.search_users("gh|100%", 0, 10).await.unwrap()),
            ["gh|100%"]
        );
        assert!(found(store.search_users("c%d", 0, 10).await.unwrap()).is_empty());
        assert_eq!(
            found(store.search_users("c_", 0, 10).await.unwrap()),
            ["gh|100%"]
        );
        // Auth0's users-by-email: the whole address, without case; no prefix.
        let with_email = |email: &'static str| {
            let store = &store;
            async move {
                let users = store.users_with_email(email, 10).await.unwrap();
                users
                    .into_iter()
                    .map(|listing| listing.user_id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(with_email("ADA@example.com").await, ["okta|1"]);
        assert!(with_email("ada@").await.is_empty());
        assert!(with_email("ada@example.co").await.is_empty());

        assert!(
            store
                .update_metadata("okta|2", &object(json!({"a": 1})), &Map::new())
                .await
                .unwrap()
        );
        assert!(
            !store
                .update_metadata("nobody", &Map::new(), &Map::new())
                .await
                .unwrap()
        );
        let filter = LoginFilter {
            user_id: Some("okta|2".to_owned()),
            ..LoginFilter::default()
        };
        let page = store.logins(&filter, 0, 10).await.unwrap();
        assert_eq!(page.total, 1);
        let listing = &page.items[0];
        assert_eq!(
            store.login(listing.id).await.unwrap().as_ref(),
            Some(listing)
        );
        let all = store.logins(&LoginFilter::default(), 0, 2).await.unwrap();
        assert_eq!((all.items.len(), all.total), (2, 3));
        assert!(all.items[0].id > all.items[1].id, "newest first");
        let denied = LoginFilter {
            outcome: Some("denied".to_owned()),
            ..LoginFilter::default()
        };
        assert_eq!(store.logins(&denied, 0, 10).await.unwrap().total, 0);

        let action = AdminAction {
            at: "2025-01-01T00:00:00Z".to_owned(),
            actor: "ops".to_owned(),
            action: "update_user".to_owned(),
            target: "okta|2".to_owned(),
            detail: json!({"app_metadata": {"a": 1}}),
        };
        store.record_admin_action(&action).await.unwrap();
        assert_eq!(store.admin_actions(5).await.unwrap(), [action]);
    }

    /// Runs each backend-neutral test above on SQLite and on PostgreSQL.
    macro_rules! on_both_backends {
        ($($name:ident),* $(,)?) => {
            mod on_sqlite {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        super::$name(super::Backend::Sqlite).await
                    }
                )*
            }
            mod on_postgres {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        super::$name(super::Backend::Postgres).await
                    }
                )*
            }
        };
    }
    pub(crate) use on_both_backends;

    on_both_backends!(
        users_are_searched_and_logins_filtered_and_paged,
        a_code_is_redeemed_once_and_a_replay_names_its_family,
        a_family_revoked_before_its_first_token_is_written_gets_no_live_token,
        concurrent_redemptions_of_a_code_have_one_winner,
        the_first_signing_key_is_added_once,
        a_retry_within_the_grace_window_gets_the_grant_and_expires_the_lost_successor,
        revoking_a_refresh_token_revokes_its_family_for_its_own_client_only,
        expired_refresh_tokens_are_pruned,
        a_pending_login_is_spent_once_until_pruned,
        a_suspended_login_is_read_until_taken_once_or_expired,
        an_ended_console_session_stays_ended_until_pruned,
        the_audit_trail_and_its_captures_are_pruned_by_age,
        another_client_can_neither_use_nor_burn_a_refresh_token,
        users_round_trip_and_keep_created_at,
        audit_keeps_order_steps_and_outcomes,
        refresh_tokens_rotate_once_and_reuse_revokes_the_family,
        expired_refresh_tokens_are_refused_without_revoking,
        refresh_tokens_are_stored_hashed,
        concurrent_presentations_consume_a_token_once,
    );
}
