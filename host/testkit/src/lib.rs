//! What the host's tests share (as Kanidm's testkit): a scratch PostgreSQL
//! database per test, on the
//! server `CLAIMSMITH_TEST_POSTGRES` names (default
//! `postgres://postgres@127.0.0.1:5432/test`, the machine's own).
//!
//! Nothing here runs in the service, and no crate depends on this one except
//! as a dev-dependency. It must not depend on any other Claimsmith crate.

use std::sync::atomic::{AtomicU32, Ordering};

// The names are this module's own, made of a prefix and numbers: safe to
// splice into SQL, which cannot bind a database name.
use sqlx::{AssertSqlSafe, Connection as _, Executor as _, PgConnection};

/// The server's maintenance database, where scratch ones are made.
pub fn postgres_server_url() -> String {
    std::env::var("CLAIMSMITH_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Prefix of every scratch database: `cargo xtask test` drops leftovers of
/// an earlier run (a test that panicked skips its drop).
pub const SCRATCH_PREFIX: &str = "claimsmith_scratch_";

/// A database that exists for one test and is dropped after it.
pub struct ScratchPostgres {
    name: String,
    /// Its URL, for `[storage] database_url` or `Store::open_postgres`.
    pub url: String,
}

impl ScratchPostgres {
    /// Creates a fresh, empty database. Panics, naming the server, when
    /// PostgreSQL does not answer: a test that needs it must not pass
    /// without it.
    pub async fn create() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let server = postgres_server_url();
        let name = format!(
            "{SCRATCH_PREFIX}{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut connection = PgConnection::connect(&server)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "cannot connect to PostgreSQL at {server} ({error}); start it with \
                 `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
                )
            });
        connection
            .execute(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .await
            .expect("drop a leftover scratch database");
        connection
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create a scratch database");
        let mut url = reqwest::Url::parse(&server).expect("CLAIMSMITH_TEST_POSTGRES is a URL");
        url.set_path(&name);
        ScratchPostgres {
            name,
            url: url.to_string(),
        }
    }
}

impl ScratchPostgres {
    /// Runs `sql` on the scratch database, as someone with the database's
    /// password could behind the service's back (a test's tampering).
    pub async fn execute(&self, sql: &str) -> u64 {
        let mut connection = PgConnection::connect(&self.url)
            .await
            .expect("connect to the scratch database");
        connection
            .execute(AssertSqlSafe(sql.to_owned()))
            .await
            .expect("run a statement on the scratch database")
            .rows_affected()
    }
}

impl Drop for ScratchPostgres {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside an async runtime, which cannot block on
        // another: the statement runs on a thread with its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut connection = PgConnection::connect(&postgres_server_url()).await.ok()?;
                connection.execute(AssertSqlSafe(statement)).await.ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop scratch database {}", self.name);
        }
    }
}
