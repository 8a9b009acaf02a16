use super::*;

fn alert(source: &str, id: &str) -> Record {
    Record {
        kind: RecordKind::Alert,
        source: source.into(),
        alert_id: id.into(),
        payload: vec![7; 100].into(),
        received_at_ms: 0,
    }
}

fn submit(s: &mut ClusterState, at: u64, records: Vec<Record>) -> Response {
    s.apply(&Request {
        stamped_at_ms: at,
        key: None,
        command: Command::Submit { records },
    })
}

fn accepted(resp: &Response) -> Vec<Option<u64>> {
    match resp {
        Response::Submitted { outcomes } => outcomes
            .iter()
            .map(|o| match o {
                SubmitOutcome::Accepted { seq } => Some(*seq),
                SubmitOutcome::Duplicate => None,
            })
            .collect(),
        other => panic!("not submitted: {other:?}"),
    }
}

#[test]
fn duplicates_across_and_inside_batches_are_accepted_once() {
    let mut s = ClusterState::default();
    let r = submit(
        &mut s,
        1_000,
        vec![alert("a", "1"), alert("a", "2"), alert("a", "1")],
    );
    assert_eq!(accepted(&r), vec![Some(1), Some(2), None]);
    let r = submit(&mut s, 2_000, vec![alert("a", "2"), alert("b", "2")]);
    assert_eq!(accepted(&r), vec![None, Some(3)]);
    assert_eq!(s.outbox().len(), 3);
}

#[test]
fn activity_records_are_not_deduplicated() {
    let mut s = ClusterState::default();
    let act = Record {
        kind: RecordKind::Activity,
        source: "node-1".into(),
        alert_id: String::new(),
        payload: b"x".to_vec().into(),
        received_at_ms: 0,
    };
    let r = submit(&mut s, 1, vec![act.clone(), act]);
    assert_eq!(accepted(&r), vec![Some(1), Some(2)]);
    assert!(s.dedup().is_empty());
}

#[test]
fn invalid_records_refuse_the_batch() {
    let mut s = ClusterState::default();
    let r = submit(&mut s, 1, vec![alert("a", "1"), alert("a", "")]);
    assert!(
        matches!(r, Response::Refused(Refusal::InvalidField { ref field, .. }) if field == "alert_id"),
        "{r:?}"
    );
    assert!(s.outbox().is_empty() && s.dedup().is_empty());
}

#[test]
fn full_outbox_refuses_whole_batch_and_remembers_no_key() {
    let limits = ClusterLimits {
        dedup: DedupWindow::default(),
        outbox: OutboxLimits {
            max_records: 2,
            max_bytes: u64::MAX,
        },
    };
    let mut s = ClusterState::new(limits);
    assert_eq!(
        accepted(&submit(&mut s, 1, vec![alert("a", "1")])),
        vec![Some(1)]
    );
    let r = submit(&mut s, 2, vec![alert("a", "2"), alert("a", "3")]);
    assert!(
        matches!(r, Response::Refused(Refusal::OutboxFull(_))),
        "{r:?}"
    );
    assert_eq!(s.outbox().len(), 1);
    // duplicates do not count against the bound
    assert_eq!(
        accepted(&submit(&mut s, 3, vec![alert("a", "1"), alert("a", "2")])),
        vec![None, Some(2)]
    );
    // delivery frees room; the refused key 3 was never remembered
    s.apply(&Request {
        stamped_at_ms: 4,
        key: None,
        command: Command::Delivered { up_to_seq: 2 },
    });
    assert_eq!(
        accepted(&submit(&mut s, 5, vec![alert("a", "3")])),
        vec![Some(3)]
    );
}

