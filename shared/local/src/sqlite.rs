//! Shared access to the embedded SQLite database.
//!
//! One connection, owned by one dedicated thread, runs every statement: async callers hand it
//! closures through [`Db::call`] / [`Db::write`] and await the answer, so no SQLite work ever
//! runs on an async worker thread, and every write is serialised (conditions evaluated inside
//! the same transaction as the write cannot race). With WAL and `synchronous=NORMAL` a commit
//! is a write to the WAL without an fsync.
//!
//! Group commit: writes that queue up while the thread is busy run together in one SQLite
//! transaction, each inside its own savepoint (so each is still all-or-nothing on its own),
//! and all of them are answered only after that transaction commits. Under load this turns
//! thousands of tiny commits, each rewriting the same B-tree pages into the WAL, into a few
//! dozen.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

/// How long a statement waits for a lock held by another process (e.g. an ops command run
/// while `payops up` is writing) before failing with SQLITE_BUSY.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;
/// Prepared statements kept per connection; the adapters use a few dozen distinct ones.
pub const STATEMENT_CACHE_CAPACITY: usize = 256;
/// SQLite page cache per connection, in KiB (a negative `cache_size` is KiB). Small on
/// purpose: the reader's cache is dropped at nearly every read transaction anyway (another
/// connection committed since), and at the end of each write transaction SQLite scans the
/// writer's whole page-cache hash, which with 32 MiB was 11% of the writer thread in the
/// payroll benchmark. With 4 MiB the scan is gone from the profile and the run is no slower
/// (medians of 3 batched runs: 33.7 s at 4 MiB, 37.0 s at 32 MiB).
pub const PAGE_CACHE_KIB: i64 = 4 * 1024;
/// Most writes committed together in one group (bounds the latency a write adds to others).
pub const GROUP_COMMIT_WRITES_MAX: usize = 256;
/// Most reads run together in one read transaction on the reader connection.
pub const READ_GROUP_MAX: usize = 64;
/// How often the checkpointer copies the WAL into the database file.
pub const CHECKPOINT_INTERVAL_MS: u64 = 1_000;
/// WAL frames (pages) beyond which the checkpointer restarts the WAL from its beginning.
/// Under steady load a passive checkpoint never finds a moment with every frame copied and
/// no reader in the WAL, so SQLite never restarts it: the file grew by 70 MB/s in the payroll
/// benchmark (2 GB by the end), every commit appended to it, and readers searched an ever
/// longer WAL index. 16,384 frames of 4 KiB is 64 MiB.
pub const WAL_RESTART_FRAMES: i64 = 16_384;
/// The WAL file is cut back to this size when it restarts (a WAL grown before is not kept).
pub const WAL_SIZE_LIMIT_BYTES: i64 = 4 * WAL_RESTART_FRAMES * 4096;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// The database thread is gone (the store was closed, or a statement panicked).
    #[error("database thread is not running")]
    Closed,
    /// The group of writes this write belonged to could not be committed; nothing of it was.
    #[error("commit failed: {0}")]
    Commit(#[source] Arc<rusqlite::Error>),
    #[error("database thread could not start: {0}")]
    Spawn(#[source] std::io::Error),
}

impl DbError {
    /// True for SQLITE_BUSY / SQLITE_LOCKED: another process holds the lock; retry later.
    pub fn is_busy(&self) -> bool {
        let e = match self {
            DbError::Sqlite(e) => e,
            DbError::Commit(e) => e.as_ref(),
            _ => return false,
        };
        matches!(e, rusqlite::Error::SqliteFailure(e, _)
            if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
    }
}

/// The reply of a grouped write, sent once the group's commit is known.
type Reply = Box<dyn FnOnce(Result<(), DbError>) + Send>;

/// A job that runs alone on its connection, with its reply inside.
type CallJob = Box<dyn FnOnce(&mut Connection) + Send>;

enum Job {
    /// Runs alone, outside any group transaction.
    Call(CallJob),
    /// Runs inside a savepoint of a group transaction (or gets the error that prevented the
    /// transaction from starting). Returns whether to keep its changes, and its reply.
    Write(WriteJob),
}

type WriteJob = Box<dyn FnOnce(Result<&Connection, DbError>) -> (bool, Reply) + Send>;

/// What the database threads have done since the store was opened: the work a run puts on
/// the single writer, in units that do not depend on how fast the machine was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DbCounts {
    /// Writes run (each in its own savepoint), kept or undone.
    pub writes: u64,
    /// Group transactions committed or rolled back: the writer's commits.
    pub write_groups: u64,
    /// Reads run on the reader connection.
    pub reads: u64,
    /// Read transactions the reads were grouped into.
    pub read_groups: u64,
}

impl std::ops::Sub for DbCounts {
    type Output = DbCounts;

    /// The work done between two readings (`later - earlier`).
    fn sub(self, earlier: DbCounts) -> DbCounts {
        DbCounts {
            writes: self.writes - earlier.writes,
            write_groups: self.write_groups - earlier.write_groups,
            reads: self.reads - earlier.reads,
            read_groups: self.read_groups - earlier.read_groups,
        }
    }
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    write_groups: AtomicU64,
    reads: AtomicU64,
    read_groups: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A handle on the database thread. Cheap to clone; the thread (and the connection) ends
/// when the last handle is dropped.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Job>,
    /// The reader thread's jobs: reads of committed data, beside the writer (WAL).
    reads: mpsc::Sender<CallJob>,
    path: PathBuf,
    /// The checkpointer's requests; dropped with the last handle, which stops it.
    checkpointer: Arc<mpsc::Sender<CheckpointRequest>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("path", &self.path).finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database at `path` and starts its thread.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        Db::open_with_wal_restart(path, WAL_RESTART_FRAMES)
    }

    /// As [`Db::open`], restarting the WAL beyond `wal_restart_frames` (tests use a few).
    pub fn open_with_wal_restart(path: &Path, wal_restart_frames: i64) -> Result<Db, DbError> {
        let conn = open_connection(path).map_err(|source| DbError::Open {
            path: path.to_owned(),
            source,
        })?;
        let checkpoints = open_connection(path).map_err(|source| DbError::Open {
            path: path.to_owned(),
            source,
        })?;
        let counters = Arc::new(Counters::default());
        let (jobs, inbox) = mpsc::channel::<Job>();
        let writer_counters = counters.clone();
        std::thread::Builder::new()
            .name("payops-sqlite".to_owned())
            .spawn(move || run_jobs(conn, inbox, &writer_counters))
            .map_err(DbError::Spawn)?;
        let reader = open_connection(path).map_err(|source| DbError::Open {
            path: path.to_owned(),
            source,
        })?;
        let (reads, read_inbox) = mpsc::channel::<CallJob>();
        let reader_counters = counters.clone();
        std::thread::Builder::new()
            .name("payops-sqlite-read".to_owned())
            .spawn(move || run_reads(reader, read_inbox, &reader_counters))
            .map_err(DbError::Spawn)?;
        let (checkpointer, requests) = mpsc::channel::<CheckpointRequest>();
        std::thread::Builder::new()
            .name("payops-sqlite-checkpoint".to_owned())
            .spawn(move || run_checkpoints(checkpoints, requests, wal_restart_frames))
            .map_err(DbError::Spawn)?;
        Ok(Db {
            jobs,
            reads,
            path: path.to_owned(),
            checkpointer: Arc::new(checkpointer),
            counters,
        })
    }

    /// What the database threads have done so far.
    pub fn counts(&self) -> DbCounts {
        let c = &self.counters;
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        DbCounts {
            writes: load(&c.writes),
            write_groups: load(&c.write_groups),
            reads: load(&c.reads),
            read_groups: load(&c.read_groups),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs a checkpoint now (as the checkpointer does every [`CHECKPOINT_INTERVAL_MS`]) and
    /// returns what it did. Blocking: for tests, not for async code.
    pub fn checkpoint_now(&self) -> Result<Checkpoint, DbError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.checkpointer
            .send(CheckpointRequest(reply))
            .map_err(|_| DbError::Closed)?;
        answer.recv().map_err(|_| DbError::Closed)?
    }

    /// Runs `f` on the database thread and returns its result.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, DbError> {
        ask(f, |job| self.jobs.send(Job::Call(job)).is_ok()).await
    }

    /// Runs the read-only `f` on the reader connection, beside the writer: it sees every
    /// write whose answer has been given (answers come after the commit), and its cost
    /// stays off the writer's thread. `f` must not write, nor begin or end a transaction
    /// (reads waiting together run in one read transaction; see [`run_reads`]).
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, DbError> {
        ask(f, |job| self.reads.send(job).is_ok()).await
    }

    /// Runs `f` atomically: its changes are kept when it returns `Ok(Ok(_))` and undone when
    /// it returns `Ok(Err(_))` (a domain outcome such as a failed condition) or a SQLite
    /// error. The answer comes after the changes are committed. `f` must not begin or end
    /// transactions itself (it runs inside a savepoint of a group transaction).
    pub async fn write<R: Send + 'static, E: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<Result<R, E>> + Send + 'static,
    ) -> Result<Result<R, E>, DbError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job::Write(Box::new(move |conn: Result<&Connection, DbError>| {
            let outcome = conn.and_then(|c| f(c).map_err(DbError::from));
            let keep = matches!(outcome, Ok(Ok(_)));
            let respond: Reply = Box::new(move |committed: Result<(), DbError>| {
                // The caller may have stopped waiting (its future was dropped).
                let _ = reply.send(committed.and(outcome));
            });
            (keep, respond)
        }));
        self.jobs.send(job).map_err(|_| DbError::Closed)?;
        answer.await.map_err(|_| DbError::Closed)?
    }

    /// Like [`Db::call`], blocking the calling thread. For start-up code that is not async
    /// (opening the store, migrations). Never call it from inside a `call` closure.
    pub fn call_blocking<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, DbError> {
        let (reply, answer) = mpsc::sync_channel(1);
        self.submit(f, move |r| {
            let _ = reply.send(r);
        })?;
        answer.recv().map_err(|_| DbError::Closed)?
    }

    /// Applies the migration `name` once: `sql` runs in a transaction and is recorded in
    /// `schema_migrations`, so later calls with the same name do nothing. Blocking.
    pub fn migrate(&self, name: &str, sql: &str) -> Result<(), DbError> {
        let (name, sql) = (name.to_owned(), sql.to_owned());
        self.call_blocking(move |conn| apply_migration(conn, &name, &sql))
    }

    fn submit<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
        reply: impl FnOnce(Result<R, DbError>) + Send + 'static,
    ) -> Result<(), DbError> {
        let job = Job::Call(Box::new(move |conn| reply(f(conn).map_err(DbError::from))));
        self.jobs.send(job).map_err(|_| DbError::Closed)
    }
}

