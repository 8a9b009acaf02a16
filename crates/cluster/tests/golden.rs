//! Golden bytes of every type the cluster persists or replicates.
//!
//! postcard is not self-describing: the Rust types *are* the disk and wire format. A field added,
//! removed, reordered or retyped in a log entry, a snapshot, the settings or an RPC payload
//! changes what a node of the previous build reads, or makes it misread silently. Each test here
//! encodes fixed values and compares the bytes with the hex written below, so such a change fails
//! a test before it reaches a deployment:
//!
//! * every field is given a value unlike its neighbours', so a reorder changes the bytes;
//! * numeric literals carry their type (`514_u16`), so a retyped field stops compiling (postcard
//!   writes `u16`, `u32` and `u64` as the same varint, so the bytes alone would not tell);
//! * struct literals name every field and `match`es list every variant, so an added or removed
//!   field or variant stops compiling until its golden is written.
//!
//! **Changing a golden on purpose.** A changed format is a new format: bump
//! `codec::FORMAT_VERSION` and give the old version a decoder beside the new one (see
//! `codec.rs`), or, for the framing of the log segments or the snapshot file, version that
//! framing, so a node reading older bytes still understands them. Then replace the hex here with
//! the bytes the failing assertion prints (`actual`), and say in the commit why the format
//! changed. Never regenerate these from the code: the point is that they do not follow it.
#![allow(clippy::unwrap_used)] // a failed unwrap is a test failure with its location

use cluster::codec::{self, FORMAT_VERSION};
use cluster::settings::{SiemProtocol, SiemSettings};
use cluster::state::dedup::{DedupKey, DedupSlot, DedupWindow};
use cluster::state::outbox::{Outbox, OutboxLimits, Record, RecordKind};
use cluster::state::recent::{RecentWrite, WriteKey};
use cluster::state::{ClusterLimits, Command, Request, Response, Role, StateImage, User};
use cluster::types::{Entry, LogId, SnapshotMeta, StoredMembership, TypeConfig, Vote};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, CommittedLeaderId, EntryPayload, Membership};
use std::collections::{BTreeMap, BTreeSet};

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of a golden written as hex, spaces and line breaks ignored.
fn bytes(golden: &str) -> Vec<u8> {
    let digits: String = golden.split_whitespace().collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).unwrap())
        .collect()
}

/// Compares `actual` with a golden written as hex, spaces and line breaks ignored.
#[track_caller]
fn assert_golden(what: &str, actual: &[u8], golden: &str) {
    let expected: String = golden.split_whitespace().collect();
    assert_eq!(hex(actual), expected, "golden bytes of {what} changed");
}

fn log_id(term: u64, node_id: u64, index: u64) -> LogId {
    LogId::new(CommittedLeaderId::new(term, node_id), index)
}

/// Settings with every field off its default and unlike its neighbours.
fn settings() -> SiemSettings {
    SiemSettings {
        activity_log: false,
        alerts: true,
        host: String::from("siem.example.net"),
        port: 6514_u16,
        protocol: SiemProtocol::Udp,
        host_id: String::from("relay-7"),
        heartbeat_ms: 45_000_u64,
        tls_certificate_pem: Some(String::from("PEM")),
        tls_enabled: false,
        max_message_bytes: 8_192_u32,
        alert_facility: 21_u8,
        activity_facility: 19_u8,
    }
}

fn record(kind: RecordKind, source: &str, alert_id: &str, payload: &[u8]) -> Record {
    Record {
        kind,
        source: String::from(source),
        alert_id: String::from(alert_id),
        payload: bytes::Bytes::copy_from_slice(payload),
        received_at_ms: 1_699_999_999_123_u64,
    }
}

fn limits() -> ClusterLimits {
    ClusterLimits {
        dedup: DedupWindow {
            retention_ms: 3_600_000_u64,
            max_keys: 5_000_usize,
        },
        outbox: OutboxLimits {
            max_records: 700_u64,
            max_bytes: 90_000_u64,
        },
    }
}

