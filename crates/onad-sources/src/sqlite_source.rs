//! SQLite source: streams the rows of a read-only query on a database file into dense batches, through
//! one prepared statement stepped from start to end (SQLite is compiled in; no system library needed).
//!
//! Why a reader thread: a rusqlite `Statement` borrows its `Connection`, so a struct cannot own both and
//! keep the statement across `next()` calls without unsafe code or a self-referential-struct crate. The
//! usual way out, re-running the query per batch with `LIMIT ? OFFSET ?`, makes SQLite produce and drop
//! every earlier row again (and re-sort them, for an `ORDER BY` without an index): quadratic in the
//! table size. So a reader thread owns the connection and its one statement, steps it once, and sends
//! ready batches through a channel of one slot (memory stays at about three batches). Dropping the
//! source, or seeking, stops that thread (a flag, SQLite's interrupt, and the closed channel).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use onad_core::{BadRecord, BadRowPolicy, Batch, Position, Schema, SchemaRef, SkipCounts, Source, SourceError};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, InterruptHandle, OpenFlags};

use crate::options::{NonNumericColumns, Role, SourceOptions};

/// Streams the result of an SQL query on a SQLite database file as batches. The query's column names
/// are the columns; every column but the label is a feature. `INTEGER` and `REAL` values become `f64`,
/// `NULL` is NaN (missing), `TEXT` that reads as a number (`'1.5'`, `' 2 '`, `'1e3'`) is that number.
/// Other text and `BLOB`s make a bad row `non_numeric`, and a row whose features are all `NULL` (or NaN)
/// a bad row `empty_row`: skipped and counted or reported as an error naming the file, row and column, as
/// the [`BadRowPolicy`] says.
///
/// The database is opened read-only and the query must not write. Row ids count the query's rows from 0,
/// bad ones included; [`Source::position`] is the number of rows consumed, and [`Source::seek`] runs the
/// query again and skips that many rows, so the query should give a stable order (`ORDER BY`).
pub struct SqliteSource {
    name: String,
    path: PathBuf,
    query: String,
    /// Input column names (features and label) and the label's position, shared with the reader thread.
    layout: Arc<Layout>,
    schema: SchemaRef,
    next_row: u64,
    skipped: SkipCounts,
    reader: Option<Reader>,
    /// The reader's first message, received by `seek` to check the target row exists.
    pending: Option<Msg>,
    done: bool,
}

impl fmt::Debug for SqliteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSource")
            .field("name", &self.name)
            .field("query", &self.query)
            .field("schema", &self.schema)
            .field("next_row", &self.next_row)
            .finish_non_exhaustive()
    }
}

/// What the reader thread needs to turn rows into batches.
#[derive(Debug)]
struct Layout {
    name: String,
    columns: Vec<String>,
    /// What each column is.
    roles: Vec<Role>,
    label: Option<usize>,
    features: usize,
    batch_size: usize,
    policy: BadRowPolicy,
}

/// A message from the reader thread.
#[derive(Debug)]
enum Msg {
    /// Up to `batch_size` good rows, and the rows read to get them.
    Chunk(Chunk),
    /// The query has no more rows.
    End,
    /// The query failed, or a bad row under [`BadRowPolicy::Fail`]; the thread has stopped.
    Failed(SourceError),
    /// The query has fewer rows than the row asked to start at: how many it has.
    Short(u64),
}

#[derive(Debug)]
struct Chunk {
    values: Vec<f64>,
    labels: Option<Vec<f64>>,
    row_ids: Vec<u64>,
    /// The reason of each bad row skipped.
    skipped: Vec<&'static str>,
    /// Rows read, good and bad.
    rows_read: u64,
}

