//! Everything PostgreSQL: connection resolution, the embedded cluster,
//! the psql/pg_dump runner and the half_orm_meta metadata.

pub mod cluster;
pub mod conn;
pub mod database;
pub mod meta;
pub mod pgbin;
pub mod psql;
pub mod temp;