/// One command of each kind.
fn commands() -> Vec<Command> {
    vec![
        Command::Submit {
            records: vec![
                record(RecordKind::Alert, "ids", "a-1", b"CEF"),
                record(RecordKind::Activity, "node", "", b"x"),
            ],
        },
        Command::UpdateSettings {
            expected_revision: Some(3_u64),
            settings: settings(),
        },
        Command::Delivered { up_to_seq: 42_u64 },
        Command::SetLimits { limits: limits() },
        Command::PutUser {
            name: String::from("ann"),
            user: User {
                role: Role::SecurityAuditor,
                token_sha256: [0xa5_u8; 32],
            },
        },
        Command::RemoveUser {
            name: String::from("bob"),
        },
        Command::RetireNode { node_id: 9_u64 },
        Command::AddFirstAdministrator {
            name: String::from("root"),
            token_sha256: [0x5a_u8; 32],
        },
    ]
}

/// The golden of `Request { stamped_at_ms: 1_700_000_000_000, command }`, per command kind.
fn request_golden(command: &Command) -> &'static str {
    match command {
        // version, stamped_at_ms, the variant, its fields, no key (00)
        Command::Submit { .. } => {
            "04 80d095ffbc31 00
             02 00 03696473 03612d31 03434546 93c995ffbc31
                01 046e6f6465 00 0178 93c995ffbc31 00"
        }
        Command::UpdateSettings { .. } => {
            "04 80d095ffbc31 01
             0103
             00 01 10 7369656d2e6578616d706c652e6e6574 f232 01 07 72656c61792d37 c8df02
             01 03 50454d 00 8040 15 13 00"
        }
        Command::Delivered { .. } => "04 80d095ffbc31 02 2a 00",
        Command::SetLimits { .. } => "04 80d095ffbc31 03 80dddb01 8827 bc05 90bf05 00",
        Command::PutUser { .. } => {
            "04 80d095ffbc31 04 03616e6e
             01 a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5 00"
        }
        Command::RemoveUser { .. } => "04 80d095ffbc31 05 03626f62 00",
        Command::RetireNode { .. } => "04 80d095ffbc31 06 09 00",
        // format 3: the name, then the 32 bytes of the hash with no length before them
        Command::AddFirstAdministrator { .. } => {
            "04 80d095ffbc31 07 04726f6f74
             5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a 00"
        }
    }
}

#[test]
fn the_codec_envelope_is_a_version_byte_then_postcard() {
    assert_eq!(FORMAT_VERSION, 4_u8);
    let value = (7_u8, 300_u16, String::from("ab"), vec![0xff_u8, 0x00]);
    assert_golden(
        "a codec envelope",
        &codec::encode(&value).unwrap(),
        "04 07 ac02 02 6162 02 ff00",
    );
    let mut appended = vec![0xee_u8];
    codec::encode_into(&value, &mut appended).unwrap();
    assert_golden("encode_into", &appended, "ee 04 07 ac02 02 6162 02 ff00");
    let ok: Result<u32, String> = Ok(5_u32);
    assert_golden(
        "an Ok result",
        &codec::encode_result(&ok).unwrap(),
        "00 04 05",
    );
    let err: Result<u32, String> = Err(String::from("no"));
    // An error is JSON after the 1, not the versioned envelope.
    assert_golden(
        "an Err result",
        &codec::encode_result(&err).unwrap(),
        "01 226e6f22",
    );
}

#[test]
fn a_log_entry_request_of_each_command() {
    let commands = commands();
    let kinds: BTreeSet<String> = commands
        .iter()
        .map(|c| format!("{:?}", std::mem::discriminant(c)))
        .collect();
    assert_eq!(kinds.len(), 8, "one command of each kind");
    for command in commands {
        let golden = request_golden(&command);
        let request = Request {
            stamped_at_ms: 1_700_000_000_000_u64,
            key: None,
            command,
        };
        assert_golden(
            &format!("{request:?}"),
            &codec::encode(&request).unwrap(),
            golden,
        );
    }
    // Under an idempotency key (format 4): after the command, `Some` and the key's two varints.
    let keyed = Request {
        stamped_at_ms: 1_700_000_000_000_u64,
        command: Command::RetireNode { node_id: 9_u64 },
        key: Some(WriteKey {
            boot: 0x0102_0304_0506_0708_u64,
            seq: 5_u64,
        }),
    };
    assert_golden(
        "a keyed request",
        &codec::encode(&keyed).unwrap(),
        "04 80d095ffbc31 06 09 01 888e98a8c0e0808101 05",
    );
}

fn membership() -> Membership<u64, BasicNode> {
    let nodes: BTreeMap<u64, BasicNode> = [
        (1_u64, BasicNode::new("10.0.0.1:7001")),
        (2_u64, BasicNode::new("10.0.0.2:7001")),
    ]
    .into();
    Membership::new(vec![BTreeSet::from([1_u64, 2_u64])], nodes)
}

