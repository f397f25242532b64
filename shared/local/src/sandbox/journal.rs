//! How the sandbox keeps its books on disk: a snapshot file plus a journal of the changes
//! made since, one JSON line per save.
//!
//! A save appends what changed (the objects as they now are, not the whole state), so its
//! cost follows the work done since the last save, not the size of the books. Saving a
//! whole snapshot every few seconds instead took several seconds of CPU once the books held
//! tens of thousands of payments, and stalled the sandbox while it ran.
//!
//! When the journal outgrows [`JOURNAL_COMPACT_BYTES_MIN`] and [`JOURNAL_COMPACT_RATIO`]
//! times the snapshot, a new snapshot is written and the journal starts again. Each line
//! carries the generation of the snapshot it follows; the snapshot written by a compaction
//! has the next generation, so a crash between writing it and emptying the journal leaves
//! lines that loading skips instead of applying twice.
//!
//! A crash can cut the last line short; loading drops such a tail (it was never complete)
//! and cuts the file back to the last whole line, so the next save starts on a line of its
//! own. A bad line anywhere else is an error that names it.

use std::fs::File;
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};

use payops_app::ports::provider::{Account, Entity};
use serde::{Deserialize, Serialize};

use super::SandboxError;
use super::state::{IdempotentAnswer, SandboxState, StoredPayment};
use super::webhooks::{Delivery, DeliveryStats, Outbox};

/// The journal may grow to at least this before a compaction is considered.
pub const JOURNAL_COMPACT_BYTES_MIN: u64 = 512 * 1024 * 1024;
/// …and to this many times the last snapshot's size.
pub const JOURNAL_COMPACT_RATIO: u64 = 4;
/// Longest journal line read back (a save of a very busy interval; far above normal).
pub const JOURNAL_LINE_BYTES_MAX: usize = 256 * 1024 * 1024;

/// One change to the books, as it is journaled and replayed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    Entity(Entity),
    Account(Account),
    /// The payment at `index` as it now is; its next step moved from `was_due_ms` (none when
    /// it was just created) to `due_ms` (none when it reached its last status).
    Payment {
        index: usize,
        stored: StoredPayment,
        was_due_ms: Option<i64>,
        due_ms: Option<i64>,
    },
    Answer {
        key: String,
        answer: IdempotentAnswer,
    },
    /// A webhook delivery queued (first time or again after a failed attempt).
    Queued {
        due_ms: i64,
        seq: u64,
        delivery: Delivery,
    },
    /// A delivery acknowledged, dropped, or queued again under another key.
    Done {
        due_ms: i64,
        seq: u64,
    },
}

/// The changes one part of the books (the state, the outbox) made since the last save, kept
/// only while it is journaled: a sandbox without a state file would only pile them up.
#[derive(Debug, Clone, Default)]
pub struct ChangeLog {
    changes: Vec<Change>,
    on: bool,
}

impl ChangeLog {
    /// Keeps the changes from now on.
    pub fn start(&mut self) {
        self.on = true;
    }

    /// Keeps `change` (made only when it is kept).
    pub fn record(&mut self, change: impl FnOnce() -> Change) {
        if self.on {
            self.changes.push(change());
        }
    }