#[test]
fn dedup_uses_leader_time_and_never_goes_back() {
    let limits = ClusterLimits {
        dedup: DedupWindow {
            retention_ms: 1_000,
            max_keys: 100,
        },
        outbox: OutboxLimits::default(),
    };
    let mut s = ClusterState::new(limits);
    submit(&mut s, 10_000, vec![alert("a", "1")]);
    // a new leader whose clock is behind: replicated time stays at 10_000
    assert_eq!(
        accepted(&submit(&mut s, 5_000, vec![alert("a", "1")])),
        vec![None]
    );
    assert_eq!(s.clock_ms(), 10_000);
    assert_eq!(
        accepted(&submit(&mut s, 10_999, vec![alert("a", "1")])),
        vec![None]
    );
    assert_eq!(
        accepted(&submit(&mut s, 11_000, vec![alert("a", "1")])),
        vec![Some(2)]
    );
}

#[test]
fn settings_update_is_validated_and_conditional() {
    let mut s = ClusterState::default();
    let new = SiemSettings {
        host: "siem.example.net".into(),
        port: 6514,
        ..Default::default()
    };
    let upd = |exp: Option<u64>, st: &SiemSettings| Request {
        stamped_at_ms: 1,
        key: None,
        command: Command::UpdateSettings {
            expected_revision: exp,
            settings: st.clone(),
        },
    };
    assert_eq!(
        s.apply(&upd(Some(0), &new)),
        Response::SettingsUpdated { revision: 1 }
    );
    assert_eq!(
        s.apply(&upd(Some(0), &new)),
        Response::Refused(Refusal::RevisionMismatch {
            expected: 0,
            actual: 1
        })
    );
    let bad = SiemSettings {
        tls_enabled: true,
        ..new.clone()
    };
    assert!(matches!(
        s.apply(&upd(None, &bad)),
        Response::Refused(Refusal::InvalidSettings(_))
    ));
    assert_eq!(s.settings().1, 1);
    assert_eq!(s.settings().0, &new);
    assert_eq!(
        s.apply(&upd(None, &new)),
        Response::SettingsUpdated { revision: 2 }
    );
}

#[test]
fn users_are_stored_hashed_and_authenticate() {
    let mut s = ClusterState::default();
    let user = User {
        role: Role::SecurityAuditor,
        token_sha256: hash_token("secret-token"),
    };
    s.apply(&Request {
        stamped_at_ms: 1,
        key: None,
        command: Command::PutUser {
            name: "audit".into(),
            user,
        },
    });
    assert_eq!(
        s.authenticate("secret-token"),
        Some(("audit", Role::SecurityAuditor))
    );
    assert_eq!(s.authenticate("other"), None);
    s.apply(&Request {
        stamped_at_ms: 2,
        key: None,
        command: Command::RemoveUser {
            name: "audit".into(),
        },
    });
    assert_eq!(s.authenticate("secret-token"), None);
}

#[test]
fn the_first_administrator_is_added_only_while_there_is_none_and_the_last_stays() {
    let mut s = ClusterState::default();
    let first = |token: &str| Request {
        stamped_at_ms: 1,
        key: None,
        command: Command::AddFirstAdministrator {
            name: "admin".into(),
            token_sha256: hash_token(token),
        },
    };
    assert_eq!(s.apply(&first("bootstrap-token")), Response::Done);
    // A second bootstrap (another node's config, a restart) changes nothing.
    assert_eq!(s.apply(&first("other-token")), Response::Done);
    assert_eq!(
        s.authenticate("bootstrap-token"),
        Some(("admin", Role::Administrator))
    );
    assert_eq!(s.authenticate("other-token"), None);
    let remove = s.apply(&Request {
        stamped_at_ms: 2,
        key: None,
        command: Command::RemoveUser {
            name: "admin".into(),
        },
    });
    assert_eq!(
        remove,
        Response::Refused(Refusal::LastAdministrator {
            name: "admin".into()
        })
    );
    assert_eq!(s.users().len(), 1);
}

