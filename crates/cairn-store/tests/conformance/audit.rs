//! The audit log on both backends: appends from independent handles make
//! one gapless chain, and `verify_audit` finds each tampering done
//! directly in the database (edit, delete, insert, swap, a forged key,
//! the newest entries cut) at the entry where it happened.

use cairn_core::audit::{Actor, AuditEvent, AuditKey, ChainBreak, Head, NewAudit, Verdict};
use cairn_store::AuditStore;

use crate::{Harness, both};

both!(
    an_untouched_chain_verifies_and_concurrent_appends_make_one_chain,
    an_edit_is_found_where_it_was_made,
    a_deleted_entry_is_found,
    an_inserted_entry_is_found,
    swapped_entries_are_found,
    cutting_the_newest_entries_is_found_against_a_recorded_head,
    another_key_is_named,
);

fn key(c: char) -> AuditKey {
    AuditKey::from_hex(&c.to_string().repeat(64)).unwrap()
}

fn entry(i: usize) -> NewAudit {
    NewAudit::now(
        Actor::Key {
            key: format!("k{i}"),
            user: "alice".into(),
        },
        AuditEvent::Refused {
            surface: "api".into(),
            action: format!("POST /v1/thing/{i}"),
            status: 403,
            reason: "no".into(),
            suppressed: 0,
        },
    )
}

/// A log of `n` entries appended one at a time.
async fn log_of<H: Harness>(h: &H, n: usize) -> AuditKey {
    let s = h.open().await;
    let k = key('a');
    for i in 0..n {
        s.append_audit(&k, &[entry(i)]).await.unwrap();
    }
    k
}

async fn verdict<H: Harness>(h: &H, k: &AuditKey, head: Option<Head>) -> Verdict {
    h.open().await.verify_audit(k, head).await.unwrap()
}

fn broken_at(v: Verdict) -> ChainBreak {
    match v {
        Verdict::Broken { at, .. } => at,
        Verdict::Intact { .. } => panic!("tampering went unnoticed"),
    }
}

async fn an_untouched_chain_verifies_and_concurrent_appends_make_one_chain<H: Harness>(h: H) {
    let k = key('a');
    assert_eq!(
        verdict(&h, &k, None).await,
        Verdict::Intact {
            entries: 0,
            head: None
        }
    );
    // Two handles (two processes' worth of connections) append at once.
    let (a, b) = (h.open().await, h.open().await);
    let write = |s: std::sync::Arc<H::S>, base: usize| {
        let k = k.clone();
        tokio::spawn(async move {
            for i in 0..25 {
                let batch = [entry(base + 2 * i), entry(base + 2 * i + 1)];
                s.append_audit(&k, &batch).await.unwrap();
            }
        })
    };
    let (x, y) = (write(a, 0), write(b, 1000));
    x.await.unwrap();
    y.await.unwrap();
    let rows = h.open().await.audit_page(0, 1000).await.unwrap();
    let seqs: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
    // A batch's entries stay together, in order.
    for pair in rows.chunks(2) {
        let (e0, e1) = (pair[0].event().unwrap(), pair[1].event().unwrap());
        let (AuditEvent::Refused { action: a0, .. }, AuditEvent::Refused { action: a1, .. }) =
            (e0, e1)
        else {
            panic!("events changed kind")
        };
        let n = |a: &str| a.rsplit('/').next().unwrap().parse::<usize>().unwrap();
        assert_eq!(n(&a0) + 1, n(&a1));
    }
    let Verdict::Intact { entries, head } = verdict(&h, &k, None).await else {
        panic!("an untouched chain must verify")
    };
    assert_eq!(entries, 100);
    assert_eq!(head.unwrap().seq, 100);
    let tail = h.open().await.audit_tail(3).await.unwrap();
    assert_eq!(
        tail.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [98, 99, 100]
    );
}

