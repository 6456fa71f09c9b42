//! People's API keys on both backends: stored without their secret,
//! found by id, listed newest first, revoked once.

use cairn_core::keys::{ApiKeyRecord, PresentedKey, Role, mint};
use cairn_store::KeyStore;

use crate::{Harness, both};

both!(keys_are_stored_found_listed_and_revoked_once);

async fn keys_are_stored_found_listed_and_revoked_once<H: Harness>(h: H) {
    let s = h.open().await;
    let (id, sha, text) = mint(&[1u8; 38]);
    let alice = ApiKeyRecord {
        id: id.clone(),
        user_id: "alice".into(),
        role: Role::Member,
        agent: Some("helper".into()),
        secret_sha256: sha,
        created_at: 10,
        revoked_at: None,
    };
    s.create_key(&alice).await.unwrap();
    let (id2, sha2, _) = mint(&[2u8; 38]);
    let bob = ApiKeyRecord {
        id: id2.clone(),
        user_id: "bob".into(),
        role: Role::Viewer,
        agent: None,
        secret_sha256: sha2,
        created_at: 20,
        revoked_at: None,
    };
    s.create_key(&bob).await.unwrap();
    // The same id twice is refused.
    assert!(s.create_key(&bob).await.is_err());
    let found = h.open().await.get_key(&id).await.unwrap().unwrap();
    assert_eq!(found, alice);
    assert!(PresentedKey::parse(&text).unwrap().matches(&found));
    let listed: Vec<String> = s
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(listed, [id2.clone(), id.clone()]);
    assert!(s.revoke_key(&id, 30).await.unwrap());
    assert!(!s.revoke_key(&id, 40).await.unwrap(), "revoked once");
    assert!(!s.revoke_key("000000000000", 40).await.unwrap());
    assert_eq!(s.get_key(&id).await.unwrap().unwrap().revoked_at, Some(30));
    assert_eq!(s.get_key(&id2).await.unwrap().unwrap().revoked_at, None);
    assert!(s.get_key("nope").await.unwrap().is_none());
}