#[test]
fn image_round_trip_keeps_everything() {
    let mut s = ClusterState::default();
    submit(
        &mut s,
        100,
        (0..20).map(|i| alert("a", &i.to_string())).collect(),
    );
    s.apply(&Request {
        stamped_at_ms: 200,
        key: None,
        command: Command::Delivered { up_to_seq: 5 },
    });
    let bytes = crate::codec::encode(&s.to_image()).unwrap();
    let mut t = ClusterState::from_image(crate::codec::decode(&bytes).unwrap());
    assert_eq!(t.outbox().delivered_up_to(), 5);
    assert_eq!(t.outbox().len(), 15);
    assert_eq!(t.dedup().len(), 20);
    assert_eq!(
        accepted(&submit(
            &mut t,
            300,
            vec![alert("a", "3"), alert("a", "20")]
        )),
        vec![None, Some(21)]
    );
}

#[test]
fn random_sequences_are_deterministic() {
    // Two replicas fed the same random sequence end in the same state. Seed printed for replay.
    use rand::Rng;
    let (_seed, mut rng) = crate::test_support::seeded_rng("random_sequences_are_deterministic");
    let limits = ClusterLimits {
        dedup: DedupWindow {
            retention_ms: 500,
            max_keys: 50,
        },
        outbox: OutboxLimits {
            max_records: 40,
            max_bytes: 40 * 200,
        },
    };
    let (mut a, mut b) = (ClusterState::new(limits), ClusterState::new(limits));
    let mut t = 0u64;
    for _ in 0..2_000 {
        t += rng.random_range(0..50);
        let cmd = if rng.random_bool(0.2) {
            Command::Delivered {
                up_to_seq: rng.random_range(0..a.outbox().next_seq() + 2),
            }
        } else {
            let n = rng.random_range(1..5);
            Command::Submit {
                records: (0..n)
                    .map(|_| alert("s", &rng.random_range(0..80).to_string()))
                    .collect(),
            }
        };
        // now and then a keyed write, its key drawn from few so that copies occur
        let key = rng.random_bool(0.1).then(|| WriteKey {
            boot: 1,
            seq: rng.random_range(0..20),
        });
        let req = Request {
            stamped_at_ms: t,
            key,
            command: cmd,
        };
        // one replica copies, the other moves the records: same results
        assert_eq!(a.apply(&req), b.apply_owned(req.clone()));
        assert!(a.outbox().len() as u64 <= limits.outbox.max_records);
        assert!(a.dedup().len() <= limits.dedup.max_keys);
    }
    assert_eq!(
        crate::codec::encode(&a.to_image()).unwrap(),
        crate::codec::encode(&b.to_image()).unwrap()
    );
}

#[test]
fn a_leader_clock_a_day_ahead_moves_the_replicated_clock_by_a_bounded_step() {
    let day = 24 * 3600 * 1000;
    let limits = ClusterLimits {
        dedup: DedupWindow {
            retention_ms: day,
            max_keys: 1_000,
        },
        outbox: OutboxLimits::default(),
    };
    let t0 = 1_700_000_000_000;
    let mut s = ClusterState::new(limits);
    // A day of keys, one every ten minutes.
    for i in 0..144u64 {
        submit(&mut s, t0 + i * 600_000, vec![alert("a", &i.to_string())]);
    }
    let honest = s.clock_ms();
    assert_eq!(s.dedup().len(), 144);
    // A leader whose wall clock jumped a day ahead proposes one entry.
    submit(&mut s, honest + day + 1, vec![alert("b", "1")]);
    assert!(
        s.clock_ms() <= honest + MAX_CLOCK_STEP_MS,
        "one entry moved the clock by {} ms",
        s.clock_ms() - honest
    );
    // Keys older than the step stay remembered: the index was not emptied at once.
    assert!(s.dedup().len() >= 144, "index has {} keys", s.dedup().len());
    assert_eq!(
        accepted(&submit(&mut s, honest + day + 2, vec![alert("a", "1000")])),
        vec![Some(146)]
    );
    assert_eq!(
        accepted(&submit(&mut s, honest + 1, vec![alert("a", "143")])),
        vec![None]
    );
    // An honest leader takes over: its entries move the clock by their own (small) steps.
    let before = s.clock_ms();
    submit(&mut s, honest + 500, vec![alert("c", "1")]);
    assert_eq!(s.clock_ms(), before, "the clock went back or jumped");
    // Both ways of applying agree.
    let mut t = ClusterState::new(limits);
    t.apply_owned(Request {
        stamped_at_ms: t0,
        key: None,
        command: Command::Submit {
            records: vec![alert("a", "0")],
        },
    });
    t.apply_owned(Request {
        stamped_at_ms: t0 + day,
        key: None,
        command: Command::Submit {
            records: vec![alert("a", "1")],
        },
    });
    assert_eq!(t.clock_ms(), t0 + MAX_CLOCK_STEP_MS);
}