async fn an_edit_is_found_where_it_was_made<H: Harness>(h: H) {
    let k = log_of(&h, 10).await;
    h.tamper("UPDATE audit_log SET event = replace(event, '403', '200') WHERE seq = 6")
        .await;
    match verdict(&h, &k, None).await {
        Verdict::Broken { intact, at } => {
            assert_eq!(intact, 5);
            assert_eq!(at, ChainBreak::Edited { seq: 6 });
        }
        v => panic!("edit not found: {v:?}"),
    }
    // Moving the time is an edit too.
    let k = key('a');
    h.tamper(
        "UPDATE audit_log SET event = replace(event, '200', '403'), at = at - 1 WHERE seq = 6",
    )
    .await;
    assert_eq!(
        broken_at(verdict(&h, &k, None).await),
        ChainBreak::Edited { seq: 6 }
    );
}

async fn a_deleted_entry_is_found<H: Harness>(h: H) {
    let k = log_of(&h, 10).await;
    h.tamper("DELETE FROM audit_log WHERE seq IN (4, 5)").await;
    assert_eq!(
        broken_at(verdict(&h, &k, None).await),
        ChainBreak::Missing { from: 4, to: 5 }
    );
    // Renumbering to hide the gap breaks the seals instead.
    h.tamper("UPDATE audit_log SET seq = seq - 2 WHERE seq > 5")
        .await;
    assert_eq!(
        broken_at(verdict(&h, &k, None).await),
        ChainBreak::Edited { seq: 4 }
    );
}

async fn an_inserted_entry_is_found<H: Harness>(h: H) {
    let k = log_of(&h, 10).await;
    // Make room at 5 and copy entry 4 there, linked to 4's seal.
    h.tamper("UPDATE audit_log SET seq = seq + 1000 WHERE seq >= 5")
        .await;
    h.tamper("UPDATE audit_log SET seq = seq - 999 WHERE seq >= 1000")
        .await;
    h.tamper(
        "INSERT INTO audit_log (seq, at, key_id, actor, event, prev, seal)
         SELECT 5, at, key_id, actor, event, seal, seal FROM audit_log WHERE seq = 4",
    )
    .await;
    assert_eq!(
        broken_at(verdict(&h, &k, None).await),
        ChainBreak::Edited { seq: 5 }
    );
}

async fn swapped_entries_are_found<H: Harness>(h: H) {
    let k = log_of(&h, 10).await;
    h.tamper("UPDATE audit_log SET seq = -1 WHERE seq = 3")
        .await;
    h.tamper("UPDATE audit_log SET seq = 3 WHERE seq = 7").await;
    h.tamper("UPDATE audit_log SET seq = 7 WHERE seq = -1")
        .await;
    assert_eq!(
        broken_at(verdict(&h, &k, None).await),
        ChainBreak::Edited { seq: 3 }
    );
}

async fn cutting_the_newest_entries_is_found_against_a_recorded_head<H: Harness>(h: H) {
    let k = log_of(&h, 10).await;
    let Verdict::Intact { head, .. } = verdict(&h, &k, None).await else {
        panic!("untouched")
    };
    let head = head.unwrap();
    assert_eq!(head.seq, 10);
    h.open().await.append_audit(&k, &[entry(10)]).await.unwrap();
    // The recorded head is still in a chain that grew.
    assert!(matches!(
        verdict(&h, &k, Some(head.clone())).await,
        Verdict::Intact { entries: 11, .. }
    ));
    h.tamper("DELETE FROM audit_log WHERE seq >= 9").await;
    // Without a head, a shorter chain is still a valid chain...
    assert!(matches!(
        verdict(&h, &k, None).await,
        Verdict::Intact { entries: 8, .. }
    ));
    // ...with one, the cut is found.
    assert_eq!(
        broken_at(verdict(&h, &k, Some(head.clone())).await),
        ChainBreak::HeadLost { head }
    );
}

async fn another_key_is_named<H: Harness>(h: H) {
    let k = log_of(&h, 3).await;
    let other = key('b');
    match broken_at(verdict(&h, &other, None).await) {
        ChainBreak::OtherKey { seq, key_id, ours } => {
            assert_eq!(seq, 1);
            assert_eq!(key_id, k.id());
            assert_eq!(ours, other.id());
        }
        b => panic!("wrong break: {b:?}"),
    }
    // An entry forged with another key in an otherwise good chain.
    h.open()
        .await
        .append_audit(&other, &[entry(3)])
        .await
        .unwrap();
    assert!(matches!(
        broken_at(verdict(&h, &k, None).await),
        ChainBreak::OtherKey { seq: 4, .. }
    ));
}