#[test]
fn raft_log_entries_of_each_payload_kind() {
    let blank = Entry {
        log_id: log_id(2, 1, 5),
        payload: EntryPayload::Blank,
    };
    // version, log ID (term, node, index), payload variant and its value
    assert_golden(
        "a blank entry",
        &codec::encode(&blank).unwrap(),
        "04 02 01 05 00",
    );
    let normal = Entry {
        log_id: log_id(2, 1, 6),
        payload: EntryPayload::Normal(Request {
            stamped_at_ms: 1_700_000_000_000_u64,
            key: None,
            command: Command::Delivered { up_to_seq: 42_u64 },
        }),
    };
    assert_golden(
        "a normal entry",
        &codec::encode(&normal).unwrap(),
        "04 02 01 06 01 80d095ffbc31 02 2a 00",
    );
    let config = Entry {
        log_id: log_id(2, 1, 7),
        payload: EntryPayload::Membership(membership()),
    };
    assert_golden(
        "a membership entry",
        &codec::encode(&config).unwrap(),
        "04 02 01 07 02
         01 02 01 02
         02 01 0d 31302e302e302e313a37303031 02 0d 31302e302e302e323a37303031",
    );
}

#[test]
fn siem_settings() {
    assert_golden(
        "SiemSettings",
        &codec::encode(&settings()).unwrap(),
        "04 00 01 10 7369656d2e6578616d706c652e6e6574 f232 01 07 72656c61792d37 c8df02
         01 03 50454d 00 8040 15 13",
    );
}

#[test]
fn vote_and_log_ids() {
    let mut vote = Vote::new(4_u64, 2_u64);
    vote.commit();
    assert_golden(
        "a committed vote",
        &codec::encode(&vote).unwrap(),
        "04 04 02 01",
    );
    let hint: Option<LogId> = Some(log_id(3, 2, 99));
    assert_golden(
        "a committed hint",
        &codec::encode(&hint).unwrap(),
        "04 01 03 02 63",
    );
    let none: Option<LogId> = None;
    assert_golden("no log ID", &codec::encode(&none).unwrap(), "04 00");
}

/// A state image with something in every part.
fn state_image() -> StateImage {
    let mut outbox = Outbox::new(limits().outbox);
    outbox.push(record(RecordKind::Alert, "ids", "a-1", b"CEF"), 1_000_u64);
    outbox.push(record(RecordKind::Activity, "node", "", b"xy"), 2_000_u64);
    outbox.mark_delivered(1_u64);
    StateImage {
        settings: settings(),
        settings_revision: 12_u64,
        limits: limits(),
        dedup: vec![DedupSlot {
            key: DedupKey::of("ids", "a-1"),
            at_ms: 1_000_u64,
        }],
        outbox,
        users: BTreeMap::from([(
            String::from("ann"),
            User {
                role: Role::Administrator,
                token_sha256: [0x3c_u8; 32],
            },
        )]),
        retired_nodes: BTreeSet::from([4_u64, 8_u64]),
        clock_ms: 2_500_u64,
        recent_writes: vec![RecentWrite {
            key: WriteKey {
                boot: 77_u64,
                seq: 6_u64,
            },
            applied_at_ms: 2_400_u64,
            response: Response::SettingsUpdated { revision: 12_u64 },
        }],
    }
}

#[test]
fn snapshot_state_image() {
    assert_golden(
        "StateImage",
        &codec::encode(&state_image()).unwrap(),
        // version, settings; revision; limits; dedup slots (one 24-byte slot); outbox (limits,
        // entries, next sequence number, cursor, bytes); users; retired nodes; clock; remembered
        // writes (one: key 77/6, applied at 2,400, `SettingsUpdated` 12)
        "04 00 01 10 7369656d2e6578616d706c652e6e6574 f232 01 07 72656c61792d37 c8df02
         01 03 50454d 00 8040 15 13
         0c
         80dddb01 8827 bc05 90bf05
         18 ed6f29bde1fcb148 1c2a5a03d525f418 e803000000000000
         bc05 90bf05 01 02 d00f 01 046e6f6465 00 027879 93c995ffbc31 03 01 26
         01 03616e6e 00 3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c
         02 04 08
         c413
         01 4d 06 e012 02 0c",
    );
}

