//! Instances of a service started together on a database nobody has migrated yet (a
//! first deployment with several replicas): every one must come up.

use migrations::testing::{create_database, drop_database};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn instances_starting_at_once_on_a_fresh_database_all_create_the_schema_and_migrate() {
    for round in 0..5 {
        let url = create_database().await.expect("a test database");
        let starts = (0..8).map(|_| migrations::connect_and_migrate(&url, "oms", 1, &migrations::OMS));
        let started = futures::future::join_all(starts).await;
        let failed: Vec<String> = started.iter().filter_map(|s| s.as_ref().err()).map(|e| format!("{e:#}")).collect();
        assert!(failed.is_empty(), "round {round}: {} of 8 starts failed: {failed:?}", failed.len());
        let pool = started.into_iter().next().expect("a start").expect("started");
        let migrated: i64 =
            sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations").fetch_one(&pool).await.expect("migrations");
        assert_eq!(migrated, migrations::OMS.iter().count() as i64, "round {round}: every migration applied once");
        pool.close().await;
        drop_database(&url).await.expect("dropped");
    }
}
