//! The store as a whole on a simulated disk that loses power: the order of its durable steps.

use super::fs::sim::{SimDisk, SimOp};
use super::*;
use crate::codec;
use crate::state::ClusterState;
use crate::types::{Entry, LogId, SnapshotMeta, StoredMembership};
use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader, RaftSnapshotBuilder};
use std::path::Path;

fn log_id(term: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn blank(index: u64) -> Entry {
    Entry {
        log_id: log_id(1, index),
        payload: EntryPayload::Blank,
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        segment_bytes: 4096,
        purge_waits_for_snapshot: std::time::Duration::from_secs(2),
    }
}

fn meta(last: u64, id: &str) -> SnapshotMeta {
    SnapshotMeta {
        last_log_id: Some(log_id(1, last)),
        last_membership: StoredMembership::default(),
        snapshot_id: id.into(),
    }
}

/// openraft 0.9 purges the log up to a snapshot received from the leader right after queuing
/// its installation to the state-machine worker, without waiting for it. If the power goes
/// before the snapshot file is durable, the purge point must not be durable beyond what the
/// saved snapshot covers: else the replica restarts with neither the entries nor the state they
/// built, and cannot start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_is_never_durable_beyond_the_saved_snapshot() {
    let disk = SimDisk::new(1);
    let dir = Path::new("/data");
    let (mut log, mut sm) = open_on(disk.fs(), dir, options()).unwrap();
    log.blocking_append((1..=10).map(blank)).await.unwrap();
    let data = codec::encode(&ClusterState::default().to_image()).unwrap();
    let mut received = sm.begin_receiving_snapshot().await.unwrap();
    received.get_mut().extend_from_slice(&data);
    // The power goes as the snapshot file is renamed into place: it never becomes durable.
    disk.cut_power_at(|op, p| op == SimOp::Rename && p.ends_with("snapshot"));
    let leader_snapshot = meta(20, "leader-20");
    let (purged, installed) = tokio::join!(
        log.purge(log_id(1, 20)),
        sm.install_snapshot(&leader_snapshot, received)
    );
    assert!(installed.is_err(), "the power cut did not hit the install");
    assert!(purged.is_err(), "the purge went ahead of the snapshot");
    assert_eq!(disk.cycle(), 1);
    drop((log, sm));

    let (mut log, mut sm) = open_on(disk.fs(), dir, options()).unwrap();
    let state = log.get_log_state().await.unwrap();
    let (applied, _) = sm.applied_state().await.unwrap();
    assert!(
        state.last_purged_log_id <= applied,
        "purge point {:?} is ahead of the saved snapshot {applied:?}",
        state.last_purged_log_id
    );
    let kept = log.try_get_log_entries(1..=10).await.unwrap();
    assert_eq!(
        kept.len(),
        10,
        "entries the snapshot does not cover were lost"
    );
}

/// A snapshot build and an install can save at the same time: neither may damage the other's
/// file, and the saved snapshot is never replaced by an older one.
#[test]
fn concurrent_snapshot_saves_keep_the_newest_whole() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::sync::Arc::new(snapshot::SnapshotFile::new(fs::StdFs::shared(), dir.path()));
    let big = vec![7u8; 256 * 1024];
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let file = file.clone();
            let big = &big;
            s.spawn(move || {
                for i in 0..25u64 {
                    let last = i * 4 + t + 1;
                    file.save(&meta(last, &format!("s-{last}")), big, false)
                        .unwrap_or_else(|e| panic!("save {last}: {e}"));
                    let (m, d) = file.load().unwrap().unwrap();
                    assert_eq!(d.len(), big.len());
                    assert!(
                        m.last_log_id.unwrap().index >= last,
                        "an older snapshot replaced {last}"
                    );
                }
            });
        }
    });
    let (m, _) = file.load().unwrap().unwrap();
    assert_eq!(m.last_log_id, Some(log_id(1, 100)));
}