#[test]
fn snapshot_meta() {
    let meta = SnapshotMeta {
        last_log_id: Some(log_id(2, 1, 7)),
        last_membership: StoredMembership::new(Some(log_id(2, 1, 3)), membership()),
        snapshot_id: String::from("2-1-7-0"),
    };
    assert_golden(
        "SnapshotMeta",
        &codec::encode(&meta).unwrap(),
        "04 01 02 01 07
         01 02 01 03
         01 02 01 02
         02 01 0d 31302e302e302e313a37303031 02 0d 31302e302e302e323a37303031
         07 322d312d372d30",
    );
}

#[test]
fn raft_rpc_payloads() {
    let vote = Vote::new(4_u64, 2_u64);
    let append = AppendEntriesRequest::<TypeConfig> {
        vote,
        prev_log_id: Some(log_id(3, 2, 10)),
        entries: vec![Entry {
            log_id: log_id(4, 2, 11),
            payload: EntryPayload::Blank,
        }],
        leader_commit: Some(log_id(3, 2, 9)),
    };
    assert_golden(
        "AppendEntriesRequest",
        &codec::encode(&append).unwrap(),
        "04 04 02 00 01 03 02 0a 01 04 02 0b 00 01 03 02 09",
    );
    let vote_req = VoteRequest {
        vote,
        last_log_id: Some(log_id(3, 1, 8)),
    };
    assert_golden(
        "VoteRequest",
        &codec::encode(&vote_req).unwrap(),
        "04 04 02 00 01 03 01 08",
    );
    let install = InstallSnapshotRequest::<TypeConfig> {
        vote,
        meta: SnapshotMeta {
            last_log_id: Some(log_id(3, 2, 10)),
            last_membership: StoredMembership::default(),
            snapshot_id: String::from("s"),
        },
        offset: 65_536_u64,
        data: vec![0xab_u8, 0xcd],
        done: true,
    };
    assert_golden(
        "InstallSnapshotRequest",
        &codec::encode(&install).unwrap(),
        "04 04 02 00 01 03 02 0a 00 00 00 01 73 808004 02 abcd 01",
    );
    let replies: [(&str, Vec<u8>, &str); 4] = [
        (
            "AppendEntriesResponse::Conflict",
            reply(&AppendEntriesResponse::<u64>::Conflict),
            "00 04 02",
        ),
        (
            "AppendEntriesResponse::HigherVote",
            reply(&AppendEntriesResponse::<u64>::HigherVote(vote)),
            "00 04 03 04 02 00",
        ),
        (
            "VoteResponse",
            reply(&VoteResponse {
                vote,
                vote_granted: true,
                last_log_id: Some(log_id(3, 1, 8)),
            }),
            "00 04 04 02 00 01 01 03 01 08",
        ),
        (
            "InstallSnapshotResponse",
            reply(&InstallSnapshotResponse { vote }),
            "00 04 04 02 00",
        ),
    ];
    for (what, actual, golden) in replies {
        assert_golden(what, &actual, golden);
    }
}

/// A successful RPC reply as the server sends it.
fn reply<T: serde::Serialize>(value: &T) -> Vec<u8> {
    codec::encode_result(&Ok::<&T, ()>(value)).unwrap()
}

/// Runs `f` on a single-threaded runtime.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// The store's files: a log segment, the snapshot file and the values in `raft.redb`, written
/// through the store and read back from the data folder.
mod files {
    use super::*;
    use openraft::RaftSnapshotBuilder;
    use openraft::storage::{RaftLogStorage, RaftLogStorageExt, RaftStateMachine};
    use redb::ReadableDatabase;

    fn delivered(index: u64, up_to_seq: u64) -> Entry {
        Entry {
            log_id: log_id(1, 1, index),
            payload: EntryPayload::Normal(Request {
                stamped_at_ms: 1_700_000_000_000_u64,
                key: None,
                command: Command::Delivered { up_to_seq },
            }),
        }
    }

