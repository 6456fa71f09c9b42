//! Memories: de-duplication per person, prefixes, people kept apart in
//! full-text search, vectors, and episodic search over messages.

use cairn_core::MessageFilter;
use cairn_store::{MemoryStore, NewMemory, SavedMemory, StoreError};

use crate::{Harness, both};

both!(
    facts_are_kept_once_per_person_and_found_by_words,
    episodic_search_finds_messages_by_words,
    a_late_first_vector_makes_indexes_rebuild
);

pub fn fact(agent: &str, user: Option<&str>, text: &str) -> NewMemory {
    NewMemory {
        id: cairn_core::ids::new_id("mem"),
        agent: agent.into(),
        user_id: user.map(str::to_string),
        text: text.into(),
        hash: text.to_lowercase(),
        importance: 0.5,
        source: None,
        embedding: Some(vec![0.25, -0.5, 1.0]),
        embed_model: Some("test-model".into()),
        times: None,
        shared: false,
    }
}

async fn facts_are_kept_once_per_person_and_found_by_words<H: Harness>(h: H) {
    let s = h.open().await;
    let a = s
        .save_memory(&fact(
            "default",
            Some("ann"),
            "The staging server is called orion.",
        ))
        .await
        .unwrap();
    assert!(matches!(a, SavedMemory::New(_)));
    let again = s
        .save_memory(&fact(
            "default",
            Some("ann"),
            "The staging server is called orion.",
        ))
        .await
        .unwrap();
    assert!(
        matches!(again, SavedMemory::Duplicate(_)),
        "the same fact from the same person"
    );
    let bob = s
        .save_memory(&fact(
            "default",
            Some("bob"),
            "The staging server is called orion.",
        ))
        .await
        .unwrap();
    assert!(
        matches!(bob, SavedMemory::New(_)),
        "the same words from another person are theirs"
    );
    s.save_memory(&fact("default", Some("ann"), "Ann's dog is named Biscuit."))
        .await
        .unwrap();
    let id = a.record().id.clone();
    assert_eq!(
        s.get_memory("default", &id[..id.len() - 2])
            .await
            .unwrap()
            .id,
        id
    );
    assert!(matches!(
        s.get_memory("other", &id).await.unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert_eq!(
        s.list_memories("default", Some("ann"), 10)
            .await
            .unwrap()
            .len(),
        2
    );

    let terms = cairn_store::index_terms("staging servers");
    let ann = s
        .search_memory_text("default", Some(Some("ann")), &terms, 10)
        .await
        .unwrap();
    assert_eq!(ann.len(), 1, "ann sees her fact, not bob's");
    assert!(ann[0].1 > 0.0);
    let all = s
        .search_memory_text("default", None, &terms, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let hostile = vec![
        "orion'|!(".to_string(),
        "\"OR\"".to_string(),
        "NEAR".to_string(),
    ];
    s.search_memory_text("default", None, &hostile, 10)
        .await
        .unwrap();
    let counts = s.memory_term_counts(&terms, 100).await.unwrap();
    assert_eq!(counts.facts, 3);
    assert_eq!(counts.matching, vec![2, 2], "stemmed: servers ~ server");

    let rows = s.memories_by_rowid(&[ann[0].0]).await.unwrap();
    assert_eq!(rows[0].1.text, "The staging server is called orion.");
    let vectors = s.memory_vectors("test-model", 0, 10).await.unwrap();
    assert_eq!(vectors.len(), 3);
    assert_eq!(vectors[0].vector, vec![0.25, -0.5, 1.0]);
    let (added, removed) = s.memory_generation().await.unwrap();
    s.forget_memory("default", &id).await.unwrap();
    assert_eq!(s.memory_generation().await.unwrap(), (added, removed + 1));
    assert_eq!(s.memory_term_counts(&terms, 100).await.unwrap().facts, 2);
    let shared = s.refresh_memory(&bob.record().id, 0.9, true).await.unwrap();
    assert!(shared.shared && shared.importance >= 0.9);
    let seen = s
        .search_memory_text("default", Some(Some("ann")), &terms, 10)
        .await
        .unwrap();
    assert_eq!(seen.len(), 1, "a shared fact is everyone's");
}

/// An index reads vectors in row order after the last row it saw: a fact
/// saved without one and embedded after a later fact was indexed lies below
/// that cursor, so the generation must tell indexes to rebuild.
async fn a_late_first_vector_makes_indexes_rebuild<H: Harness>(h: H) {
    let s = h.open().await;
    let mut bare = fact("default", None, "The office plants are watered on Fridays.");
    bare.embedding = None;
    bare.embed_model = None;
    s.save_memory(&bare).await.unwrap();
    s.save_memory(&fact(
        "default",
        None,
        "The staging server is called orion.",
    ))
    .await
    .unwrap();
    let seen = s.memory_vectors("test-model", 0, 10).await.unwrap();
    assert_eq!(seen.len(), 1);
    let cursor = seen[0].rowid;
    let before = s.memory_generation().await.unwrap();
    let missing = s
        .memories_missing_vectors("default", "test-model", 10)
        .await
        .unwrap();
    assert_eq!(missing.len(), 1);
    let late = missing[0].0;
    assert!(late < cursor, "the backfilled row is below the cursor");
    s.set_memory_vector(late, "test-model", &[1.0, 0.0, 0.0])
        .await
        .unwrap();
    let after = s.memory_generation().await.unwrap();
    assert!(
        after.1 > before.1,
        "a first vector below the cursor must force a rebuild: {before:?} -> {after:?}"
    );
    assert!(
        s.memory_vectors("test-model", cursor, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.memory_vectors("test-model", 0, 10).await.unwrap().len(),
        2
    );
}

async fn episodic_search_finds_messages_by_words<H: Harness>(h: H) {
    use cairn_store::{JournalStore, SessionStore, StepCommit};
    let s = h.open().await;
    let run = crate::queued_run(&*s, "ep1").await;
    let mut lease = s
        .try_acquire_session("ep1", &run.id, 30_000)
        .await
        .unwrap()
        .unwrap();
    let said = cairn_core::Message::user_text("Remember that the invoices are due on the fifth.");
    let other = cairn_core::Message::user_text("Unrelated chatter about the weather.");
    s.commit_step(
        &run.id,
        Some(&mut lease),
        StepCommit {
            messages: vec![&said, &other],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let hits = s
        .search_messages("when are invoices due", &MessageFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(hits[0].seq, 1);
    assert_eq!(hits[0].agent, "default");
    assert_eq!(s.index_messages().await.unwrap(), 0, "indexed once");
    let none = MessageFilter {
        agent: Some("someone-else".into()),
        ..Default::default()
    };
    assert!(
        s.search_messages("invoices", &none, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.search_messages("\"*:(", &MessageFilter::default(), 10)
            .await
            .unwrap()
            .is_empty()
    );
}