/// An older snapshot (a build that started before an install of a newer one finished) never
/// replaces a newer saved one.
#[test]
fn an_older_snapshot_never_replaces_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = snapshot::SnapshotFile::new(fs::StdFs::shared(), dir.path());
    assert!(
        file.save(&meta(20, "installed-20"), b"newer", true)
            .unwrap()
    );
    assert!(!file.save(&meta(10, "built-10"), b"older", false).unwrap());
    let (m, d) = file.load().unwrap().unwrap();
    assert_eq!(m.snapshot_id, "installed-20");
    assert_eq!(d, b"newer");
}

/// What the model of [`a_store_survives_random_power_cuts`] knows about the log.
#[derive(Debug, Default)]
struct Model {
    /// Entries whose append returned (durable), by index, less those a finished truncation
    /// removed.
    acked: std::collections::BTreeMap<u64, LogId>,
    /// Entries at or below are committed (never truncated).
    committed: u64,
    term: u64,
    /// The next index to append.
    next: u64,
}

/// The operation the power cut hit, whose effect may or may not be durable.
#[derive(Debug, Clone)]
enum InFlight {
    None,
    Append(Vec<LogId>),
    Truncate(u64),
    Other,
}

/// A store driven by random appends, committed hints, truncations, snapshot builds with purges
/// and snapshot installs (with openraft's purge racing the install), with the power cut at a
/// random IO operation, then reopened; many times over. After each cut: the store opens; every
/// acknowledged entry above the purge point is there with its log ID; nothing truncated comes
/// back; the purge point is not ahead of the saved snapshot. `STORE_POWER_CUTS` sets the number
/// of cuts (default 1000); the seed is printed, `CLUSTER_TEST_SEED` replays it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_survives_random_power_cuts() {
    use rand::Rng;
    let (seed, mut rng) = crate::test_support::seeded_rng("a_store_survives_random_power_cuts");
    let cuts: u64 = std::env::var("STORE_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let disk = SimDisk::new(seed);
    let dir = Path::new("/data");
    let opts = StoreOptions {
        segment_bytes: 1024,
        // only an install the power cut hit makes a purge wait this long
        purge_waits_for_snapshot: std::time::Duration::from_millis(20),
    };
    let mut m = Model {
        term: 1,
        next: 1,
        ..Model::default()
    };
    let mut inflight = InFlight::None;
    for cut in 0..cuts {
        let (mut log, mut sm) = open_on(disk.fs(), dir, opts)
            .unwrap_or_else(|e| panic!("seed {seed} cut {cut}: the store does not open: {e}"));
        if cut > 0 {
            check_after_cut(&mut log, &mut sm, &mut m, &inflight, seed, cut).await;
        }
        // As openraft does on start: purge up to the snapshot if it is ahead of the log, and
        // re-apply the committed log above it.
        let (snap, _) = sm.applied_state().await.unwrap();
        let st = log.get_log_state().await.unwrap();
        if let Some(s) = snap
            && Some(s) > st.last_log_id
        {
            log.purge(s).await.unwrap();
            m.acked.clear();
            m.next = s.index + 1;
        }
        let applied = snap.map_or(0, |l| l.index);
        let redo: Vec<Entry> = log
            .try_get_log_entries(applied + 1..=m.committed)
            .await
            .unwrap();
        sm.apply(redo).await.unwrap();
        disk.cut_power_after(rng.random_range(1..150));
        inflight = InFlight::None;
        while disk.cycle() == cut {
            let st = log.get_log_state().await.unwrap();
            let last = st.last_log_id.map_or(0, |l| l.index);
            let purged = st.last_purged_log_id.map_or(0, |l| l.index);
            let r = match rng.random_range(0..20) {
                0..=9 => {
                    let n = rng.random_range(1..6);
                    let batch: Vec<Entry> = (m.next..m.next + n)
                        .map(|i| Entry {
                            log_id: LogId::new(CommittedLeaderId::new(m.term, 1), i),
                            payload: EntryPayload::Blank,
                        })
                        .collect();
                    inflight = InFlight::Append(batch.iter().map(|e| e.log_id).collect());
                    let ok = log.blocking_append(batch.clone()).await.is_ok();
                    if ok {
                        for e in &batch {
                            m.acked.insert(e.log_id.index, e.log_id);
                        }
                        m.next += n;
                    }
                    ok
                }
                10..=12 => {
                    // commit (and apply) up to a random acknowledged entry
                    if last > m.committed {
                        let c = rng.random_range(m.committed + 1..=last);
                        inflight = InFlight::Other;
                        let entries = log.try_get_log_entries(m.committed + 1..=c).await;
                        let ok = match entries {
                            Ok(es) => sm.apply(es).await.is_ok(),
                            Err(_) => false,
                        };
                        let ok = ok && log.save_committed(Some(m.acked[&c])).await.is_ok();
                        if ok {
                            m.committed = c;
                        }
                        ok
                    } else {
                        true
                    }
                }
                13 | 14 => {
                    if last > m.committed.max(purged) {
                        let from = rng.random_range(m.committed.max(purged) + 1..=last);
                        inflight = InFlight::Truncate(from);
                        let ok = log.truncate(m.acked[&from]).await.is_ok();
                        if ok {
                            m.acked.retain(|i, _| *i < from);
                            m.next = from;
                            m.term += 1;
                        }
                        ok
                    } else {
                        true
                    }
                }
                15..=17 => {
                    // a snapshot of what is applied, then a purge it covers
                    inflight = InFlight::Other;
                    match sm.get_snapshot_builder().await.build_snapshot().await {
                        Ok(s) => match s.meta.last_log_id {
                            Some(l) if l.index > purged => {
                                let upto = rng.random_range(purged + 1..=l.index);
                                log.purge(m.acked[&upto]).await.is_ok()
                            }
                            _ => true,
                        },
                        Err(_) => false,
                    }
                }
                _ => {
                    // a snapshot from the leader, ahead of the log: openraft purges up to it
                    // while the install runs
                    let s_index = last.max(m.committed) + rng.random_range(1..20);
                    let s_id = LogId::new(CommittedLeaderId::new(m.term, 1), s_index);
                    let data = codec::encode(&ClusterState::default().to_image()).unwrap();
                    inflight = InFlight::Other;
                    let Ok(mut rx) = sm.begin_receiving_snapshot().await else {
                        break;
                    };
                    rx.get_mut().extend_from_slice(&data);
                    let meta = SnapshotMeta {
                        last_log_id: Some(s_id),
                        last_membership: StoredMembership::default(),
                        snapshot_id: format!("leader-{s_index}"),
                    };
                    let (p, i) = tokio::join!(log.purge(s_id), sm.install_snapshot(&meta, rx));
                    let ok = p.is_ok() && i.is_ok();
                    if ok {
                        m.acked.clear();
                        m.acked.insert(s_index, s_id);
                        m.committed = s_index;
                        m.next = s_index + 1;
                    }
                    ok
                }
            };
            if !r {
                break;
            }
            inflight = InFlight::None;
        }
        disk.disarm();
        if disk.cycle() == cut {
            disk.cut_power();
        }
    }
    let (mut log, mut sm) = open_on(disk.fs(), dir, opts)
        .unwrap_or_else(|e| panic!("seed {seed}: the store does not open after the last cut: {e}"));
    check_after_cut(&mut log, &mut sm, &mut m, &inflight, seed, cuts).await;
    let stats = disk.stats();
    println!("seed {seed}: {stats:?}");
    assert_eq!(stats.power_cuts, cuts);
}

