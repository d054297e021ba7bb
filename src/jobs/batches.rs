//! The parallel part of an export: rows read from the cursor are packed into batches,
//! formatting threads turn each batch into CSV bytes and write them, in the order the rows
//! were read, to the output. Buffers go round (no allocation once warm), and at most
//! [`IN_FLIGHT`] batches exist at once, so memory stays flat.
//!
//! The reading thread is the one part that cannot be shared out (one SQLite cursor), so it
//! does nothing else: it neither checks the stored text is UTF-8 nor writes the output; the
//! formatting threads do both. With both cores busy that is what sets an export's pace.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Mutex, MutexGuard};

use super::csv::CsvPlan;
use super::engine::EngineError;

/// A batch is handed over when it has this many rows...
const BATCH_ROWS: usize = 1024;
/// ...or this many bytes of text (a single larger row makes a batch of its own). Large
/// enough that a batch's CSV outgrows the callers' 256 KiB `BufWriter`, which then writes
/// it straight through instead of copying it first.
const BATCH_BYTES: usize = 512 * 1024;
/// Batches read but not yet written, at most.
const IN_FLIGHT: usize = 8;

/// Rows packed into one buffer, as read (not yet checked to be UTF-8: [`Batch::format`] does).
#[derive(Default)]
struct Batch {
    text: Vec<u8>,
    rows: Vec<RowAt>,
    /// Where each row's records end in the formatted output.
    ends: Vec<usize>,
}

/// One row: its id, and where its parts end in the batch text (the first starts at the end
/// of the previous row's, each next one where the previous one ends).
struct RowAt {
    /// Stored as 16 bytes: formatted as text here, on the formatting threads.
    id: uuid::Uuid,
    /// `None` for a result without a file name.
    file_end: Option<usize>,
    extraction_end: usize,
    created_at_ms: i64,
}

impl Batch {
    fn clear(&mut self) {
        self.text.clear();
        self.rows.clear();
    }

    /// Appends the CSV records of every row to `out`; returns how many records. Fails when
    /// the stored text is not UTF-8 (as reading it as text on the cursor would have).
    fn format(
        &mut self,
        plan: &CsvPlan,
        scratch: &mut crate::jobs::csv::RowScratch,
        out: &mut Vec<u8>,
    ) -> Result<u64, EngineError> {
        self.ends.clear();
        let text = &self.text;
        // the column each part was read from, for the error
        let part = |from: usize, to: usize, column: usize| {
            std::str::from_utf8(&text[from..to]).map_err(|e| not_text(column, e))
        };
        let mut records = 0;
        let mut at = 0;
        let mut id = [0u8; uuid::fmt::Hyphenated::LENGTH];
        for r in &self.rows {
            let id = &*r.id.hyphenated().encode_lower(&mut id);
            let (file_name, file_end) = match r.file_end {
                Some(end) => (Some(part(at, end, 1)?), end),
                None => (None, at),
            };
            let extraction = part(file_end, r.extraction_end, 3)?;
            records += plan.write_row(id, file_name, r.created_at_ms, extraction, out, scratch) as u64;
            self.ends.push(out.len());
            at = r.extraction_end;
        }
        Ok(records)
    }
}

/// The error reading the column as text would have given, on either database: SQLite hands
/// the cursor's bytes over unchecked, and so does PostgreSQL's export scan
/// (`db::results::stream_for_export` reads the extraction's raw bytes). PostgreSQL checks
/// text is UTF-8 when it stores it (in a UTF8 database), so there it comes only from a
/// database of another encoding (`SQL_ASCII`); it is reported as SQLite's is, naming the
/// column, and fails the export the same way.
fn not_text(column: usize, e: std::str::Utf8Error) -> EngineError {
    EngineError::Db(crate::db::DbError::from(rusqlite::Error::Utf8Error(column, e)))
}

struct Job {
    seq: u64,
    batch: Batch,
    out: Vec<u8>,
}

/// What a formatting thread tells the reading one after a batch.
enum Done {
    /// The batch was formatted and is written, or waits for an earlier one to be: its place
    /// in flight is free.
    Formatted,
    /// Formatting or writing failed; the export stops.
    Failed(EngineError),
    Panicked(Box<dyn std::any::Any + Send>),
}

