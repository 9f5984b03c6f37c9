//! The schema: each backend's migrations, embedded in the binary.
//!
//! Listed here by hand rather than found by `sqlx::migrate!`: that macro is
//! the only one of sqlx's proc-macros the store would use, and building it
//! compiles a second sqlx for the build host (both drivers, tokio, rustls).
//! The checksums are the ones the macro recorded (sqlx's own
//! [`Migration::new`]), so databases it migrated open as before. A test
//! holds each list to its folder: a migration file that is not listed here,
//! or listed under another version, fails it.

use std::borrow::Cow;

use sqlx::SqlSafeStr as _;
use sqlx::migrate::{Migration, MigrationType, Migrator};

use crate::Backend;

/// One migration: its version, its file in `migrations/<backend>/`
/// (`<version>_<description>.sql`), and the file's SQL.
type Listed = (i64, &'static str, &'static str);

macro_rules! listed {
    ($backend:literal: $($version:literal $file:literal),* $(,)?) => {
        &[$(($version, $file, include_str!(concat!("../migrations/", $backend, "/", $file)))),*]
    };
}

const SQLITE: &[Listed] = listed!("sqlite":
    1 "0001_users_and_audit.sql",
    2 "0002_refresh_token_client.sql",
    3 "0003_hardening.sql",
    4 "0004_several_hosts.sql",
    5 "0005_management.sql",
    6 "0006_users_signing_in.sql",
    7 "0007_spent_logins.sql",
    8 "0008_ended_console_sessions.sql",
    9 "0009_sealed_refresh_grants.sql",
    10 "0010_roles.sql",
    11 "0011_suspended_logins.sql",
    12 "0012_plugin_versions.sql",
    13 "0013_plugin_shadows.sql",
    14 "0014_plugin_canaries.sql",
    15 "0015_login_captures.sql",
);

const POSTGRES: &[Listed] = listed!("postgres":
    1 "0001_users_and_audit.sql",
    2 "0002_refresh_token_client.sql",
    3 "0003_hardening.sql",
    4 "0004_several_hosts.sql",
    5 "0005_management.sql",
    6 "0006_users_signing_in.sql",
    7 "0007_spent_logins.sql",
    8 "0008_ended_console_sessions.sql",
    9 "0009_sealed_refresh_grants.sql",
    10 "0010_roles.sql",
    11 "0011_suspended_logins.sql",
    12 "0012_plugin_versions.sql",
    13 "0013_plugin_shadows.sql",
    14 "0014_plugin_canaries.sql",
    15 "0015_login_captures.sql",
);

fn listed(backend: Backend) -> &'static [Listed] {
    match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    }
}

/// The migrator of `backend`'s schema.
pub(crate) fn migrator(backend: Backend) -> Migrator {
    Migrator::with_migrations(
        listed(backend)
            .iter()
            .map(|&(version, file, sql)| {
                Migration::new(
                    version,
                    Cow::Owned(description(file)),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// "0003_hardening.sql" → "hardening", as sqlx describes a migration.
fn description(file: &str) -> String {
    let stem = file.trim_end_matches(".sql");
    let words = stem.split_once('_').map_or(stem, |(_, words)| words);
    words.replace('_', " ")
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn folder(backend: Backend) -> PathBuf {
        let name = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        };
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(name)
    }

    #[test]
    fn every_migration_file_is_listed_under_its_version() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let mut files: Vec<String> = std::fs::read_dir(folder(backend))
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .collect();
            files.sort();
            let names: Vec<&str> = listed(backend).iter().map(|&(_, file, _)| file).collect();
            assert_eq!(names, files, "{backend:?}");
            for &(version, file, _) in listed(backend) {
                assert!(file.starts_with(&format!("{version:04}_")), "{file}");
            }
        }
    }

    /// What sqlx finds in the folder (as `sqlx::migrate!` did at compile
    /// time): the same versions, descriptions and checksums.
    #[tokio::test]
    async fn the_migrations_are_the_ones_sqlx_finds_in_the_folder() {
        for backend in [Backend::Sqlite, Backend::Postgres] {
            let found = Migrator::new(folder(backend)).await.unwrap();
            let shape = |migrator: &Migrator| -> Vec<(i64, String, Vec<u8>)> {
                migrator
                    .iter()
                    .map(|m| (m.version, m.description.to_string(), m.checksum.to_vec()))
                    .collect()
            };
            assert_eq!(shape(&migrator(backend)), shape(&found), "{backend:?}");
        }
    }
}