/// Checks the store reopened after power cut `cut` against the model `m` and the operation the
/// cut hit; then brings the model in line with what is on disk.
async fn check_after_cut(
    log: &mut LogStore,
    sm: &mut StateMachineStore,
    m: &mut Model,
    inflight: &InFlight,
    seed: u64,
    cut: u64,
) {
    let st = log.get_log_state().await.unwrap();
    let (snap, _) = sm.applied_state().await.unwrap();
    assert!(
        st.last_purged_log_id <= snap,
        "seed {seed} cut {cut}: purge point {:?} ahead of the snapshot {snap:?}",
        st.last_purged_log_id
    );
    let purged = st.last_purged_log_id.map_or(0, |l| l.index);
    let last = st.last_log_id.map_or(0, |l| l.index);
    let on_disk = log.try_get_log_entries(purged + 1..=last).await.unwrap();
    let found: std::collections::BTreeMap<u64, LogId> =
        on_disk.iter().map(|e| (e.log_id.index, e.log_id)).collect();
    let (maybe_gone, maybe_new): (u64, Vec<LogId>) = match inflight {
        InFlight::Truncate(from) => (*from, Vec::new()),
        InFlight::Append(ids) => (u64::MAX, ids.clone()),
        InFlight::None | InFlight::Other => (u64::MAX, Vec::new()),
    };
    for (i, id) in m.acked.range(purged + 1..) {
        match found.get(i) {
            Some(f) => assert_eq!(f, id, "seed {seed} cut {cut}: entry {i} changed"),
            None => assert!(
                *i >= maybe_gone,
                "seed {seed} cut {cut}: acknowledged entry {i} lost ({st:?}, {inflight:?})"
            ),
        }
    }
    for (i, f) in &found {
        assert!(
            m.acked.get(i) == Some(f) || maybe_new.contains(f),
            "seed {seed} cut {cut}: entry {f:?} was never acknowledged or was truncated"
        );
    }
    // Go on from what is on disk.
    m.acked = found;
    m.next = last.max(snap.map_or(0, |l| l.index)) + 1;
    m.committed = m.committed.min(last).max(snap.map_or(0, |l| l.index));
    m.term += 1;
}