/// The running reader thread.
struct Reader {
    rx: Option<Receiver<Msg>>,
    stop: Arc<AtomicBool>,
    interrupt: InterruptHandle,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Closing the channel wakes a thread waiting to send; the interrupt ends a long-running step.
        drop(self.rx.take());
        self.interrupt.interrupt();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn external(name: &str, e: rusqlite::Error) -> SourceError {
    SourceError::External { connector: "sqlite", source_name: name.to_owned(), error: Box::new(e) }
}

impl SqliteSource {
    /// Opens a SQLite database file read-only and prepares `query` (one statement that returns rows,
    /// for example `SELECT cpu, mem, label FROM metrics ORDER BY ts`).
    pub fn open(path: impl AsRef<Path>, query: &str, options: SourceOptions) -> Result<Self, SourceError> {
        let path = path.as_ref().to_path_buf();
        let name = path.display().to_string();
        if !path.is_file() {
            return Err(SourceError::Io {
                source_name: name,
                error: std::io::Error::new(std::io::ErrorKind::NotFound, "no such database file"),
            });
        }
        let query = query.trim().trim_end_matches(';').trim_end().to_owned();
        let conn = connect(&name, &path)?;
        let columns: Vec<String> = {
            let stmt = conn.prepare(&query).map_err(|e| external(&name, e))?;
            if !stmt.readonly() {
                return Err(SourceError::Schema {
                    source_name: name,
                    message: format!("the query must only read (a SELECT), got: {query}"),
                });
            }
            stmt.column_names().map(str::to_owned).collect()
        };
        if columns.is_empty() {
            return Err(SourceError::Schema {
                source_name: name,
                message: format!("the query returns no columns: {query}"),
            });
        }
        // Under `NonNumericColumns::Exclude` the first row says which columns hold numbers.
        let mut first_numeric = vec![true; columns.len()];
        if options.non_numeric == NonNumericColumns::Exclude {
            let mut stmt = conn.prepare(&query).map_err(|e| external(&name, e))?;
            let mut rows = stmt.query([]).map_err(|e| external(&name, e))?;
            if let Some(row) = rows.next().map_err(|e| external(&name, e))? {
                for (i, n) in first_numeric.iter_mut().enumerate() {
                    *n = row.get_ref(i).map(|v| number(v).is_ok()).unwrap_or(true);
                }
            }
        }
        let roles = options
            .roles(&columns, |i| first_numeric[i])
            .map_err(|message| SourceError::Schema { source_name: name.clone(), message })?;
        let label = roles.iter().position(|r| *r == Role::Label);
        let features = columns.iter().zip(&roles).filter(|(_, r)| r.is_feature()).map(|(c, _)| c.clone());
        let schema = Schema::new(features)
            .map(Arc::new)
            .map_err(|e| SourceError::Schema { source_name: name.clone(), message: e.to_string() })?;
        let layout = Arc::new(Layout {
            name: name.clone(),
            features: schema.len(),
            columns,
            roles,
            label,
            batch_size: options.batch_size.max(1),
            policy: options.bad_rows,
        });
        Ok(SqliteSource {
            name,
            path,
            query,
            layout,
            schema,
            next_row: 0,
            skipped: SkipCounts::default(),
            reader: None,
            pending: None,
            done: false,
        })
    }

    /// The query, as run (without a trailing `;`).
    pub fn query(&self) -> &str {
        &self.query
    }

    /// Starts a reader thread that skips `start` rows, then sends batches.
    fn start(&self, start: u64) -> Result<Reader, SourceError> {
        let conn = connect(&self.name, &self.path)?;
        let interrupt = conn.get_interrupt_handle();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = sync_channel(1);
        let (query, layout, flag) = (self.query.clone(), self.layout.clone(), stop.clone());
        let handle = std::thread::Builder::new()
            .name("onad-sqlite".into())
            .spawn(move || read_rows(&conn, &query, &layout, start, &tx, &flag))
            .map_err(|error| SourceError::Io { source_name: self.name.clone(), error })?;
        Ok(Reader { rx: Some(rx), stop, interrupt, handle: Some(handle) })
    }

