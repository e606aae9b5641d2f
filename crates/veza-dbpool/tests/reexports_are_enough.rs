//! A user calls the query helpers with the driver's types through this crate's re-export
//! alone (`veza_dbpool::tokio_postgres`).

mod common;

use veza_dbpool::tokio_postgres::types::{ToSql, Type};

#[test]
fn the_driver_types_come_from_the_reexport() {
    common::runtime().block_on(async {
        let pool = veza_dbpool::Pool::new(common::config("reexport", 1)).unwrap();
        let mut conn = pool.get().await.unwrap();
        let n: i64 = 41;
        let value: &(dyn ToSql + Sync) = &n;
        let rows: Vec<veza_dbpool::tokio_postgres::Row> = conn
            .query_cached("SELECT $1::int8 + 1", &[(value, Type::INT8)])
            .await
            .unwrap();
        assert_eq!(rows[0].get::<_, i64>(0), 42);
    });
}