    /// A segment holds records back to back: a 17-byte header (kind, payload length, log index,
    /// CRC-32 of the header's first 13 bytes and the payload) and the payload. Kind 1 is an
    /// entry, kind 2 the committed hint (index 0).
    #[test]
    fn a_log_segment_holds_records_with_a_17_byte_header() {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let (mut log, _sm) = cluster::store::open(dir.path()).unwrap();
            log.blocking_append([delivered(1, 5)]).await.unwrap();
            log.save_committed(Some(log_id(1, 1, 1))).await.unwrap();
            // Waits for the writer, so the hint is written before the next entry.
            log.read_committed().await.unwrap();
            log.blocking_append([delivered(2, 6)]).await.unwrap();
        });
        let segment = dir.path().join("log").join("00000000000000000001.wal");
        assert_golden(
            "a log segment",
            &std::fs::read(segment).unwrap(),
            // kind, length, index, CRC; then the payload
            "01 0e000000 0100000000000000 ceadd5a2
             04 01 01 01 01 80d095ffbc31 02 05 00
             02 05000000 0000000000000000 07e283b4
             04 01 01 01 01
             01 0e000000 0200000000000000 4c356229
             04 01 01 02 01 80d095ffbc31 02 06 00",
        );
    }

    /// The snapshot file: meta length (`u32` LE), the encoded `SnapshotMeta`, the encoded
    /// `StateImage`, and a CRC-32 (`u32` LE) of all before it.
    #[test]
    fn the_snapshot_file_is_meta_length_meta_image_crc() {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let (_log, mut sm) = cluster::store::open(dir.path()).unwrap();
            let submit = Entry {
                log_id: log_id(1, 1, 2),
                payload: EntryPayload::Normal(Request {
                    stamped_at_ms: 1_700_000_000_000_u64,
                    key: None,
                    command: Command::Submit {
                        records: vec![record(RecordKind::Alert, "ids", "a-1", b"CEF")],
                    },
                }),
            };
            let config = Entry {
                log_id: log_id(1, 1, 1),
                payload: EntryPayload::Membership(membership()),
            };
            sm.apply([config, submit]).await.unwrap();
            sm.get_snapshot_builder()
                .await
                .build_snapshot()
                .await
                .unwrap();
        });
        let file = std::fs::read(dir.path().join("snapshot")).unwrap();
        assert_golden(
            "the snapshot file",
            &file,
            // meta length; meta (version, last log ID, membership, snapshot ID); image (version,
            // settings, revision, limits, dedup slots, outbox, users, retired nodes, clock, remembered
            // writes); CRC
            "36000000
             04 01 01 01 02
             01 01 01 01 01 02 01 02 02 01
             0d 31302e302e302e313a37303031 02 0d 31302e302e302e323a37303031
             09 54312d4e312d322d30
             04 01 01 09 3132372e302e302e31 8204 00 0a 7369656d2d72656c6179 e0d403 00 00 808002 11 12
             00
             80b89929 c0843d c0843d 80808080 02
             18 ed6f29bde1fcb148 1c2a5a03d525f418 0068e5cf8b010000
             c0843d 80808080 02 01
             01 80d095ffbc31 00 03696473 03612d31 03434546 93c995ffbc31
             02 00 29
             00
             00
             80d095ffbc31
             00
             820bd443",
        );
    }

    /// `raft.redb` holds the vote and the purge point in the table `raft_meta`, codec-encoded.
    #[test]
    fn the_vote_and_the_purge_point_in_redb() {
        let dir = tempfile::tempdir().unwrap();
        block_on(async {
            let (mut log, _sm) = cluster::store::open(dir.path()).unwrap();
            log.save_vote(&Vote::new(5_u64, 3_u64)).await.unwrap();
            log.blocking_append([delivered(1, 5), delivered(2, 6)])
                .await
                .unwrap();
            log.purge(log_id(1, 1, 1)).await.unwrap();
        });
        let db = redb::Database::open(dir.path().join("raft.redb")).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn
            .open_table(redb::TableDefinition::<&str, &[u8]>::new("raft_meta"))
            .unwrap();
        let vote = table.get("vote").unwrap().unwrap();
        assert_golden("the saved vote", vote.value(), "04 05 03 00");
        let purged = table.get("last_purged").unwrap().unwrap();
        assert_golden("the saved purge point", purged.value(), "04 01 01 01 01");
    }
}