    fn receive(&mut self) -> Msg {
        if let Some(m) = self.pending.take() {
            return m;
        }
        let received = self.reader.as_ref().and_then(|r| r.rx.as_ref()).map(|rx| rx.recv());
        match received {
            Some(Ok(m)) => m,
            _ => Msg::Failed(SourceError::External {
                connector: "sqlite",
                source_name: self.name.clone(),
                error: "the reader thread stopped unexpectedly".into(),
            }),
        }
    }
}

fn connect(name: &str, path: &Path) -> Result<Connection, SourceError> {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
        .map_err(|e| external(name, e))
}

/// Reads one value as a number; `Err` describes what was found instead.
fn number(v: ValueRef<'_>) -> Result<f64, String> {
    match v {
        ValueRef::Null => Ok(f64::NAN),
        ValueRef::Integer(i) => Ok(i as f64),
        ValueRef::Real(r) => Ok(r),
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => s.trim().parse::<f64>().map_err(|_| {
                let shown: String = s.chars().take(40).collect();
                format!("'{shown}'")
            }),
            Err(_) => Err(format!("text that is not valid UTF-8 ({} bytes)", t.len())),
        },
        ValueRef::Blob(b) => Err(format!("a blob ({} bytes)", b.len())),
    }
}

/// The value of an id column: [`onad_core::id_value`] of the text, the bytes of a blob, or the decimal
/// text of a number (never fails: any value is some id).
fn id(v: ValueRef<'_>) -> Result<f64, String> {
    Ok(match v {
        ValueRef::Null => f64::NAN,
        ValueRef::Integer(i) => onad_core::id_value_of(i),
        ValueRef::Real(r) => onad_core::id_value_of(r),
        ValueRef::Text(t) | ValueRef::Blob(t) => onad_core::id_value(t),
    })
}

/// The reader thread: runs the query once, skips `start` rows, and sends batches until the end, an
/// error, or a stop.
fn read_rows(conn: &Connection, query: &str, layout: &Layout, start: u64, tx: &SyncSender<Msg>, stop: &AtomicBool) {
    let fail = |e: rusqlite::Error| {
        // A stop interrupts the query: nobody is listening then, so the send fails quietly.
        let _ = tx.send(Msg::Failed(external(&layout.name, e)));
    };
    let mut stmt = match conn.prepare(query) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let mut rows = match stmt.query([]) {
        Ok(r) => r,
        Err(e) => return fail(e),
    };
    let mut row_id = 0_u64;
    while row_id < start {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match rows.next() {
            Ok(Some(_)) => row_id += 1,
            Ok(None) => {
                let _ = tx.send(Msg::Short(row_id));
                return;
            }
            Err(e) => return fail(e),
        }
    }
    let (cap, d) = (layout.batch_size, layout.features);
    loop {
        let mut chunk = Chunk {
            values: Vec::with_capacity(cap * d),
            labels: layout.label.map(|_| Vec::with_capacity(cap)),
            row_ids: Vec::with_capacity(cap),
            skipped: Vec::new(),
            rows_read: 0,
        };
        let mut ended = false;
        while chunk.row_ids.len() < cap {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let row = match rows.next() {
                Ok(Some(r)) => r,
                Ok(None) => {
                    ended = true;
                    break;
                }
                Err(e) => return fail(e),
            };
            let start_len = chunk.values.len();
            let mut label = f64::NAN;
            let mut bad = None;
            for (i, column) in layout.columns.iter().enumerate() {
                if layout.roles[i] == Role::Skip {
                    continue;
                }
                let v = match row.get_ref(i) {
                    Ok(v) => v,
                    Err(e) => return fail(e),
                };
                let read = if layout.roles[i] == Role::Id { id(v) } else { number(v) };
                match read {
                    Ok(x) if Some(i) == layout.label => label = x,
                    Ok(x) => chunk.values.push(x),
                    Err(found) => {
                        bad = Some(BadRecord {
                            source: layout.name.clone(),
                            row: row_id,
                            column: Some(column.clone()),
                            reason: "non_numeric",
                            detail: format!("cannot read {found} as a number"),
                        });
                        break;
                    }
                }
            }
            if bad.is_none()
                && let Some(detail) = crate::options::empty_row(&chunk.values[start_len..])
            {
                bad = Some(BadRecord {
                    source: layout.name.clone(),
                    row: row_id,
                    column: None,
                    reason: crate::options::EMPTY_ROW,
                    detail,
                });
            }
            match bad {
                None => {
                    chunk.row_ids.push(row_id);
                    if let Some(l) = chunk.labels.as_mut() {
                        l.push(label);
                    }
                }
                Some(bad) => match layout.policy {
                    BadRowPolicy::Skip => {
                        chunk.values.truncate(start_len);
                        chunk.skipped.push(bad.reason);
                    }
                    BadRowPolicy::Missing => {
                        chunk.values.truncate(start_len);
                        chunk.skipped.push(bad.reason);
                        let width = layout.features;
                        crate::options::push_missing_row(
                            &mut chunk.values,
                            width,
                            chunk.labels.as_mut(),
                            &mut chunk.row_ids,
                            row_id,
                            label,
                        );
                    }
                    BadRowPolicy::Fail => {
                        let _ = tx.send(Msg::Failed(SourceError::BadRecord(bad)));
                        return;
                    }
                },
            }
            chunk.rows_read += 1;
            row_id += 1;
        }
        if chunk.rows_read > 0 && tx.send(Msg::Chunk(chunk)).is_err() {
            return;
        }
        if ended {
            let _ = tx.send(Msg::End);
            return;
        }
    }
}

