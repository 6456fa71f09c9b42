//! Cluster membership: a join token is spent once, even by two
//! coordinators at the same instant; refusals say why and spend nothing;
//! revocation and heartbeats are seen by every handle.

use cairn_core::cluster::{JoinTokenRecord, Labels, NodeRecord, Redemption};
use cairn_core::now_ms;
use cairn_store::ClusterStore;

use crate::{Harness, both};

both!(join_tokens_are_spent_once, nodes_heartbeat_and_are_revoked);

fn token(id: &str, expires_in: i64) -> JoinTokenRecord {
    JoinTokenRecord {
        id: id.into(),
        secret_sha256: format!("hash-of-{id}"),
        labels: Labels::parse("region=eu").unwrap(),
        expires_at: now_ms() + expires_in,
        created_at: now_ms(),
    }
}

fn node(id: &str, fp: &str) -> NodeRecord {
    NodeRecord {
        id: id.into(),
        name: id.into(),
        // Whatever a joiner claims, the token's labels are recorded.
        labels: Labels::parse("cap=gpu").unwrap(),
        cert_sha256: fp.into(),
        slots: 2,
        running: 0,
        coordinator: None,
        joined_at: 0,
        last_seen: None,
        revoked_at: None,
    }
}

async fn join_tokens_are_spent_once<H: Harness>(h: H) {
    let (a, b) = (h.open().await, h.open().await);
    a.create_join_token(&token("t1", 60_000)).await.unwrap();
    a.create_join_token(&token("old", -1)).await.unwrap();
    assert_eq!(
        a.join_token_labels("t1").await.unwrap(),
        Some(Labels::parse("region=eu").unwrap())
    );
    assert_eq!(a.join_token_labels("nope").await.unwrap(), None);
    let now = now_ms();
    assert_eq!(
        a.redeem_join_token("t1", "wrong", &node("n0", "f0"), now)
            .await
            .unwrap(),
        Redemption::Unknown
    );
    assert_eq!(
        a.redeem_join_token("old", "hash-of-old", &node("n0", "f0"), now)
            .await
            .unwrap(),
        Redemption::Expired
    );
    assert_eq!(
        a.redeem_join_token("ghost", "x", &node("n0", "f0"), now)
            .await
            .unwrap(),
        Redemption::Unknown
    );
    // Two coordinators redeem the same token at once: one node joins.
    let (n1, n2) = (node("n1", "f1"), node("n2", "f2"));
    let (ra, rb) = tokio::join!(
        a.redeem_join_token("t1", "hash-of-t1", &n1, now),
        b.redeem_join_token("t1", "hash-of-t1", &n2, now),
    );
    let outcomes = [ra.unwrap(), rb.unwrap()];
    let joined: Vec<_> = outcomes
        .iter()
        .filter_map(|o| match o {
            Redemption::Joined(n) => Some(n.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(joined.len(), 1, "{outcomes:?}");
    assert!(outcomes.contains(&Redemption::Used), "{outcomes:?}");
    assert_eq!(joined[0].labels, Labels::parse("region=eu").unwrap());
    assert_eq!(a.list_nodes().await.unwrap().len(), 1);
    assert_eq!(
        a.redeem_join_token("t1", "hash-of-t1", &node("n3", "f3"), now_ms())
            .await
            .unwrap(),
        Redemption::Used
    );
}

async fn nodes_heartbeat_and_are_revoked<H: Harness>(h: H) {
    let (a, b) = (h.open().await, h.open().await);
    a.create_join_token(&token("t", 60_000)).await.unwrap();
    let Redemption::Joined(n) = a
        .redeem_join_token("t", "hash-of-t", &node("n1", "fp1"), now_ms())
        .await
        .unwrap()
    else {
        panic!("joins");
    };
    a.node_seen(&n.id, Some("coord-a"), 8, 3).await.unwrap();
    let seen = b.node_by_cert("fp1").await.unwrap().unwrap();
    assert_eq!(seen.coordinator.as_deref(), Some("coord-a"));
    assert_eq!((seen.slots, seen.running), (8, 3));
    assert!(seen.last_seen.is_some() && seen.revoked_at.is_none());
    assert!(b.node_by_cert("other").await.unwrap().is_none());
    assert!(b.revoke_node("n1").await.unwrap());
    assert!(!b.revoke_node("nobody").await.unwrap());
    let revoked = a.node_by_cert("fp1").await.unwrap().unwrap();
    let at = revoked.revoked_at.unwrap();
    assert!(b.revoke_node("n1").await.unwrap());
    assert_eq!(
        a.node_by_cert("fp1").await.unwrap().unwrap().revoked_at,
        Some(at),
        "revoking again keeps the first time"
    );
}
