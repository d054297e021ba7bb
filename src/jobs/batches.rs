//! The parallel part of an export: rows read from the cursor are packed into batches,
//! formatting threads turn each batch into CSV bytes, and the calling thread writes those
//! bytes in the order the rows were read. Buffers go round (no allocation once warm), and
//! at most [`IN_FLIGHT`] batches exist at once, so memory stays flat.

use std::collections::BTreeMap;
use std::io::Write;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::Mutex;

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

/// Rows packed into one text buffer.
#[derive(Default)]
struct Batch {
    text: String,
    rows: Vec<RowAt>,
    /// Where each row's records end in the formatted output.
    ends: Vec<usize>,
}

/// Where one row's parts end in the batch text (each starts where the previous one ends).
struct RowAt {
    id_end: usize,
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

    /// Appends the CSV records of every row to `out`; returns how many records.
    fn format(&mut self, plan: &CsvPlan, scratch: &mut crate::jobs::csv::RowScratch, out: &mut Vec<u8>) -> u64 {
        self.ends.clear();
        let mut records = 0;
        let mut at = 0;
        for r in &self.rows {
            let id = &self.text[at..r.id_end];
            let (file_name, file_end) = match r.file_end {
                Some(end) => (Some(&self.text[r.id_end..end]), end),
                None => (None, r.id_end),
            };
            let extraction = &self.text[file_end..r.extraction_end];
            records += plan.write_row(id, file_name, r.created_at_ms, extraction, out, scratch) as u64;
            self.ends.push(out.len());
            at = r.extraction_end;
        }
        records
    }
}

struct Job {
    seq: u64,
    batch: Batch,
    out: Vec<u8>,
}

enum Done {
    Formatted { seq: u64, batch: Batch, out: Vec<u8>, records: u64 },
    Panicked(Box<dyn std::any::Any + Send>),
}

/// The reading side, handed to the closure of [`format_in_order`].
pub(super) struct Batches<'a, W: Write> {
    current: Batch,
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
    sent: u64,
    in_flight: usize,
    /// Rows pushed so far.
    read: u64,
    writer: Ordered<'a, W>,
}

impl<W: Write> Batches<'_, W> {
    /// Adds one row; true when a batch was just handed over (a good moment to check for
    /// cancellation).
    pub(super) fn push(
        &mut self,
        id: &str,
        file_name: Option<&str>,
        created_at_ms: i64,
        extraction: &str,
    ) -> Result<bool, EngineError> {
        self.read += 1;
        let b = &mut self.current;
        b.text.push_str(id);
        let id_end = b.text.len();
        let file_end = file_name.map(|f| {
            b.text.push_str(f);
            b.text.len()
        });
        b.text.push_str(extraction);
        b.rows.push(RowAt { id_end, file_end, extraction_end: b.text.len(), created_at_ms });
        if b.rows.len() < BATCH_ROWS && b.text.len() < BATCH_BYTES {
            return Ok(false);
        }
        self.hand_over()?;
        Ok(true)
    }

    /// Rows pushed so far, and records written to the output so far.
    pub(super) fn progress(&self) -> (u64, u64) {
        (self.read, self.writer.records)
    }

    /// Sends the current batch to the formatting threads, first waiting (and writing) while
    /// too many are in flight.
    fn hand_over(&mut self) -> Result<(), EngineError> {
        while self.in_flight >= IN_FLIGHT {
            self.receive()?;
        }
        // whatever is finished already goes out now
        while let Ok(done) = self.done.try_recv() {
            self.in_flight -= 1;
            self.writer.accept(done)?;
        }
        let (mut next, out) = self.writer.free.pop().unwrap_or_default();
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
        self.in_flight -= 1;
        self.writer.accept(done)
    }

    /// Hands over the last batch and writes everything; returns the number of records.
    fn finish(mut self) -> Result<u64, EngineError> {
        if !self.current.rows.is_empty() {
            self.hand_over()?;
        }
        while self.in_flight > 0 {
            self.receive()?;
        }
        debug_assert!(self.writer.pending.is_empty());
        if let Some(carry) = &self.writer.carry {
            self.writer.sink.write_all(carry)?;
        }
        Ok(self.writer.records)
    }
}

/// Writes formatted batches in sequence order.
struct Ordered<'a, W: Write> {
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
    fn accept(&mut self, done: Done) -> Result<(), EngineError> {
        let (seq, batch, out, records) = match done {
            Done::Formatted { seq, batch, out, records } => (seq, batch, out, records),
            Done::Panicked(payload) => resume_unwind(payload),
        };
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
pub(super) fn format_in_order<W: Write>(
    plan: &CsvPlan,
    threads: usize,
    output: Output<W>,
    read: impl FnOnce(&mut Batches<W>) -> Result<bool, EngineError>,
) -> Result<Option<u64>, EngineError> {
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(IN_FLIGHT);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            std::thread::Builder::new()
                .name("export-format".into())
                .spawn_scoped(scope, move || format_batches(plan, job_rx, done_tx))
                .map_err(EngineError::Io)?;
        }
        drop(done_tx);
        let Output { sink, head, same_writes } = output;
        let carry = if same_writes {
            Some(head)
        } else {
            sink.write_all(&head)?;
            None
        };
        let mut batches = Batches {
            current: Batch::default(),
            jobs: job_tx,
            done: done_rx,
            sent: 0,
            in_flight: 0,
            read: 0,
            writer: Ordered { sink, carry, next: 0, pending: BTreeMap::new(), free: Vec::new(), records: 0 },
        };
        if !read(&mut batches)? {
            return Ok(None);
        }
        batches.finish().map(Some)
        // leaving the scope hangs up the job channel: the threads end and are joined
    })
}

fn format_batches(plan: &CsvPlan, jobs: &Mutex<Receiver<Job>>, done: Sender<Done>) {
    let mut scratch = plan.scratch();
    loop {
        let job = jobs.lock().map_err(|_| ()).and_then(|rx| rx.recv().map_err(|_| ()));
        let Ok(Job { seq, mut batch, mut out }) = job else {
            return;
        };
        out.clear();
        match catch_unwind(AssertUnwindSafe(|| batch.format(plan, &mut scratch, &mut out))) {
            Ok(records) => {
                if done.send(Done::Formatted { seq, batch, out, records }).is_err() {
                    return;
                }
            }
            Err(payload) => {
                let _ = done.send(Done::Panicked(payload));
                return;
            }
        }
    }
}