/// Hands `f` to a database thread through `send` (false: the thread is gone) and returns
/// its result.
async fn ask<R: Send + 'static>(
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    send: impl FnOnce(CallJob) -> bool,
) -> Result<R, DbError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let job: CallJob = Box::new(move |conn| {
        // The caller may have stopped waiting (its future was dropped): nothing to do.
        let _ = reply.send(f(conn).map_err(DbError::from));
    });
    if !send(job) {
        return Err(DbError::Closed);
    }
    answer.await.map_err(|_| DbError::Closed)?
}

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // WAL lets readers in other processes (ops commands) run beside the writer.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // NORMAL: a commit reaches the WAL file before returning but is fsynced only at
    // checkpoints. A killed process loses nothing (the OS has the pages); only a power
    // failure or an OS crash may lose the last transactions. We promise the former.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoints (the only fsyncs) run on their own connection and thread, so the writer
    // never waits for the disk; see `run_checkpoints`.
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The connection that restarts the WAL (the writer, at its first commit after a RESTART
    // checkpoint) cuts the file back to this size.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
    conn.pragma_update(None, "cache_size", -PAGE_CACHE_KIB)?;
    conn.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             name TEXT PRIMARY KEY,
             applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         );",
    )?;
    Ok(conn)
}

fn apply_migration(conn: &mut Connection, name: &str, sql: &str) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let applied: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM schema_migrations WHERE name = ?1)",
        [name],
        |r| r.get(0),
    )?;
    if !applied {
        tx.execute_batch(sql)?;
        tx.execute("INSERT INTO schema_migrations (name) VALUES (?1)", [name])?;
    }
    tx.commit()
}

