//! The two backends rank memories alike: the same facts, the same query
//! words, the same order and BM25 within a small margin (their stemmers
//! differ slightly: porter in FTS5, snowball english in PostgreSQL).

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
];

const QUERIES: &[&[&str]] = &[
    &["staging", "server", "release"],
    &["servers", "production"],
    &["database", "backups", "nightly"],
    &["tea", "sugar"],
    &["release", "checklist", "wiki"],
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
    for q in QUERIES {
        let terms: Vec<String> = q.iter().map(|t| t.to_string()).collect();
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
        for (x, y) in a.iter().zip(&b) {
            let margin = (x.1 - y.1).abs() / x.1.abs().max(1e-9);
            assert!(
                margin < 0.05,
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
