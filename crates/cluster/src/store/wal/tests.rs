//! The segment log's behaviour: appends, reopening, torn tails, damage, truncation, purging.

use super::*;
use crate::state::{Command, Request};
use crate::store::error::Damage;
use openraft::{CommittedLeaderId, EntryPayload};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

/// Small segments, so the tests seal and preallocate often.
const TEST_SEGMENT: u64 = 16 * 1024;

fn entry(term: u64, index: u64) -> Arc<Entry> {
    Arc::new(Entry {
        log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
        payload: EntryPayload::Normal(Request {
            stamped_at_ms: index,
            key: None,
            command: Command::Delivered { up_to_seq: index },
        }),
    })
}

fn indexes(r: &WalReader, start: u64, end: u64) -> Vec<u64> {
    r.read(start, end)
        .unwrap()
        .iter()
        .map(|e| e.log_id.index)
        .collect()
}

/// Writes random groups of entries (sealing segments now and then), cuts the last segment
/// at a random byte, reopens: the log is exactly the entries written whole before the cut,
/// and appending goes on from there. Seed printed; replay with `CLUSTER_TEST_SEED`.
#[test]
fn a_crash_anywhere_in_the_last_segment_recovers_a_prefix() {
    use rand::Rng;
    let (seed, mut rng) =
        crate::test_support::seeded_rng("a_crash_anywhere_in_the_last_segment_recovers_a_prefix");
    for _round in 0..40 {
        let dir = tempfile::tempdir().unwrap();
        let mut next = 1u64;
        // (index, end offset of its record) in the last segment
        let mut ends: Vec<(u64, u64)> = Vec::new();
        {
            let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
            for _ in 0..rng.random_range(1..12) {
                if rng.random_bool(0.2)
                    && let Some(a) = wal.active.as_mut()
                {
                    // seal: the next group starts a new segment
                    a.len = TEST_SEGMENT;
                    ends.clear();
                }
                let n = rng.random_range(1..5);
                let group: Vec<_> = (next..next + n).map(|i| entry(1, i)).collect();
                let hint = rng.random_bool(0.3).then(|| Some(entry(1, next).log_id));
                wal.append(&group, hint).unwrap();
                let ix = wal.index.read().unwrap();
                for i in next..next + n {
                    let loc = ix.get(i).unwrap();
                    ends.push((i, loc.offset + HEADER as u64 + u64::from(loc.len)));
                }
                next += n;
            }
        }
        let last_seg = *wal_ids(dir.path()).last().unwrap();
        let path = segment_path(dir.path(), last_seg);
        let len = std::fs::metadata(&path).unwrap().len();
        let cut = rng.random_range(0..=len);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let survivors: Vec<u64> = ends
            .iter()
            .filter(|(_, end)| *end <= cut)
            .map(|(i, _)| *i)
            .collect();
        let first_in_last = ends.first().map_or(next, |(i, _)| *i);
        let expect_last = survivors.last().copied().unwrap_or(first_in_last - 1);
        let (mut wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        assert_eq!(
            rec.last_log_id.map(|l| l.index),
            (expect_last > 0).then_some(expect_last),
            "seed {seed}, cut {cut} of {len}"
        );
        let all: Vec<u64> = (1..=expect_last).collect();
        assert_eq!(indexes(&wal.reader(), 0, u64::MAX), all, "seed {seed}");
        if let Some(c) = rec.committed {
            assert!(c.index <= expect_last, "seed {seed}");
        }
        wal.append(&[entry(2, expect_last + 1)], None).unwrap();
        drop(wal);
        let (_, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        assert_eq!(rec.last_log_id, Some(entry(2, expect_last + 1).log_id));
    }
}

fn wal_ids(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".wal")?.parse().ok()
        })
        .collect();
    ids.sort_unstable();
    ids
}