/// The reading side, handed to the closure of [`format_in_order`].
pub(super) struct Batches<'s, 'a, W: Write> {
    current: Batch,
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
    sent: u64,
    in_flight: usize,
    /// Rows pushed so far.
    read: u64,
    writer: &'s Mutex<Ordered<'a, W>>,
}

impl<W: Write> Batches<'_, '_, W> {
    /// Adds one row; true when a batch was just handed over (a good moment to check for
    /// cancellation).
    pub(super) fn push(
        &mut self,
        id: uuid::Uuid,
        file_name: Option<&str>,
        created_at_ms: i64,
        extraction: &[u8],
    ) -> Result<bool, EngineError> {
        self.read += 1;
        let b = &mut self.current;
        let file_end = file_name.map(|f| {
            b.text.extend_from_slice(f.as_bytes());
            b.text.len()
        });
        b.text.extend_from_slice(extraction);
        b.rows.push(RowAt { id, file_end, extraction_end: b.text.len(), created_at_ms });
        if b.rows.len() < BATCH_ROWS && b.text.len() < BATCH_BYTES {
            return Ok(false);
        }
        self.hand_over()?;
        Ok(true)
    }

    /// Rows pushed so far, and records written to the output so far.
    pub(super) fn progress(&self) -> (u64, u64) {
        (self.read, lock(self.writer).records)
    }

    /// Sends the current batch to the formatting threads, first waiting while too many are in
    /// flight.
    fn hand_over(&mut self) -> Result<(), EngineError> {
        while self.in_flight >= IN_FLIGHT {
            self.receive()?;
        }
        while let Ok(done) = self.done.try_recv() {
            self.settle(done)?;
        }
        let (mut next, out) = lock(self.writer).free.pop().unwrap_or_default();
        next.clear();
        let batch = std::mem::replace(&mut self.current, next);
        let job = Job { seq: self.sent, batch, out };
        // the formatting threads only stop when this side hangs up
        self.jobs.send(job).expect("formatting threads are running");
        self.sent += 1;
        self.in_flight += 1;
        Ok(())
    }

    fn receive(&mut self) -> Result<(), EngineError> {
        let done = self.done.recv().expect("formatting threads are running");
        self.settle(done)
    }

    fn settle(&mut self, done: Done) -> Result<(), EngineError> {
        self.in_flight -= 1;
        match done {
            Done::Formatted => Ok(()),
            Done::Failed(e) => Err(e),
            Done::Panicked(payload) => resume_unwind(payload),
        }
    }

    /// Hands over the last batch and waits until everything is written; returns the number
    /// of records.
    fn finish(mut self) -> Result<u64, EngineError> {
        if !self.current.rows.is_empty() {
            self.hand_over()?;
        }
        while self.in_flight > 0 {
            self.receive()?;
        }
        let mut writer = lock(self.writer);
        debug_assert!(writer.pending.is_empty());
        if let Some(carry) = writer.carry.take() {
            writer.sink.write_all(&carry)?;
        }
        Ok(writer.records)
    }
}

/// The writer's lock. A formatting thread that panicked did so outside it (see
/// [`format_batches`]), and the panic ends the export, so a poisoned lock is still sound.
fn lock<'m, 'a, W: Write>(m: &'m Mutex<Ordered<'a, W>>) -> MutexGuard<'m, Ordered<'a, W>> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Writes formatted batches in sequence order; shared by the formatting threads, each of
/// which writes what is ready after formatting a batch.
pub(super) struct Ordered<'a, W: Write> {
    sink: &'a mut W,
    /// `Some` when writes must come in the sizes the single-threaded engine wrote: whole
    /// rows, at least [`CHUNK`] bytes (the header in the first), gathered here. A gzip
    /// stream's bytes depend on the sizes of the writes it was given.
    carry: Option<Vec<u8>>,
    next: u64,
    pending: BTreeMap<u64, (Batch, Vec<u8>, u64)>,
    free: Vec<(Batch, Vec<u8>)>,
    records: u64,
}