fn run_jobs(mut conn: Connection, inbox: mpsc::Receiver<Job>, counters: &Counters) {
    let mut next: Option<Job> = None;
    loop {
        let job = match next.take() {
            Some(job) => job,
            None => match inbox.recv() {
                Ok(job) => job,
                // Every handle is gone: close the connection.
                Err(_) => return,
            },
        };
        match job {
            Job::Call(f) => run_call(&mut conn, f),
            Job::Write(first) => next = run_group(&conn, first, &inbox, counters),
        }
    }
}

/// The reader thread: runs the reads waiting together (at most [`READ_GROUP_MAX`]) in one
/// read transaction. Each read still sees every write answered before it was asked for (the
/// transaction's snapshot is taken by its first statement, after all of them were asked
/// for). What it saves: SQLite drops a connection's whole page cache when a read transaction
/// begins after another connection committed, which under load is every time; one
/// transaction per group reloads the B-tree's upper pages once per group, not once per read.
fn run_reads(mut conn: Connection, inbox: mpsc::Receiver<CallJob>, counters: &Counters) {
    let mut group: Vec<CallJob> = Vec::with_capacity(READ_GROUP_MAX);
    // Every handle is gone when `recv` fails: close the connection.
    while let Ok(first) = inbox.recv() {
        group.push(first);
        while group.len() < READ_GROUP_MAX {
            match inbox.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        Counters::add(&counters.reads, group.len());
        Counters::add(&counters.read_groups, 1);
        // A read that cannot share a transaction still runs, on its own.
        let grouped = group.len() > 1 && run_cached(&conn, "BEGIN").is_ok();
        for job in group.drain(..) {
            run_call(&mut conn, job);
        }
        // A panicking read rolls the transaction back (`run_call`); nothing to end then.
        if grouped
            && !conn.is_autocommit()
            && let Err(e) = run_cached(&conn, "COMMIT")
        {
            tracing::warn!(error = %e, "could not end a group of reads");
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// A request for a checkpoint now, with where to send what it did.
struct CheckpointRequest(mpsc::SyncSender<Result<Checkpoint, DbError>>);

/// What one checkpoint did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// Frames in the WAL when the passive checkpoint ran.
    pub wal_frames: i64,
    /// The WAL was long enough to be restarted, and the restart went through (every frame
    /// copied and no reader left in the WAL): the next commit writes from its beginning.
    pub restarted: bool,
}

/// Copies the WAL into the database file every CHECKPOINT_INTERVAL_MS (or when asked),
/// beside the writer, until the last `Db` handle is dropped. A PASSIVE checkpoint never
/// blocks anyone. When the WAL has grown past `restart_frames`, a RESTART checkpoint follows:
/// it holds the writer off while it copies what the passive one could not (about one
/// interval of commits) and waits for the readers to leave the WAL (a group of reads), so
/// that the next commit starts the WAL again from its beginning.
fn run_checkpoints(
    conn: Connection,
    requests: mpsc::Receiver<CheckpointRequest>,
    restart_frames: i64,
) {
    let interval = Duration::from_millis(CHECKPOINT_INTERVAL_MS);
    loop {
        let reply = match requests.recv_timeout(interval) {
            Ok(CheckpointRequest(reply)) => Some(reply),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let done = checkpoint(&conn, restart_frames);
        if let Err(e) = &done {
            tracing::warn!(error = %e, "WAL checkpoint failed; will retry");
        }
        if let Some(reply) = reply {
            let _ = reply.send(done);
        }
    }
}

fn checkpoint(conn: &Connection, restart_frames: i64) -> Result<Checkpoint, DbError> {
    // One row: (busy, frames in the WAL, frames copied).
    let wal_frames: i64 = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))?;
    let mut restarted = false;
    if wal_frames > restart_frames {
        let busy: i64 = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get(0))?;
        restarted = busy == 0;
    }
    Ok(Checkpoint {
        wal_frames,
        restarted,
    })
}

fn run_call(conn: &mut Connection, f: CallJob) {
    // A panicking job drops its reply sender (its caller sees `Closed`); the connection and
    // every other caller carry on.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
    if outcome.is_err() {
        tracing::error!("a database job panicked");
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

/// Runs `first` and every write already waiting in one transaction; returns the first
/// non-write job it took from the inbox, to run next.
fn run_group(
    conn: &Connection,
    first: WriteJob,
    inbox: &mpsc::Receiver<Job>,
    counters: &Counters,
) -> Option<Job> {
    if let Err(e) = run_cached(conn, "BEGIN IMMEDIATE") {
        // The reply carries the job's own outcome: the error that kept it from running.
        let (_, reply) = first(Err(e.into()));
        reply(Ok(()));
        return None;
    }
    let mut replies: Vec<Reply> = Vec::new();
    replies.extend(run_in_savepoint(conn, first));
    let mut next = None;
    while replies.len() < GROUP_COMMIT_WRITES_MAX && !conn.is_autocommit() {
        match inbox.try_recv() {
            Ok(Job::Write(job)) => replies.extend(run_in_savepoint(conn, job)),
            Ok(other) => {
                next = Some(other);
                break;
            }
            Err(_) => break,
        }
    }
    let committed = if conn.is_autocommit() {
        // SQLite rolled the whole transaction back itself (an I/O error, a full disk):
        // nothing of the group is stored, and every write in it must say so.
        Err(Arc::new(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
            Some("the group transaction was rolled back by SQLite".to_owned()),
        )))
    } else {
        run_cached(conn, "COMMIT").map_err(Arc::new)
    };
    if committed.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    Counters::add(&counters.writes, replies.len());
    Counters::add(&counters.write_groups, 1);
    for reply in replies {
        reply(committed.clone().map_err(DbError::Commit));
    }
    next
}

/// Runs a transaction-control statement from the statement cache: `execute_batch` would
/// parse it again for every write, which showed up in profiles of the payroll run.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Runs one write inside a savepoint, keeping or undoing its changes. `None` when it
/// panicked (its caller sees `Closed`) or the savepoint could not be opened.
fn run_in_savepoint(conn: &Connection, job: WriteJob) -> Option<Reply> {
    if let Err(e) = run_cached(conn, "SAVEPOINT write") {
        let (_, reply) = job(Err(e.into()));
        return Some(reply);
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(conn))));
    let keep = matches!(outcome, Ok((true, _)));
    let undo = if keep {
        Ok(())
    } else {
        run_cached(conn, "ROLLBACK TO write")
    };
    if let Err(e) = undo.and_then(|()| run_cached(conn, "RELEASE write")) {
        tracing::error!(error = %e, "could not close a write's savepoint");
    }
    match outcome {
        Ok((_, reply)) => Some(reply),
        Err(_) => {
            tracing::error!("a database write panicked; its changes were undone");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn write_commits_ok_and_rolls_back_err() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("t.sqlite")).expect("open");
        db.migrate("t1", "CREATE TABLE t (v INTEGER);")
            .expect("migrate");
        db.migrate("t1", "this is not SQL and must not run again")
            .expect("second migrate is a no-op");
        let r: Result<(), &str> = db
            .write(|tx| {
                tx.execute("INSERT INTO t VALUES (1)", [])?;
                Ok(Ok(()))
            })
            .await
            .expect("db");
        assert!(r.is_ok());
        let r: Result<(), &str> = db
            .write(|tx| {
                tx.execute("INSERT INTO t VALUES (2)", [])?;
                Ok(Err("domain failure"))
            })
            .await
            .expect("db");
        assert_eq!(r, Err("domain failure"));
        let rows: Vec<i64> = db
            .call(|c| {
                let mut s = c.prepare("SELECT v FROM t ORDER BY v")?;
                s.query_map([], |r| r.get(0))?.collect()
            })
            .await
            .expect("select");
        assert_eq!(rows, [1]);
        let counts = db.counts();
        assert_eq!(counts.writes, 2, "the undone write counts too: {counts:?}");
        assert_eq!(counts.write_groups, 2, "one at a time: {counts:?}");
        assert_eq!(counts.reads, 0, "`call` runs on the writer: {counts:?}");
        let seen: i64 = db
            .read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .await
            .expect("read");
        assert_eq!(seen, 1);
        assert_eq!((db.counts().reads, db.counts().read_groups), (1, 1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn grouped_writes_keep_or_undo_each_write_on_its_own() {
        const WRITES: i64 = 200;
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("t.sqlite")).expect("open");
        db.migrate("t1", "CREATE TABLE t (v INTEGER PRIMARY KEY);")
            .expect("migrate");
        let writes = (0..WRITES).map(|v| {
            let db = db.clone();
            tokio::spawn(async move {
                db.write(move |c| {
                    c.execute("INSERT INTO t VALUES (?1)", [v])?;
                    if v % 3 == 0 {
                        panic!("write {v} panics after inserting");
                    }
                    Ok(if v % 2 == 0 { Ok(v) } else { Err(v) })
                })
                .await
            })
        });
        let outcomes = futures::future::join_all(writes).await;
        let mut kept = Vec::new();
        for (v, outcome) in (0..WRITES).zip(outcomes) {
            match outcome.expect("task") {
                Ok(Ok(got)) => {
                    assert_eq!(got, v);
                    kept.push(v);
                }
                Ok(Err(got)) => assert_eq!(got, v),
                Err(DbError::Closed) => assert_eq!(v % 3, 0, "only panicking writes are lost"),
                Err(e) => panic!("write {v}: {e}"),
            }
        }
        let stored: Vec<i64> = db
            .call(|c| {
                let mut s = c.prepare("SELECT v FROM t ORDER BY v")?;
                s.query_map([], |r| r.get(0))?.collect()
            })
            .await
            .expect("select");
        let expected: Vec<i64> = (0..WRITES).filter(|v| v % 2 == 0 && v % 3 != 0).collect();
        assert_eq!(kept, expected);
        assert_eq!(
            stored, expected,
            "only the writes that returned Ok(Ok) are stored"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_read_sees_the_writes_answered_before_it_and_a_panicking_read_spoils_none() {
        const TASKS: i64 = 300;
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("t.sqlite")).expect("open");
        db.migrate("t1", "CREATE TABLE t (v INTEGER PRIMARY KEY);")
            .expect("migrate");
        // Many tasks write and then read at once, so reads wait together and run grouped;
        // every fifth read panics inside its group.
        let tasks = (0..TASKS).map(|v| {
            let db = db.clone();
            tokio::spawn(async move {
                let written: Result<(), ()> = db
                    .write(move |c| {
                        c.execute("INSERT INTO t VALUES (?1)", [v])?;
                        Ok(Ok(()))
                    })
                    .await
                    .expect("write");
                written.expect("stored");
                db.read(move |c| {
                    let seen: i64 =
                        c.query_row("SELECT COUNT(*) FROM t WHERE v <= ?1", [v], |r| r.get(0))?;
                    if v % 5 == 0 {
                        panic!("read {v} panics");
                    }
                    Ok(seen)
                })
                .await
            })
        });
        let outcomes = futures::future::join_all(tasks).await;
        for (v, outcome) in (0..TASKS).zip(outcomes) {
            match outcome.expect("task") {
                // Its own write at least; the others below it only if they were answered.
                Ok(seen) => assert!((1..=v + 1).contains(&seen), "read {v} saw {seen}"),
                Err(DbError::Closed) => assert_eq!(v % 5, 0, "only panicking reads fail"),
                Err(e) => panic!("read {v}: {e}"),
            }
        }
        let total: i64 = db
            .read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .await
            .expect("the reader still runs");
        assert_eq!(total, TASKS);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_wal_restarts_from_its_beginning_while_reads_go_on() {
        const RESTART_FRAMES: i64 = 64;
        const WRITES: i64 = 40;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("t.sqlite");
        let db = Db::open_with_wal_restart(&path, RESTART_FRAMES).expect("open");
        db.migrate(
            "t1",
            "CREATE TABLE t (v INTEGER PRIMARY KEY, pad BLOB NOT NULL);",
        )
        .expect("migrate");
        // Reads keep running beside the writes and the checkpoints.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (db, stop) = (db.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    db.read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get::<_, i64>(0)))
                        .await
                        .expect("read");
                    reads += 1;
                }
                reads
            })
        };
        // Each write adds 16 rows of 1 KiB: a few pages of WAL, far past the limit in all.
        for w in 0..WRITES {
            let stored: Result<(), ()> = db
                .write(move |c| {
                    for i in 0..16 {
                        c.execute("INSERT INTO t VALUES (?1, zeroblob(1024))", [w * 16 + i])?;
                    }
                    Ok(Ok(()))
                })
                .await
                .expect("write");
            stored.expect("stored");
        }
        let ask = |db: &Db| {
            let db = db.clone();
            tokio::task::spawn_blocking(move || db.checkpoint_now())
        };
        let long = ask(&db).await.expect("task").expect("checkpoint");
        assert!(long.wal_frames > RESTART_FRAMES, "{long:?}");
        assert!(long.restarted, "{long:?}");
        let one: Result<(), ()> = db
            .write(|c| {
                c.execute("INSERT INTO t VALUES (-1, zeroblob(1024))", [])?;
                Ok(Ok(()))
            })
            .await
            .expect("write");
        one.expect("stored");
        let after = ask(&db).await.expect("task").expect("checkpoint");
        assert!(
            after.wal_frames < RESTART_FRAMES / 4,
            "the next commit starts the WAL again: {after:?}"
        );
        assert!(!after.restarted, "{after:?}");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.await.expect("reader") > 0);
        let rows: i64 = db
            .read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0)))
            .await
            .expect("read");
        assert_eq!(rows, WRITES * 16 + 1, "nothing lost across the restart");
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_stop_the_thread() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(&dir.path().join("t.sqlite")).expect("open");
        let r = db
            .call(|_| -> rusqlite::Result<()> { panic!("boom") })
            .await;
        assert!(matches!(r, Err(DbError::Closed)));
        let one: i64 = db
            .call(|c| c.query_row("SELECT 1", [], |r| r.get(0)))
            .await
            .expect("the thread still runs");
        assert_eq!(one, 1);
    }
}
