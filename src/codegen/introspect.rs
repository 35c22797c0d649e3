//! What the code generator knows of a live database: its relations, their
//! columns, primary keys and foreign keys, read from the catalog.
//!
//! Introspection takes a fixed number of queries (one per kind of fact:
//! relations, columns, constraints), whatever the number of relations. It
//! sees what half_orm sees: tables, partitioned tables, views, materialized
//! views and foreign tables, but not partitions (half_orm does not map them),
//! and nothing in `pg_catalog`, `information_schema`, `pg_toast*`, `pg_temp*`
//! or `half_orm_meta` (and its `half_orm_meta.*` schemas).

use std::collections::BTreeMap;

use postgres::{GenericClient, Row};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The relations of a database, sorted by schema then name (byte order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Model {
    pub relations: Vec<Relation>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RelationKind {
    Table,
    PartitionedTable,
    View,
    MaterializedView,
    ForeignTable,
}

impl RelationKind {
    fn from_relkind(k: &str) -> Option<RelationKind> {
        Some(match k {
            "r" => RelationKind::Table,
            "p" => RelationKind::PartitionedTable,
            "v" => RelationKind::View,
            "m" => RelationKind::MaterializedView,
            "f" => RelationKind::ForeignTable,
            _ => return None,
        })
    }

    /// "table", "view", … as a sentence would say it.
    pub fn describe(self) -> &'static str {
        match self {
            RelationKind::Table => "table",
            RelationKind::PartitionedTable => "partitioned table",
            RelationKind::View => "view",
            RelationKind::MaterializedView => "materialized view",
            RelationKind::ForeignTable => "foreign table",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    pub kind: RelationKind,
    /// In column order (`attnum`).
    pub columns: Vec<Column>,
    /// Column names of the primary key, in key order; empty when there is none.
    pub primary_key: Vec<String>,
    /// Sorted by constraint name.
    pub foreign_keys: Vec<ForeignKey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// `format_type` of the column, with `search_path = pg_catalog` so that
    /// user types are always schema-qualified (`public.mood`).
    pub sql_type: String,
    pub not_null: bool,
    /// The default expression (`nextval('public.users_id_seq'::regclass)`).
    pub default: Option<String>,
    /// `ALWAYS` or `BY DEFAULT` for an identity column.
    pub identity: Option<String>,
    /// The expression of a generated (stored) column.
    pub generated: Option<String>,
    /// The type's own name (`pg_type.typname`: `int4`, `_text` for
    /// `text[]`, `mood`), the key half_orm maps Python types by.
    #[serde(default)]
    pub type_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    pub name: String,
    pub columns: Vec<String>,
    pub ref_schema: String,
    pub ref_relation: String,
    pub ref_columns: Vec<String>,
}

/// The relations half_orm maps, on `pg_class c` joined to `pg_namespace n`.
const RELATION_FILTER: &str = r"c.relkind IN ('r', 'p', 'v', 'm', 'f')
  AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'half_orm_meta')
  AND n.nspname NOT LIKE 'half\_orm\_meta.%'
  AND n.nspname NOT LIKE 'pg\_toast%'
  AND n.nspname NOT LIKE 'pg\_temp%'";

fn relations_query() -> String {
    format!(
        "SELECT c.oid, n.nspname::text, c.relname::text, c.relkind::text
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE {RELATION_FILTER}"
    )
}

fn columns_query() -> String {
    format!(
        "SELECT a.attrelid, a.attnum, a.attname::text,
       pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text,
       t.typname::text
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attnum > 0 AND NOT a.attisdropped AND {RELATION_FILTER}"
    )
}

/// Primary keys and foreign keys. A foreign key to a partitioned table also
/// has one clone per referenced partition on the referencing table; those are
/// left out (the referenced relation is a partition).
fn constraints_query() -> String {
    format!(
        "SELECT con.conrelid, con.conname::text, con.contype::text,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.ord),
       fn.nspname::text, fc.relname::text,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY AS k(num, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
             ORDER BY k.ord)
FROM pg_catalog.pg_constraint con
JOIN pg_catalog.pg_class c ON c.oid = con.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
WHERE con.contype IN ('p', 'f') AND {RELATION_FILTER}
  AND (con.contype = 'p' OR NOT fc.relispartition)"
    )
}

fn catalog_error(what: &str, e: &postgres::Error) -> Error {
    let detail = match e.as_db_error() {
        Some(db) => db.message().to_string(),
        None => e.to_string(),
    };
    Error::new(format!(
        "could not read the {what} from the database catalog: {detail}"
    ))
    .hint("check that the database is reachable and that its role may read pg_catalog")
}

/// The model of the database `client` is connected to. Runs in a
/// transaction (a savepoint if `client` is already one) that is rolled back,
/// with `search_path = pg_catalog` inside it so that types and defaults are
/// spelled the same whatever the caller's search path.
pub fn introspect(client: &mut impl GenericClient) -> Result<Model> {
    let mut tx = client
        .transaction()
        .map_err(|e| catalog_error("relations", &e))?;
    tx.batch_execute("SET LOCAL search_path = pg_catalog")
        .map_err(|e| catalog_error("relations", &e))?;
    let model = introspect_with(&mut |sql: &str| tx.query(sql, &[]))?;
    tx.rollback().map_err(|e| catalog_error("relations", &e))?;
    Ok(model)
}

/// Introspection over any way of running a query: exactly three calls of
/// `run`, whatever the database holds.
pub(crate) fn introspect_with(
    run: &mut dyn FnMut(&str) -> std::result::Result<Vec<Row>, postgres::Error>,
) -> Result<Model> {
    let rel_rows = run(&relations_query()).map_err(|e| catalog_error("relations", &e))?;
    let col_rows = run(&columns_query()).map_err(|e| catalog_error("columns", &e))?;
    let con_rows = run(&constraints_query()).map_err(|e| catalog_error("constraints", &e))?;
    let bad_row = |what: &str, e: postgres::Error| {
        Error::new(format!(
            "unexpected {what} row from the database catalog: {e}"
        ))
        .hint("this is a bug in git-hop; please report it with your PostgreSQL version")
    };

    let mut by_oid: BTreeMap<u32, Relation> = BTreeMap::new();
    for row in &rel_rows {
        let get = || -> std::result::Result<(u32, String, String, String), postgres::Error> {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
            ))
        };
        let (oid, schema, name, relkind) = get().map_err(|e| bad_row("relation", e))?;
        let Some(kind) = RelationKind::from_relkind(&relkind) else {
            continue;
        };
        by_oid.insert(
            oid,
            Relation {
                schema,
                name,
                kind,
                columns: Vec::new(),
                primary_key: Vec::new(),
                foreign_keys: Vec::new(),
            },
        );
    }

    let mut columns: Vec<(u32, i16, Column)> = Vec::with_capacity(col_rows.len());
    for row in &col_rows {
        let get = || -> std::result::Result<(u32, i16, Column), postgres::Error> {
            let identity: Option<String> = row.try_get(6)?;
            let generated: Option<String> = row.try_get(7)?;
            let default: Option<String> = row.try_get(5)?;
            let is_generated = generated.as_deref().is_some_and(|g| !g.is_empty());
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                Column {
                    name: row.try_get(2)?,
                    sql_type: row.try_get(3)?,
                    not_null: row.try_get(4)?,
                    default: if is_generated { None } else { default.clone() },
                    identity: match identity.as_deref() {
                        Some("a") => Some("ALWAYS".to_string()),
                        Some("d") => Some("BY DEFAULT".to_string()),
                        _ => None,
                    },
                    generated: if is_generated { default } else { None },
                    type_name: row.try_get(8)?,
                },
            ))
        };
        columns.push(get().map_err(|e| bad_row("column", e))?);
    }
    columns.sort_by_key(|(oid, num, _)| (*oid, *num));
    for (oid, _, col) in columns {
        if let Some(rel) = by_oid.get_mut(&oid) {
            rel.columns.push(col);
        }
    }

    for row in &con_rows {
        type ConRow = (
            u32,
            String,
            String,
            Vec<String>,
            Option<String>,
            Option<String>,
            Option<Vec<String>>,
        );
        let get = || -> std::result::Result<ConRow, postgres::Error> {
            Ok((
                row.try_get(0)?,
                row.try_get(1)?,
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
                row.try_get(6)?,
            ))
        };
        let (oid, name, contype, cols, ref_schema, ref_rel, ref_cols) =
            get().map_err(|e| bad_row("constraint", e))?;
        let Some(rel) = by_oid.get_mut(&oid) else {
            continue;
        };
        match (contype.as_str(), ref_schema, ref_rel) {
            ("p", _, _) => rel.primary_key = cols,
            ("f", Some(ref_schema), Some(ref_relation)) => rel.foreign_keys.push(ForeignKey {
                name,
                columns: cols,
                ref_schema,
                ref_relation,
                ref_columns: ref_cols.unwrap_or_default(),
            }),
            _ => {}
        }
    }

    let mut relations: Vec<Relation> = by_oid.into_values().collect();
    for rel in &mut relations {
        rel.foreign_keys
            .sort_by(|a, b| (&a.name, &a.columns).cmp(&(&b.name, &b.columns)));
    }
    relations.sort_by(|a, b| (&a.schema, &a.name).cmp(&(&b.schema, &b.name)));
    Ok(Model { relations })
}