    /// The changes since the last call, in the order they were made.
    pub fn take(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// Forgets the changes not yet taken (a snapshot holding them is being written).
    pub fn clear(&mut self) {
        self.changes.clear();
    }
}

/// The whole books at one moment.
#[derive(Serialize, Deserialize)]
pub struct Snapshot {
    /// Journal lines of an older generation are already in this snapshot. Snapshots written
    /// before the journal existed have none: 0.
    #[serde(default)]
    pub generation: u64,
    pub state: SandboxState,
    pub outbox: Outbox,
}

/// One save: the changes since the previous one, and the counters they moved.
#[derive(Serialize, Deserialize)]
struct Line {
    generation: u64,
    next_number: u64,
    next_seq: u64,
    stats: DeliveryStats,
    changes: Vec<Change>,
}

/// What a save takes from the books (under their locks) to write outside them.
pub struct Pending {
    pub next_number: u64,
    pub next_seq: u64,
    pub stats: DeliveryStats,
    pub changes: Vec<Change>,
}

/// The open journal of a sandbox with a state file.
pub struct Journal {
    snapshot_path: PathBuf,
    journal_path: PathBuf,
    file: File,
    generation: u64,
    journal_bytes: u64,
    snapshot_bytes: u64,
}

fn file_error(path: &Path, e: impl std::error::Error + Send + Sync + 'static) -> SandboxError {
    SandboxError::StateFile {
        path: path.to_owned(),
        source: Box::new(e),
    }
}

fn journal_path_of(snapshot_path: &Path) -> PathBuf {
    snapshot_path.with_extension("journal")
}

/// Loads the books from `snapshot_path` and its journal (empty books when neither exists),
/// and opens the journal for the saves to come.
pub fn open(snapshot_path: &Path) -> Result<(Snapshot, Journal), SandboxError> {
    let (mut snapshot, snapshot_bytes) = if snapshot_path.exists() {
        let bytes = std::fs::read(snapshot_path).map_err(|e| file_error(snapshot_path, e))?;
        let snapshot: Snapshot =
            serde_json::from_slice(&bytes).map_err(|e| file_error(snapshot_path, e))?;
        (snapshot, bytes.len() as u64)
    } else {
        let empty = Snapshot {
            generation: 0,
            state: SandboxState::default(),
            outbox: Outbox::default(),
        };
        (empty, 0)
    };
    let journal_path = journal_path_of(snapshot_path);
    let whole_bytes = if journal_path.exists() {
        replay(&journal_path, &mut snapshot)?
    } else {
        0
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&journal_path)
        .map_err(|e| file_error(&journal_path, e))?;
    // A torn tail is cut off, so the next line starts on a line of its own.
    file.set_len(whole_bytes)
        .map_err(|e| file_error(&journal_path, e))?;
    let journal = Journal {
        snapshot_path: snapshot_path.to_owned(),
        journal_path,
        file,
        generation: snapshot.generation,
        journal_bytes: whole_bytes,
        snapshot_bytes,
    };
    Ok((snapshot, journal))
}

/// Applies the journal's lines of the snapshot's generation or later to it. Returns the
/// length of the journal's whole lines (a torn last line is left out).
fn replay(journal_path: &Path, snapshot: &mut Snapshot) -> Result<u64, SandboxError> {
    let file = File::open(journal_path).map_err(|e| file_error(journal_path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut whole_bytes = 0u64;
    let mut buf = Vec::new();
    for number in 1.. {
        buf.clear();
        let read = reader
            .by_ref()
            .take(JOURNAL_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut buf)
            .map_err(|e| file_error(journal_path, e))?;
        if read == 0 {
            break;
        }
        if buf.last() != Some(&b'\n') {
            if buf.len() > JOURNAL_LINE_BYTES_MAX {
                return Err(bad_line(journal_path, number, "is too long"));
            }
            tracing::warn!(
                line = number,
                bytes = buf.len(),
                "provider sandbox journal ends in a torn line (a crash mid-save); dropped"
            );
            break;
        }
        let line: Line = serde_json::from_slice(&buf)
            .map_err(|e| bad_line(journal_path, number, &e.to_string()))?;
        whole_bytes += read as u64;
        if line.generation < snapshot.generation {
            continue;
        }
        apply(snapshot, line);
    }
    snapshot.state.reindex();
    snapshot.outbox.requeue_in_flight();
    Ok(whole_bytes)
}

fn bad_line(path: &Path, number: usize, reason: &str) -> SandboxError {
    SandboxError::StateFile {
        path: path.to_owned(),
        source: format!("line {number}: {reason}").into(),
    }
}

fn apply(snapshot: &mut Snapshot, line: Line) {
    snapshot.state.set_next_number(line.next_number);
    snapshot.outbox.restore_counters(line.next_seq, line.stats);
    for change in line.changes {
        match change {
            Change::Queued { .. } | Change::Done { .. } => snapshot.outbox.apply(change),
            other => snapshot.state.apply(other),
        }
    }
}

impl Journal {
    /// Appends `pending` as one line. Returns whether the journal has grown enough to be
    /// compacted ([`Journal::compact`]).
    pub fn append(&mut self, pending: Pending) -> Result<bool, SandboxError> {
        let line = Line {
            generation: self.generation,
            next_number: pending.next_number,
            next_seq: pending.next_seq,
            stats: pending.stats,
            changes: pending.changes,
        };
        let mut bytes = serde_json::to_vec(&line).map_err(|e| file_error(&self.journal_path, e))?;
        bytes.push(b'\n');
        self.file
            .write_all(&bytes)
            .map_err(|e| file_error(&self.journal_path, e))?;
        self.journal_bytes += bytes.len() as u64;
        Ok(self.journal_bytes
            >= JOURNAL_COMPACT_BYTES_MIN.max(self.snapshot_bytes * JOURNAL_COMPACT_RATIO))
    }

    /// The generation a snapshot taken now gets (the journal's lines up to now are in it).
    pub fn next_generation(&self) -> u64 {
        self.generation + 1
    }

    /// Writes `snapshot` (taken with [`Journal::next_generation`], with every change up to
    /// it) and starts the journal again.
    pub fn compact(&mut self, snapshot: &Snapshot) -> Result<(), SandboxError> {
        let path = &self.snapshot_path;
        let bytes = serde_json::to_vec(snapshot).map_err(|e| file_error(path, e))?;
        let tmp = path.with_extension("json.tmp");
        let mut file = File::create(&tmp).map_err(|e| file_error(&tmp, e))?;
        file.write_all(&bytes).map_err(|e| file_error(&tmp, e))?;
        // On disk before it replaces the old snapshot, which the journal still completes.
        file.sync_all().map_err(|e| file_error(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| file_error(path, e))?;
        self.generation = snapshot.generation;
        self.snapshot_bytes = bytes.len() as u64;
        // A crash before this leaves lines of the older generation, which loading skips.
        self.file
            .set_len(0)
            .map_err(|e| file_error(&self.journal_path, e))?;
        self.journal_bytes = 0;
        Ok(())
    }

    pub fn journal_bytes(&self) -> u64 {
        self.journal_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(body: &str) -> Change {
        Change::Queued {
            due_ms: 5,
            seq: 1,
            delivery: Delivery::new(body.to_owned()),
        }
    }

    fn pending(changes: Vec<Change>, next_seq: u64) -> Pending {
        Pending {
            next_number: 7,
            next_seq,
            stats: DeliveryStats::default(),
            changes,
        }
    }

    #[test]
    fn a_saved_line_is_replayed_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let (_, mut journal) = open(&path).unwrap();
        journal
            .append(pending(vec![delivery("{\"a\":1}")], 1))
            .unwrap();
        let whole = journal.journal_bytes();
        drop(journal);
        // A crash in the middle of the next save.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path_of(&path))
            .unwrap();
        f.write_all(b"{\"generation\":0,\"next_num").unwrap();
        drop(f);

        let (snapshot, journal) = open(&path).unwrap();
        assert_eq!(snapshot.state.next_number(), 7);
        assert_eq!(snapshot.outbox.stats().pending, 1);
        assert_eq!(journal.journal_bytes(), whole);
        assert_eq!(
            std::fs::metadata(journal_path_of(&path)).unwrap().len(),
            whole,
            "the torn tail is cut off the file"
        );
    }

    #[test]
    fn a_bad_line_before_the_last_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(journal_path_of(&path), "not json\n{}\n").unwrap();
        let e = open(&path).err().expect("a bad line is refused");
        assert!(e.to_string().contains("line 1"), "{e}");
    }

    #[test]
    fn lines_older_than_the_snapshot_are_not_applied_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let (_, mut journal) = open(&path).unwrap();
        journal
            .append(pending(vec![delivery("{\"old\":1}")], 1))
            .unwrap();
        // The snapshot of a compaction, written just before a crash kept the journal from
        // being emptied: it already holds the queued delivery, and then it was delivered.
        let snapshot = Snapshot {
            generation: journal.next_generation(),
            state: SandboxState::default(),
            outbox: Outbox::default(),
        };
        std::fs::write(&path, serde_json::to_vec(&snapshot).unwrap()).unwrap();
        drop(journal);

        let (loaded, journal) = open(&path).unwrap();
        assert_eq!(loaded.generation, 1);
        assert_eq!(loaded.outbox.stats().pending, 0, "the old line was skipped");
        assert_eq!(journal.next_generation(), 2);
    }

    #[test]
    fn a_compaction_writes_the_books_and_empties_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let (mut snapshot, mut journal) = open(&path).unwrap();
        journal
            .append(pending(vec![delivery("{\"a\":1}")], 1))
            .unwrap();
        snapshot.outbox.apply(delivery("{\"a\":1}"));
        snapshot.generation = journal.next_generation();
        journal.compact(&snapshot).unwrap();
        assert_eq!(journal.journal_bytes(), 0);
        journal.append(pending(vec![], 1)).unwrap();
        drop(journal);

        let (loaded, _) = open(&path).unwrap();
        assert_eq!(loaded.generation, 1);
        assert_eq!(loaded.outbox.stats().pending, 1);
    }
}