/// Requests a follower forwards to the leader, and the leader's answers: a node of the previous
/// build must read what a newer one forwards during a rolling upgrade.
#[test]
fn forwarded_requests_and_replies() {
    use cluster::messages::{ForwardError, ForwardReply, ForwardRequest, MembersView};
    use cluster::state::{Refusal, SubmitOutcome};
    let requests = [
        ForwardRequest::Write(Command::Delivered { up_to_seq: 7_u64 }),
        ForwardRequest::ReadSettings,
        ForwardRequest::AddNode {
            id: 4_u64,
            addr: String::from("n4:7100"),
        },
        ForwardRequest::RemoveNode { id: 5_u64 },
        ForwardRequest::ReadMembers,
        ForwardRequest::ReadUsers,
        ForwardRequest::WriteOnce {
            key: WriteKey {
                boot: 3_u64,
                seq: 4_u64,
            },
            command: Command::RetireNode { node_id: 9_u64 },
        },
    ];
    for r in &requests {
        let golden = match r {
            ForwardRequest::Write(_) => "04 00 02 07",
            ForwardRequest::ReadSettings => "04 01",
            ForwardRequest::AddNode { .. } => "04 02 04 07 6e343a37313030",
            ForwardRequest::RemoveNode { .. } => "04 03 05",
            ForwardRequest::ReadMembers => "04 04",
            ForwardRequest::ReadUsers => "04 05",
            // format 4: the key (boot, seq), then the command
            ForwardRequest::WriteOnce { .. } => "04 06 03 04 06 09",
        };
        assert_golden("forward request", &codec::encode(r).unwrap(), golden);
    }
    let replies: [Result<ForwardReply, ForwardError>; 7] = [
        Ok(ForwardReply::Written(Response::Submitted {
            outcomes: vec![
                SubmitOutcome::Accepted { seq: 9_u64 },
                SubmitOutcome::Duplicate,
            ],
        })),
        Ok(ForwardReply::Settings(settings(), 3_u64)),
        Ok(ForwardReply::Written(Response::Refused(
            Refusal::NodeIdReused { node_id: 4_u64 },
        ))),
        Ok(ForwardReply::Members(MembersView {
            voters: BTreeMap::from([(1_u64, String::from("a"))]),
            learners: BTreeMap::from([(4_u64, String::from("d"))]),
            leader: Some(1_u64),
            retired: BTreeSet::from([2_u64]),
        })),
        Ok(ForwardReply::Users(BTreeMap::from([(
            String::from("ann"),
            User {
                role: Role::SecurityAuditor,
                token_sha256: [0x11_u8; 32],
            },
        )]))),
        Err(ForwardError::NotLeader {
            leader_id: Some(2_u64),
            leader_addr: Some(String::from("n2:7100")),
        }),
        Err(ForwardError::Failed {
            reason: String::from("x"),
        }),
    ];
    for r in &replies {
        let golden = match r {
            Ok(ForwardReply::Written(Response::Refused(_))) => "00 04 00 05 06 04",
            Ok(ForwardReply::Written(_)) => "0004000102000901",
            // voters {1: "a"}, learners {4: "d"}, leader Some(1), retired {2}
            Ok(ForwardReply::Members(_)) => "00 04 02 01 01 0161 01 04 0164 01 01 01 02",
            Ok(ForwardReply::Users(_)) => {
                "00 04 03 01 03616e6e
                 01 1111111111111111111111111111111111111111111111111111111111111111"
            }
            Ok(ForwardReply::Settings(..)) => {
                "0004010001107369656d2e6578616d706c652e6e6574f232010772656c61792d37c8df02010350454d008040151303"
            }
            Err(ForwardError::NotLeader { .. }) => {
                "017b224e6f744c6561646572223a7b226c65616465725f6964223a322c226c65616465725f61646472223a226e323a37313030227d7d"
            }
            Err(ForwardError::Failed { .. }) => {
                "017b224661696c6564223a7b22726561736f6e223a2278227d7d"
            }
        };
        assert_golden("forward reply", &codec::encode_result(r).unwrap(), golden);
    }
}

/// Bytes written by the previous build (codec format 1, before the facilities and the received
/// time), kept as they were: this build must still read them, so a node upgraded over an old
/// data folder loads its log and snapshot. Fields added since read their defaults: facilities
/// local1 and local2, received time 0.
mod format_1 {
    use super::*;
    use cluster::settings::{DEFAULT_ACTIVITY_FACILITY, DEFAULT_ALERT_FACILITY};