#[test]
fn preallocated_segments_keep_their_zeroes_and_a_torn_tail_after_them_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
    wal.append(&[entry(1, 1)], None).unwrap();
    // The first segment found no spare ready; wait for the one being zero-filled.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !wal.spares.is_ready() {
        assert!(std::time::Instant::now() < deadline, "spare never ready");
        std::thread::yield_now();
    }
    wal.active.as_mut().unwrap().len = TEST_SEGMENT;
    wal.append(&[entry(1, 2)], None).unwrap();
    let seg2 = segment_path(dir.path(), 2);
    assert_eq!(std::fs::metadata(&seg2).unwrap().len(), TEST_SEGMENT);
    drop(wal);
    let (mut wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
    assert_eq!(rec.last_log_id.map(|l| l.index), Some(2));
    wal.append(&[entry(1, 3)], None).unwrap();
    let end = wal.active.as_ref().unwrap().len;
    drop(wal);
    // Appends overwrote the zeroes: the file did not grow.
    assert_eq!(std::fs::metadata(&seg2).unwrap().len(), TEST_SEGMENT);
    let (wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
    assert_eq!(rec.last_log_id.map(|l| l.index), Some(3));
    assert_eq!(indexes(&wal.reader(), 0, 10), vec![1, 2, 3]);
    drop(wal);
    // Bytes of a torn append after a zeroed header: cut, entries kept.
    let f = OpenOptions::new().write(true).open(&seg2).unwrap();
    f.write_all_at(b"torn", end + 100).unwrap();
    let (wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
    assert_eq!(rec.last_log_id.map(|l| l.index), Some(3));
    assert_eq!(indexes(&wal.reader(), 0, 10), vec![1, 2, 3]);
    assert_eq!(std::fs::metadata(&seg2).unwrap().len(), end);
    // The same in a sealed segment is damage.
    drop(wal);
    let seg1 = segment_path(dir.path(), 1);
    let f = OpenOptions::new().write(true).open(&seg1).unwrap();
    let len1 = f.metadata().unwrap().len();
    f.write_all_at(&[0u8; HEADER], len1).unwrap();
    f.write_all_at(b"junk", len1 + HEADER as u64).unwrap();
    let err = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(
        matches!(err, StoreError::Corrupt { offset, what: Damage::SealedSegment, .. } if offset == len1),
        "{err:?}"
    );
}

#[test]
fn append_read_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        assert!(rec.last_log_id.is_none());
        wal.append(&[entry(1, 1), entry(1, 2)], None).unwrap();
        wal.append(&[entry(1, 3)], Some(Some(entry(1, 2).log_id)))
            .unwrap();
        assert_eq!(indexes(&wal.reader(), 0, 10), vec![1, 2, 3]);
    }
    let (wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
    assert_eq!(rec.last_log_id.map(|l| l.index), Some(3));
    assert_eq!(rec.committed.map(|l| l.index), Some(2));
    assert_eq!(indexes(&wal.reader(), 2, 4), vec![2, 3]);
}

#[test]
fn torn_tail_of_the_last_segment_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        wal.append(&[entry(1, 1), entry(1, 2)], None).unwrap();
    }
    let seg = segment_path(dir.path(), 1);
    let len = std::fs::metadata(&seg).unwrap().len();
    // Cut the second record in half, as a crash during its write would.
    let f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.set_len(len - 5).unwrap();
    let (mut wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
    assert_eq!(rec.last_log_id.map(|l| l.index), Some(1));
    wal.append(&[entry(2, 2)], None).unwrap();
    drop(wal);
    let (wal, rec) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
    assert_eq!(rec.last_log_id, Some(entry(2, 2).log_id));
    assert_eq!(indexes(&wal.reader(), 1, 3), vec![1, 2]);
}

#[test]
fn damage_in_a_sealed_segment_is_refused_with_the_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
        wal.append(&[entry(1, 1)], None).unwrap();
        // A gap is refused before anything is written.
        assert!(wal.append(&[entry(1, 5)], None).is_err());
        wal.append(&[entry(1, 2)], None).unwrap();
        // Seal the segment: the next append starts segment 3.
        wal.active.as_mut().unwrap().len = TEST_SEGMENT;
        wal.append(&[entry(1, 3)], None).unwrap();
    }
    let seg = segment_path(dir.path(), 1);
    let mut data = std::fs::read(&seg).unwrap();
    let last = data.len() - 1;
    data[last] ^= 0xff;
    std::fs::write(&seg, data).unwrap();
    let err = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap_err();
    assert!(
        err.to_string().contains("00000000000000000001.wal"),
        "{err}"
    );
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(
        matches!(&err, StoreError::Corrupt { path, what: Damage::SealedSegment, .. } if *path == seg),
        "{err:?}"
    );
}

#[test]
fn truncate_then_purge_deletes_segments_and_reopen_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
    for i in 1..=6 {
        wal.append(&[entry(1, i)], None).unwrap();
        // one segment per entry
        wal.active.as_mut().unwrap().len = TEST_SEGMENT;
    }
    assert_eq!(wal_ids(dir.path()).len(), 6);
    wal.truncate(5).unwrap();
    assert_eq!(wal_ids(dir.path()).len(), 5);
    wal.append(&[entry(2, 5)], None).unwrap();
    wal.purge(3).unwrap();
    // segments 1..3 are gone; 4 and 5 stay
    assert_eq!(wal_ids(dir.path()).len(), 2);
    assert_eq!(indexes(&wal.reader(), 0, 10), vec![4, 5]);
    drop(wal);
    let (wal, rec) = Wal::open_sized(dir.path(), Some(entry(1, 3).log_id), TEST_SEGMENT).unwrap();
    assert_eq!(rec.last_log_id, Some(entry(2, 5).log_id));
    assert_eq!(indexes(&wal.reader(), 0, 10), vec![4, 5]);
}