#[test]
fn a_keyed_write_applied_again_changes_nothing_and_gets_its_first_response() {
    let mut s = ClusterState::default();
    let key = |seq: u64| Some(WriteKey { boot: 9, seq });
    let update = |at: u64, k: Option<WriteKey>, port: u16| Request {
        stamped_at_ms: at,
        key: k,
        command: Command::UpdateSettings {
            expected_revision: Some(0),
            settings: SiemSettings {
                host: "siem.example.net".into(),
                port,
                ..Default::default()
            },
        },
    };
    let first = s.apply(&update(1, key(1), 6514));
    assert_eq!(first, Response::SettingsUpdated { revision: 1 });
    assert_eq!(
        s.apply(&update(2, key(1), 6514)),
        first,
        "the same key again"
    );
    assert_eq!(s.settings().1, 1);
    // Another key is another write: refused, and a refusal is not remembered.
    assert!(matches!(
        s.apply(&update(3, key(2), 6515)),
        Response::Refused(Refusal::RevisionMismatch { .. })
    ));
    assert!(s.recent.get(&WriteKey { boot: 9, seq: 2 }).is_none());

    // An activity record under a key: one copy, the same outcome for the copy.
    let activity = Record {
        kind: RecordKind::Activity,
        source: "node-1".into(),
        alert_id: String::new(),
        payload: vec![1; 10].into(),
        received_at_ms: 0,
    };
    let once = |at: u64| Request {
        stamped_at_ms: at,
        key: key(3),
        command: Command::Submit {
            records: vec![activity.clone()],
        },
    };
    let first = s.apply(&once(4));
    assert_eq!(accepted(&first), vec![Some(1)]);
    // The memory survives a snapshot: a replica that installed it answers the copy the same way.
    let bytes = crate::codec::encode(&s.to_image()).unwrap();
    let mut t = ClusterState::from_image(crate::codec::decode(&bytes).unwrap());
    for state in [&mut s, &mut t] {
        assert_eq!(state.apply(&once(5)), first);
        assert_eq!(state.outbox().len(), 1);
    }
    assert_eq!(
        crate::codec::encode(&s.to_image()).unwrap(),
        crate::codec::encode(&t.to_image()).unwrap()
    );
}

#[test]
fn only_writes_that_are_not_idempotent_need_a_key() {
    let activity = Record {
        kind: RecordKind::Activity,
        source: "n".into(),
        alert_id: String::new(),
        payload: vec![1].into(),
        received_at_ms: 0,
    };
    assert!(
        Command::Submit {
            records: vec![alert("s", "1"), alert("s", "2")]
        }
        .is_idempotent()
    );
    assert!(
        !Command::Submit {
            records: vec![alert("s", "1"), activity]
        }
        .is_idempotent()
    );
    assert!(Command::Delivered { up_to_seq: 3 }.is_idempotent());
    assert!(!Command::RemoveUser { name: "a".into() }.is_idempotent());
    assert!(!Command::RetireNode { node_id: 4 }.is_idempotent());
}