impl<W: Write> Ordered<'_, W> {
    fn accept(&mut self, seq: u64, batch: Batch, out: Vec<u8>, records: u64) -> Result<(), EngineError> {
        self.pending.insert(seq, (batch, out, records));
        while let Some((batch, out, records)) = self.pending.remove(&self.next) {
            match &mut self.carry {
                None => self.sink.write_all(&out)?,
                Some(carry) => {
                    let mut at = 0;
                    for &end in &batch.ends {
                        carry.extend_from_slice(&out[at..end]);
                        at = end;
                        if carry.len() >= CHUNK {
                            self.sink.write_all(carry)?;
                            carry.clear();
                        }
                    }
                }
            }
            self.records += records;
            self.next += 1;
            self.free.push((batch, out));
        }
        Ok(())
    }
}

/// Bytes gathered before a write when the sizes of writes matter (see [`Ordered`]).
const CHUNK: usize = 64 * 1024;

/// How the formatted bytes are written.
pub(super) struct Output<'a, W: Write> {
    pub sink: &'a mut W,
    /// BOM and header, written first.
    pub head: Vec<u8>,
    /// Write in the sizes the single-threaded engine wrote (for a gzip stream).
    pub same_writes: bool,
}

/// Runs `read` (which pushes rows into the [`Batches`] it is given and returns false when
/// the export was stopped) with `threads` formatting threads, writing the head and the
/// records to the output in order. Returns the number of records, or `None` when stopped.
pub(super) fn format_in_order<W: Write + Send>(
    plan: &CsvPlan,
    threads: usize,
    output: Output<W>,
    read: impl FnOnce(&mut Batches<W>) -> Result<bool, EngineError>,
) -> Result<Option<u64>, EngineError> {
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(IN_FLIGHT);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let Output { sink, head, same_writes } = output;
    let carry = if same_writes {
        Some(head)
    } else {
        sink.write_all(&head)?;
        None
    };
    let writer = Mutex::new(Ordered { sink, carry, next: 0, pending: BTreeMap::new(), free: Vec::new(), records: 0 });
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let (job_rx, done_tx, writer) = (&job_rx, done_tx.clone(), &writer);
            std::thread::Builder::new()
                .name("export-format".into())
                .spawn_scoped(scope, move || format_batches(plan, job_rx, done_tx, writer))
                .map_err(EngineError::Io)?;
        }
        drop(done_tx);
        let mut batches = Batches {
            current: Batch::default(),
            jobs: job_tx,
            done: done_rx,
            sent: 0,
            in_flight: 0,
            read: 0,
            writer: &writer,
        };
        if !read(&mut batches)? {
            return Ok(None);
        }
        batches.finish().map(Some)
        // leaving the scope hangs up the job channel: the threads end and are joined
    })
}

fn format_batches<W: Write>(
    plan: &CsvPlan,
    jobs: &Mutex<Receiver<Job>>,
    done: Sender<Done>,
    writer: &Mutex<Ordered<W>>,
) {
    let mut scratch = plan.scratch();
    loop {
        let job = jobs.lock().map_err(|_| ()).and_then(|rx| rx.recv().map_err(|_| ()));
        let Ok(Job { seq, mut batch, mut out }) = job else {
            return;
        };
        out.clear();
        let formatted = catch_unwind(AssertUnwindSafe(|| batch.format(plan, &mut scratch, &mut out)));
        let message = match formatted {
            Ok(Ok(records)) => {
                // a panic while writing (in the sink) ends the export like one while formatting
                match catch_unwind(AssertUnwindSafe(|| lock(writer).accept(seq, batch, out, records))) {
                    Ok(Ok(())) => Done::Formatted,
                    Ok(Err(e)) => Done::Failed(e),
                    Err(payload) => Done::Panicked(payload),
                }
            }
            Ok(Err(e)) => Done::Failed(e),
            Err(payload) => Done::Panicked(payload),
        };
        let stop = !matches!(message, Done::Formatted);
        if done.send(message).is_err() || stop {
            return;
        }
    }
}
