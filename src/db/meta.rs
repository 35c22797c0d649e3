//! The `half_orm_meta` schema (docs/production.md): which releases and patches a
//! database holds. Installed idempotently; the database's version is its
//! greatest `hop_release` version in the order of docs/versions.md.

use crate::db::database::sql_error;
use crate::error::{Error, Result};
use crate::version::Version;

pub const SCHEMA: &str = "half_orm_meta";

/// Idempotent DDL of the metadata schema.
pub const INSTALL_SQL: &str = "\
CREATE SCHEMA IF NOT EXISTS half_orm_meta;
CREATE TABLE IF NOT EXISTS half_orm_meta.hop_release (
    version text PRIMARY KEY,
    major integer NOT NULL,
    minor integer NOT NULL,
    patch integer NOT NULL,
    pre_release text NOT NULL DEFAULT '' CHECK (pre_release IN ('', 'rc', 'hotfix')),
    pre_release_num integer,
    applied_at timestamptz NOT NULL DEFAULT now(),
    commit text
);
CREATE TABLE IF NOT EXISTS half_orm_meta.hop_patch (
    patch_id text NOT NULL,
    release text NOT NULL REFERENCES half_orm_meta.hop_release (version),
    sha256 text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patch_id, release)
);
";

pub fn install(client: &mut impl postgres::GenericClient) -> Result<()> {
    client
        .batch_execute(INSTALL_SQL)
        .map_err(|e| sql_error("cannot install the half_orm_meta schema", e))
}

/// Whether the schema exists.
pub fn is_installed(client: &mut impl postgres::GenericClient) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT to_regclass('half_orm_meta.hop_release') IS NOT NULL",
            &[],
        )
        .map_err(|e| sql_error("cannot read the catalog", e))?;
    Ok(row.get(0))
}

/// Records that `version` is applied.
pub fn record_release(
    client: &mut impl postgres::GenericClient,
    version: &Version,
    commit: Option<&str>,
) -> Result<()> {
    let (pre, num) = version.pre_release_columns();
    let num = num.map(|n| n as i32);
    client
        .execute(
            "INSERT INTO half_orm_meta.hop_release (version, major, minor, patch, pre_release, pre_release_num, commit) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                &version.to_string(),
                &(version.major as i32),
                &(version.minor as i32),
                &(version.patch as i32),
                &pre,
                &num,
                &commit,
            ],
        )
        .map(|_| ())
        .map_err(|e| sql_error(&format!("cannot record release {version}"), e))
}

/// Sets the commit of a recorded release.
pub fn set_commit(
    client: &mut impl postgres::GenericClient,
    version: &Version,
    commit: &str,
) -> Result<()> {
    client
        .execute(
            "UPDATE half_orm_meta.hop_release SET commit = $2 WHERE version = $1",
            &[&version.to_string(), &commit],
        )
        .map(|_| ())
        .map_err(|e| sql_error("cannot update half_orm_meta.hop_release", e))
}

/// Every recorded release, ascending.
pub fn releases(client: &mut impl postgres::GenericClient) -> Result<Vec<Version>> {
    let rows = client
        .query("SELECT version FROM half_orm_meta.hop_release", &[])
        .map_err(|e| sql_error("cannot read half_orm_meta.hop_release", e))?;
    let mut out = Vec::new();
    for r in rows {
        let v: String = r.get(0);
        out.push(v.parse::<Version>().map_err(|e| {
            Error::new(format!(
                "half_orm_meta.hop_release holds an invalid version: {}",
                e.message
            ))
        })?);
    }
    out.sort();
    Ok(out)
}

/// The database's version: `None` without the schema or rows.
pub fn database_version(client: &mut impl postgres::GenericClient) -> Result<Option<Version>> {
    if !is_installed(client)? {
        return Ok(None);
    }
    Ok(releases(client)?.pop())
}

/// The rows of the metadata tables as deterministic INSERT statements
/// (sorted), for `metadata-V.sql`.
pub fn dump_rows(client: &mut impl postgres::GenericClient) -> Result<String> {
    let mut out = String::from("-- git-hop: rows of the half_orm_meta tables\n");
    let releases = client
        .query(
            "SELECT format('INSERT INTO half_orm_meta.hop_release (version, major, minor, patch, pre_release, pre_release_num, applied_at, commit) VALUES (%L, %s, %s, %s, %L, %s, %L, %L);', \
             version, major, minor, patch, pre_release, coalesce(pre_release_num::text, 'NULL'), applied_at AT TIME ZONE 'UTC' || '+00', commit) \
             FROM half_orm_meta.hop_release ORDER BY major, minor, patch, pre_release <> 'rc', pre_release, pre_release_num",
            &[],
        )
        .map_err(|e| sql_error("cannot read half_orm_meta.hop_release", e))?;
    for r in releases {
        out.push_str(r.get::<_, &str>(0));
        out.push('\n');
    }
    let patches = client
        .query(
            "SELECT format('INSERT INTO half_orm_meta.hop_patch (patch_id, release, sha256, applied_at) VALUES (%L, %L, %L, %L);', \
             patch_id, release, sha256, applied_at AT TIME ZONE 'UTC' || '+00') \
             FROM half_orm_meta.hop_patch ORDER BY release, applied_at, patch_id",
            &[],
        )
        .map_err(|e| sql_error("cannot read half_orm_meta.hop_patch", e))?;
    for r in patches {
        out.push_str(r.get::<_, &str>(0));
        out.push('\n');
    }
    Ok(out)
}
