//! The full-text side of memory search through the store: word counts
//! (the IDF of each query word) follow saves and deletions, and user text
//! cannot inject FTS5 syntax.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cairn_store::{NewMemory, Store};

fn fact(id: &str, text: &str) -> NewMemory {
    NewMemory {
        id: id.into(),
        agent: "a".into(),
        user_id: None,
        text: text.into(),
        hash: id.into(),
        importance: 0.5,
        source: None,
        embedding: None,
        embed_model: None,
        times: None,
        shared: false,
    }
}

/// Each word as the index holds it (hostile ones that analyse to nothing
/// are passed as they are: the store must still treat them literally).
fn words(w: &[&str]) -> Vec<String> {
    w.iter()
        .map(|s| {
            cairn_store::index_terms(s)
                .into_iter()
                .next()
                .unwrap_or_else(|| s.to_string())
        })
        .collect()
}

#[tokio::test]
async fn word_counts_follow_saves_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("cairn.db"))
        .await
        .unwrap();
    store
        .save_memories(&[
            fact("mem_1", "The staging server is called orion."),
            fact("mem_2", "The build server is called vulcan."),
            fact("mem_3", "The dog is named Biscuit."),
        ])
        .await
        .unwrap();
    let counts = store
        .memory_term_counts(&words(&["server", "orion", "servers", "cat"]), 100)
        .await
        .unwrap();
    assert_eq!(counts.facts, 3);
    // "servers" is stemmed as the index holds it.
    assert_eq!(counts.matching, [2, 1, 2, 0]);
    // Capped: a count at the cap means "at least".
    let capped = store
        .memory_term_counts(&words(&["server"]), 1)
        .await
        .unwrap();
    assert_eq!(capped.matching, [1]);

    store.forget_memory("a", "mem_1").await.unwrap();
    let counts = store
        .memory_term_counts(&words(&["server", "orion"]), 100)
        .await
        .unwrap();
    assert_eq!((counts.facts, counts.matching), (2, vec![1, 0]));

    // Best first, with a positive BM25.
    let hits = store
        .search_memory_text("a", None, &words(&["vulcan", "dog"]), 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 2);
    assert!(hits.iter().all(|(_, s)| *s > 0.0), "{hits:?}");
    // FTS5 syntax in a word is literal, never an error or an operator.
    for hostile in ["\"", "NEAR(", "a\" OR \"b", "*", "col:x"] {
        store
            .search_memory_text("a", None, &words(&[hostile]), 10)
            .await
            .unwrap();
        store
            .memory_term_counts(&words(&[hostile]), 10)
            .await
            .unwrap();
    }
    assert!(
        store
            .search_memory_text("a", None, &[], 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Facts saved before the store analysed words itself (migration 0015)
/// get their terms when the store opens, and are found by them.
#[tokio::test]
async fn facts_without_terms_are_indexed_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cairn.db");
    let store = Store::open_sqlite(&path).await.unwrap();
    store
        .save_memories(&[
            fact("mem_1", "The staging servers are called orion."),
            fact("mem_2", "The dog is named Biscuit."),
        ])
        .await
        .unwrap();
    drop(store);
    // As a database from before 0015 looks after migrating: no terms.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        path.display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE memories SET terms = NULL")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let store = Store::open_sqlite(&path).await.unwrap();
    let hits = store
        .search_memory_text("a", None, &words(&["server", "biscuits"]), 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 2, "{hits:?}");
    let counts = store
        .memory_term_counts(&words(&["server", "orion", "dog"]), 100)
        .await
        .unwrap();
    assert_eq!((counts.facts, counts.matching), (2, vec![1, 1, 1]));
}