impl Iterator for SqliteSource {
    type Item = Result<Batch, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.reader.is_none() {
            match self.start(self.next_row) {
                Ok(r) => self.reader = Some(r),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
        loop {
            match self.receive() {
                Msg::Chunk(c) => {
                    for reason in &c.skipped {
                        self.skipped.add(reason);
                    }
                    self.next_row += c.rows_read;
                    if c.row_ids.is_empty() {
                        continue;
                    }
                    return Some(
                        Batch::try_new(self.schema.clone(), c.values, c.labels, c.row_ids).map_err(|e| {
                            SourceError::Schema { source_name: self.name.clone(), message: e.to_string() }
                        }),
                    );
                }
                Msg::End => {
                    self.done = true;
                    self.reader = None;
                    return None;
                }
                Msg::Failed(e) => {
                    self.done = true;
                    self.reader = None;
                    return Some(Err(e));
                }
                Msg::Short(n) => {
                    self.done = true;
                    self.reader = None;
                    return Some(Err(SourceError::Schema {
                        source_name: self.name.clone(),
                        message: format!("the query returned only {n} rows"),
                    }));
                }
            }
        }
    }
}

impl Source for SqliteSource {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn id_features(&self) -> Vec<usize> {
        crate::options::id_features(&self.layout.roles)
    }

    fn has_labels(&self) -> bool {
        self.layout.label.is_some()
    }

    fn position(&self) -> Position {
        Position::Row(self.next_row)
    }

    fn skipped(&self) -> &SkipCounts {
        &self.skipped
    }

    /// Runs the query again from the start and skips to a row id (forward or back; the skipped rows are
    /// not converted and not counted). Fails when the query has fewer rows than that.
    fn seek(&mut self, position: &Position) -> Result<(), SourceError> {
        let target = crate::options::seek_row(position, &self.name, "a SQLite query")?;
        // Stop the current reader; on failure below, `next` restarts from the unchanged position.
        self.reader = None;
        self.pending = None;
        if target == 0 {
            self.next_row = 0;
            self.done = false;
            return Ok(());
        }
        let reader = self.start(target)?;
        self.reader = Some(reader);
        match self.receive() {
            Msg::Short(n) => {
                self.reader = None;
                Err(SourceError::Schema {
                    source_name: self.name.clone(),
                    message: format!("cannot resume at row {target}: the query returns only {n} rows"),
                })
            }
            Msg::Failed(e) => {
                self.reader = None;
                Err(e)
            }
            first => {
                self.pending = Some(first);
                self.next_row = target;
                self.done = false;
                Ok(())
            }
        }
    }
}