    const SETTINGS: &str = "01 00 01 10 7369656d2e6578616d706c652e6e6574 f232 01 07 72656c61792d37
         c8df02 01 03 50454d 00 8040";
    const SUBMIT: &str = "01 80d095ffbc31 00
         02 00 03696473 03612d31 03434546
            01 046e6f6465 00 0178";
    const UPDATE_SETTINGS: &str = "01 80d095ffbc31 01
         0103
         00 01 10 7369656d2e6578616d706c652e6e6574 f232 01 07 72656c61792d37 c8df02
         01 03 50454d 00 8040";
    const STATE_IMAGE: &str = "01 00 01 10 7369656d2e6578616d706c652e6e6574 f232 01 07
         72656c61792d37 c8df02 01 03 50454d 00 8040
         0c
         80dddb01 8827 bc05 90bf05
         18 ed6f29bde1fcb148 1c2a5a03d525f418 e803000000000000
         bc05 90bf05 01 02 d00f 01 046e6f6465 00 027879 03 01 26
         01 03616e6e 00 3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c
         02 04 08
         c413";
    /// The snapshot file of `the_snapshot_file_is_meta_length_meta_image_crc`, format 1.
    const SNAPSHOT_FILE: &str = "36000000
         01 01 01 01 02
         01 01 01 01 01 02 01 02 02 01
         0d 31302e302e302e313a37303031 02 0d 31302e302e302e323a37303031
         09 54312d4e312d322d30
         01 01 01 09 3132372e302e302e31 8204 00 0a 7369656d2d72656c6179 e0d403 00 00 808002
         00
         80b89929 c0843d c0843d 80808080 02
         18 ed6f29bde1fcb148 1c2a5a03d525f418 0068e5cf8b010000
         c0843d 80808080 02 01
         01 80d095ffbc31 00 03696473 03612d31 03434546
         02 00 29
         00
         00
         80d095ffbc31
         b644704c";

    fn old_settings() -> SiemSettings {
        SiemSettings {
            alert_facility: DEFAULT_ALERT_FACILITY,
            activity_facility: DEFAULT_ACTIVITY_FACILITY,
            ..settings()
        }
    }

    fn old_record(r: Record) -> Record {
        Record {
            received_at_ms: 0_u64,
            ..r
        }
    }

    #[test]
    fn settings_and_log_entries_of_format_1_still_decode() {
        assert_eq!(
            codec::decode::<SiemSettings>(&bytes(SETTINGS)).unwrap(),
            old_settings()
        );
        let Command::Submit { records } = commands().remove(0) else {
            panic!("the first command is a Submit")
        };
        let submit: Request = codec::decode(&bytes(SUBMIT)).unwrap();
        assert_eq!(
            submit.command,
            Command::Submit {
                records: records.into_iter().map(old_record).collect()
            }
        );
        let update: Request = codec::decode(&bytes(UPDATE_SETTINGS)).unwrap();
        assert_eq!(
            update.command,
            Command::UpdateSettings {
                expected_revision: Some(3_u64),
                settings: old_settings(),
            }
        );
    }

    #[test]
    fn a_state_image_of_format_1_still_decodes() {
        let image: StateImage = codec::decode(&bytes(STATE_IMAGE)).unwrap();
        let mut expected = state_image();
        expected.settings = old_settings();
        let mut outbox = Outbox::new(limits().outbox);
        outbox.push(
            old_record(record(RecordKind::Alert, "ids", "a-1", b"CEF")),
            1_000_u64,
        );
        outbox.push(
            old_record(record(RecordKind::Activity, "node", "", b"xy")),
            2_000_u64,
        );
        outbox.mark_delivered(1_u64);
        expected.outbox = outbox;
        expected.recent_writes = Vec::new();
        // `StateImage` has no `PartialEq`: compare what this build writes for both.
        assert_eq!(
            hex(&codec::encode(&image).unwrap()),
            hex(&codec::encode(&expected).unwrap())
        );
    }

    /// A data folder whose snapshot was written by the previous build opens, with the old
    /// settings and outbox.
    #[test]
    fn a_snapshot_file_of_format_1_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snapshot"), bytes(SNAPSHOT_FILE)).unwrap();
        let (_log, sm) = cluster::store::open(dir.path()).unwrap();
        let shared = sm.shared();
        let view = shared.read();
        let (s, _) = view.state.settings();
        assert_eq!(
            (s.alert_facility, s.activity_facility),
            (DEFAULT_ALERT_FACILITY, DEFAULT_ACTIVITY_FACILITY)
        );
        assert_eq!(s, &SiemSettings::default());
        let entries = view.state.outbox().read_from(1, 10);
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].record,
            old_record(record(RecordKind::Alert, "ids", "a-1", b"CEF"))
        );
        assert_eq!(view.last_applied.map(|l| l.index), Some(2_u64));
    }
}

/// Bytes written by the previous build (codec format 2, before the administrator bootstrap and
/// the membership calls), kept as they were: format 3 only appended variants, so this build
/// reads them as they are.
mod format_2 {
    use super::*;