#[test]
fn a_purge_past_the_end_starts_a_new_segment_at_the_next_index() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open_sized(dir.path(), None, TEST_SEGMENT).unwrap();
    wal.append(&[entry(1, 1), entry(1, 2)], None).unwrap();
    wal.purge(100).unwrap();
    assert!(wal.reader().read(0, 200).unwrap().is_empty());
    wal.append(&[entry(3, 101)], None).unwrap();
    assert_eq!(indexes(&wal.reader(), 0, 200), vec![101]);
    drop(wal);
    let (wal, rec) = Wal::open_sized(dir.path(), Some(entry(1, 100).log_id), TEST_SEGMENT).unwrap();
    assert_eq!(rec.last_log_id.map(|l| l.index), Some(101));
    assert_eq!(indexes(&wal.reader(), 0, 200), vec![101]);
    // the segment of entries 1-2 holds nothing live any more and was deleted on open
    assert_eq!(wal_ids(dir.path()).len(), 1);
}

/// A committed hint is written without a sync of its own, at the end of the active segment. If
/// the next append rolls to a new segment, the hint must be durable before the segment is
/// sealed: after a power cut a torn record at the end of a sealed segment would be refused and
/// the replica could not start. Every synced append must also survive.
#[test]
fn a_power_cut_after_a_roll_never_leaves_a_torn_sealed_segment() {
    use crate::store::fs::sim::SimDisk;
    let dir = Path::new("/log");
    for seed in 0..100 {
        let disk = SimDisk::new(seed);
        let (mut wal, _) = Wal::open_on(disk.fs(), dir, None, 256).unwrap();
        disk.fs().sync_dir(Path::new("/")).unwrap();
        for i in 1..=40 {
            wal.append(&[entry(1, i)], None).unwrap();
            // hint only: written, not synced
            wal.append(&[], Some(Some(entry(1, i).log_id))).unwrap();
        }
        assert!(wal_count(&disk) > 3, "seed {seed}: the log never rolled");
        disk.cut_power();
        drop(wal);
        let (wal, rec) = Wal::open_on(disk.fs(), dir, None, 256)
            .unwrap_or_else(|e| panic!("seed {seed}: the log does not reopen: {e}"));
        assert_eq!(rec.last_log_id.map(|l| l.index), Some(40), "seed {seed}");
        assert_eq!(indexes(&wal.reader(), 1, 41), (1..=40).collect::<Vec<_>>());
    }
}

fn wal_count(disk: &crate::store::fs::sim::SimDisk) -> usize {
    disk.fs()
        .list(Path::new("/log"))
        .unwrap()
        .iter()
        .filter(|n| n.ends_with(".wal"))
        .count()
}

#[test]
fn a_growing_segment_is_left_for_a_spare_as_soon_as_one_is_ready() {
    // Segments larger than a growing one may get, so the first segment (no spare yet) grows.
    let segment_bytes = 2 * segment::GROWING_SEGMENT_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open_sized(dir.path(), None, segment_bytes).unwrap();
    wal.append(&[entry(1, 1)], None).unwrap();
    let seg1 = segment_path(dir.path(), 1);
    assert!(std::fs::metadata(&seg1).unwrap().len() < segment::GROWING_SEGMENT_BYTES);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !wal.spares.is_ready() {
        assert!(std::time::Instant::now() < deadline, "spare never ready");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Far below the growing segment's limit, the next append goes into the zero-filled spare.
    wal.append(&[entry(1, 2)], None).unwrap();
    let seg2 = segment_path(dir.path(), 2);
    assert_eq!(std::fs::metadata(&seg2).unwrap().len(), segment_bytes);
    assert_eq!(wal.active.as_ref().unwrap().limit, segment_bytes);
    drop(wal);
    let (wal, rec) = Wal::open_sized(dir.path(), None, segment_bytes).unwrap();
    assert_eq!(rec.last_log_id.map(|l| l.index), Some(2));
    assert_eq!(indexes(&wal.reader(), 0, 10), vec![1, 2]);
}
