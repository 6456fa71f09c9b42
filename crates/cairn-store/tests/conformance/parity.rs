//! The two backends rank memories alike: the same facts, the same query
//! terms, the same order and the same BM25. Both index the terms cairn
//! analyses (`index_terms`), so words their own tokenizers split or stem
//! differently (hyphens, addresses, "weekly") match alike.

use cairn_store::MemoryStore;

use crate::memories::fact;
use crate::{Harness, postgres, sqlite};

const FACTS: &[&str] = &[
    "The staging server is called orion and runs the release candidates.",
    "Production runs on three servers in the Frankfurt data centre.",
    "The user's dog is named Biscuit.",
    "Office plants are watered on Fridays.",
    "Backups of the database run nightly at two in the morning.",
    "The release checklist lives in the wiki under Operations.",
    "Maria prefers tea without sugar in the afternoon.",
    "The team's standup is at nine thirty every weekday.",
    "The VPN certificate expires in March and must be renewed.",
    "Invoices are sent on the first business day of each month.",
    "The pre-production box sends a weekly report to ops@example.com.",
    "Maria generously covers the team's coffee on v2.5 release days.",
];

const QUERIES: &[&[&str]] = &[
    &["staging", "server", "release"],
    &["servers", "production"],
    &["database", "backups", "nightly"],
    &["tea", "sugar"],
    &["release", "checklist", "wiki"],
    &["production", "weekly", "ops", "example"],
    &["generous", "coffee", "v2", "5"],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_rank_the_same_facts_the_same_way() {
    let lite_h = sqlite();
    let pg_h = postgres().await;
    let lite = lite_h.open().await;
    let pg = pg_h.open().await;
    for f in FACTS {
        lite.save_memory(&fact("default", None, f)).await.unwrap();
        pg.save_memory(&fact("default", None, f)).await.unwrap();
    }
    assert_same_ranking(&*lite, &*pg).await;
}

/// Facts saved on PostgreSQL before the store analysed words itself
/// (migration 0015) get their terms when a store connects, and the word
/// total BM25 uses follows: the ranking is SQLite's again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facts_without_terms_are_filled_in_when_postgresql_opens() {
    let lite_h = sqlite();
    let pg_h = postgres().await;
    let lite = lite_h.open().await;
    let pg = pg_h.open().await;
    for f in FACTS {
        lite.save_memory(&fact("default", None, f)).await.unwrap();
        pg.save_memory(&fact("default", None, f)).await.unwrap();
    }
    drop(pg);
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(pg_h.0.url())
        .await
        .unwrap();
    sqlx::query("UPDATE memories SET terms = NULL")
        .execute(&mut conn)
        .await
        .unwrap();
    let words: i64 = sqlx::query_scalar("SELECT words FROM memory_generation")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(words, 0, "no terms, no words");
    let pg = pg_h.open().await;
    assert_same_ranking(&*lite, &*pg).await;
}

/// Every query finds the same facts on both stores, in the same order,
/// with the same BM25 and the same word counts.
async fn assert_same_ranking(lite: &impl MemoryStore, pg: &impl MemoryStore) {
    for q in QUERIES {
        let terms: Vec<String> = q.iter().flat_map(|t| cairn_store::index_terms(t)).collect();
        let a = lite
            .search_memory_text("default", None, &terms, 10)
            .await
            .unwrap();
        let b = pg
            .search_memory_text("default", None, &terms, 10)
            .await
            .unwrap();
        let text = |rows: &[(i64, f64)]| rows.iter().map(|r| r.0).collect::<Vec<_>>();
        assert_eq!(text(&a), text(&b), "order for {q:?}: {a:?} vs {b:?}");
        assert!(!a.is_empty(), "{q:?} finds nothing");
        for (x, y) in a.iter().zip(&b) {
            let margin = (x.1 - y.1).abs() / x.1.abs().max(1e-9);
            assert!(
                margin < 1e-6,
                "BM25 for {q:?}: sqlite {} vs postgres {}",
                x.1,
                y.1
            );
        }
        let ca = lite.memory_term_counts(&terms, 100).await.unwrap();
        let cb = pg.memory_term_counts(&terms, 100).await.unwrap();
        assert_eq!(ca, cb, "word counts for {q:?}");
    }
}