/// The data folder and everything the store creates in it are private to the node's user:
/// folders 0700, files 0600 (the log holds alerts and user records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_folder_and_its_files_are_private() {
    use openraft::RaftSnapshotBuilder;
    use std::os::unix::fs::PermissionsExt;
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    {
        let (mut log, mut sm) = open(&dir).unwrap();
        log.blocking_append((1..=3).map(blank)).await.unwrap();
        sm.apply((1..=3).map(blank)).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
    }
    let mut checked = 0;
    let mut stack = vec![dir];
    while let Some(p) = stack.pop() {
        let meta = std::fs::metadata(&p).unwrap();
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            assert_eq!(mode, 0o700, "{}: {mode:o}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode, 0o600, "{}: {mode:o}", p.display());
        }
        checked += 1;
    }
    // the data folder, log/, raft.redb, a segment, the snapshot
    assert!(checked >= 5, "{checked}");
}

/// No write or sync of the store runs on a runtime worker: the vote's and the purge point's redb
/// commits, a snapshot install and a snapshot build run on blocking threads (a worker held in an
/// fsync stalls every task on it; the node has two).
#[test]
fn store_writes_never_run_on_a_runtime_worker() {
    use openraft::RaftSnapshotBuilder;
    let disk = SimDisk::new(5);
    let writers = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let worker = std::thread::current().id();
    rt.block_on(async {
        let (mut log, mut sm) = open_on(disk.fs(), Path::new("/data"), options()).unwrap();
        log.blocking_append((1..=3).map(blank)).await.unwrap();
        sm.apply((1..=3).map(blank)).await.unwrap();
        let w = writers.clone();
        disk.cut_power_at(move |op, path| {
            w.lock()
                .unwrap()
                .push((std::thread::current().id(), op, path.to_path_buf()));
            false
        });
        log.save_vote(&crate::types::Vote::new(2, 1)).await.unwrap();
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        log.purge(log_id(1, 2)).await.unwrap();
        let data = codec::encode(&ClusterState::default().to_image()).unwrap();
        let mut rx = sm.begin_receiving_snapshot().await.unwrap();
        rx.get_mut().extend_from_slice(&data);
        sm.install_snapshot(&meta(10, "leader-10"), rx)
            .await
            .unwrap();
        log.purge(log_id(1, 10)).await.unwrap();
        // Closing redb when the store is dropped (at shutdown) writes too: not counted.
        disk.disarm();
    });
    let writers = writers.lock().unwrap();
    let on_worker: Vec<_> = writers.iter().filter(|(t, _, _)| *t == worker).collect();
    assert!(writers.len() > 5, "{writers:?}");
    assert!(
        on_worker.is_empty(),
        "on the runtime's thread: {on_worker:?}"
    );
}