    const PUT_USER: &str = "02 80d095ffbc31 04 03616e6e
         01 a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5";
    const UPDATE_SETTINGS: &str = "02 80d095ffbc31 01
         0103
         00 01 10 7369656d2e6578616d706c652e6e6574 f232 01 07 72656c61792d37 c8df02
         01 03 50454d 00 8040 15 13";
    const STATE_IMAGE: &str = "02 00 01 10 7369656d2e6578616d706c652e6e6574 f232 01 07
         72656c61792d37 c8df02 01 03 50454d 00 8040 15 13
         0c
         80dddb01 8827 bc05 90bf05
         18 ed6f29bde1fcb148 1c2a5a03d525f418 e803000000000000
         bc05 90bf05 01 02 d00f 01 046e6f6465 00 027879 93c995ffbc31 03 01 26
         01 03616e6e 00 3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c
         02 04 08
         c413";

    #[test]
    fn log_entries_and_a_state_image_of_format_2_still_decode() {
        let commands = commands();
        let put: Request = codec::decode(&bytes(PUT_USER)).unwrap();
        assert_eq!(put.command, commands[4]);
        let update: Request = codec::decode(&bytes(UPDATE_SETTINGS)).unwrap();
        assert_eq!(update.command, commands[1]);
        let image: StateImage = codec::decode(&bytes(STATE_IMAGE)).unwrap();
        let expected = StateImage {
            recent_writes: Vec::new(),
            ..state_image()
        };
        assert_eq!(
            hex(&codec::encode(&image).unwrap()),
            hex(&codec::encode(&expected).unwrap())
        );
    }
}

/// Bytes written by the previous build (codec format 3, before the idempotency keys), kept as
/// they were: a request reads no key, a state image no remembered writes.
mod format_3 {
    use super::*;

    const SUBMIT: &str = "03 80d095ffbc31 00
         02 00 03696473 03612d31 03434546 93c995ffbc31
            01 046e6f6465 00 0178 93c995ffbc31";
    const STATE_IMAGE: &str = "03 00 01 10 7369656d2e6578616d706c652e6e6574 f232 01 07
         72656c61792d37 c8df02 01 03 50454d 00 8040 15 13
         0c
         80dddb01 8827 bc05 90bf05
         18 ed6f29bde1fcb148 1c2a5a03d525f418 e803000000000000
         bc05 90bf05 01 02 d00f 01 046e6f6465 00 027879 93c995ffbc31 03 01 26
         01 03616e6e 00 3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c
         02 04 08
         c413";
    /// The snapshot file of `the_snapshot_file_is_meta_length_meta_image_crc`, format 3.
    const SNAPSHOT_FILE: &str = "36000000
         03 01 01 01 02
         01 01 01 01 01 02 01 02 02 01
         0d 31302e302e302e313a37303031 02 0d 31302e302e302e323a37303031
         09 54312d4e312d322d30
         03 01 01 09 3132372e302e302e31 8204 00 0a 7369656d2d72656c6179 e0d403 00 00 808002 11 12
         00
         80b89929 c0843d c0843d 80808080 02
         18 ed6f29bde1fcb148 1c2a5a03d525f418 0068e5cf8b010000
         c0843d 80808080 02 01
         01 80d095ffbc31 00 03696473 03612d31 03434546 93c995ffbc31
         02 00 29
         00
         00
         80d095ffbc31
         8d043415";

    #[test]
    fn log_entries_state_images_and_snapshots_of_format_3_still_decode() {
        let submit: Request = codec::decode(&bytes(SUBMIT)).unwrap();
        assert_eq!(submit.command, commands()[0]);
        assert_eq!(submit.key, None);
        let image: StateImage = codec::decode(&bytes(STATE_IMAGE)).unwrap();
        assert!(image.recent_writes.is_empty());
        let expected = StateImage {
            recent_writes: Vec::new(),
            ..state_image()
        };
        assert_eq!(
            hex(&codec::encode(&image).unwrap()),
            hex(&codec::encode(&expected).unwrap())
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snapshot"), bytes(SNAPSHOT_FILE)).unwrap();
        let (_log, sm) = cluster::store::open(dir.path()).unwrap();
        let shared = sm.shared();
        let view = shared.read();
        let entries = view.state.outbox().read_from(1, 10);
        assert_eq!(entries.len(), 1);
        assert_eq!(
            entries[0].record,
            record(RecordKind::Alert, "ids", "a-1", b"CEF")
        );
        assert_eq!(view.last_applied.map(|l| l.index), Some(2_u64));
    }
}
