//! One line per request (`--access-log PATH|-|off`, `--log-format text|json`),
//! written by a dedicated thread so workers never block on the disk.
//!
//! The queue to that thread holds at most [`QUEUE_LINES`] lines: a sink that
//! stops taking them (a log shipper that hangs on the other end of a pipe, a
//! full disk) costs the lines, counted and warned of, never the node's
//! memory. Unbounded, it grew by ~290 bytes per request for as long as the
//! sink stalled (270 MB after 45 s of wrk). nginx blocks its worker on the
//! write instead; varnishncsa reads a ring that overwrites.

use std::borrow::Cow;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// Where access log lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    File(PathBuf),
    Off,
}

impl AccessLogTarget {
    /// `-` is standard output, `off` disables the log, anything else is a file path.
    pub fn parse(text: &str) -> AccessLogTarget {
        match text {
            "-" => AccessLogTarget::Stdout,
            "off" => AccessLogTarget::Off,
            path => AccessLogTarget::File(PathBuf::from(path)),
        }
    }
}

/// The line format of the access log (and of the process's own logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What is logged for one request.
#[derive(Debug, Clone, Serialize)]
pub struct AccessRecord {
    #[serde(serialize_with = "serialize_time")]
    pub time: SystemTime,
    /// `None` before a site is chosen: `-` in both formats.
    #[serde(serialize_with = "serialize_site")]
    pub site: Option<String>,
    pub client: String,
    pub method: String,
    pub path: String,
    pub protocol: &'static str,
    pub status: u16,
    pub bytes: u64,
    #[serde(serialize_with = "serialize_millis")]
    pub duration_ms: Duration,
    /// Cache outcome (`hit`, `miss`, ... ; `pass` when the cache was not consulted).
    pub cache: &'static str,
    pub origin_request_id: Option<String>,
    /// `false` when the body was cut short (client gone or origin failed).
    pub complete: bool,
}

fn rfc3339(time: SystemTime) -> String {
    let t: time::OffsetDateTime = time.into();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Serializes a time as RFC 3339, UTC.
pub fn serialize_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

fn serialize_site<S: serde::Serializer>(site: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(site.as_deref().unwrap_or("-"))
}

fn serialize_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

impl AccessRecord {
    /// Formats the record as one line (without the newline).
    pub fn format(&self, format: LogFormat) -> String {
        match format {
            LogFormat::Json => serde_json::to_string(self).unwrap_or_default(),
            LogFormat::Text => format!(
                "{} {} {} \"{} {} {}\" {} {} {:.3}ms cache={} origin_id={}{}",
                rfc3339(self.time),
                self.site.as_deref().unwrap_or("-"),
                self.client,
                self.method,
                escape(&self.path),
                self.protocol,
                self.status,
                self.bytes,
                self.duration_ms.as_secs_f64() * 1e3,
                self.cache,
                self.origin_request_id
                    .as_deref()
                    .map_or(Cow::Borrowed("-"), escape_bare),
                if self.complete { "" } else { " incomplete" },
            ),
        }
    }
}

/// Keeps a log line on one line whatever the client sent, and its quoted
/// request field one field: control characters, `"` and `\` are escaped as
/// Rust escapes them (`\n`, `\"`, `\\`), so a parser of quoted strings
/// finds where the field ends (nginx escapes both too).
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() || c == '"' || c == '\\' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Keeps an unquoted field one field whatever an origin or a peer sent (an
/// `x-amz-request-id` is theirs): anything but printable ASCII, and `"` and
/// `\`, is escaped (a space as `\x20`), so the field ends at the next space
/// and cannot add fields or the ` incomplete` mark.
fn escape_bare(text: &str) -> Cow<'_, str> {
    if text
        .chars()
        .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_ascii_graphic() && c != '"' && c != '\\' {
            out.push(c);
        } else if c.is_ascii() {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.extend(c.escape_unicode());
        }
    }
    Cow::Owned(out)
}

/// What the writer thread is sent.
enum Message {
    Line(String),
    /// Reopen the file by its path ([`AccessLog::reopen`]).
    Reopen,
    /// Say so once every line before this one is written and flushed
    /// ([`AccessLog::flush`]).
    Flushed(mpsc::SyncSender<()>),
}

/// Lines the writer thread may be behind by (a few seconds of a busy node:
/// about 20 MB of lines at most).
pub const QUEUE_LINES: usize = 65_536;

/// The access log writer. Cloning shares the writer thread.
#[derive(Clone)]
pub struct AccessLog {
    sender: Option<mpsc::SyncSender<Message>>,
    format: LogFormat,
    lost: Arc<Lost>,
}

/// Lines lost: not queued (the queue was full) or not written (the sink
/// refused them), and when that was last said.
#[derive(Debug, Default)]
struct Lost {
    lines: AtomicU64,
    warned: crate::throttle::Throttle,
}

impl Lost {
    /// Counts `n` lines lost and warns on the process log, at most once a
    /// minute.
    fn add(&self, n: u64, why: &dyn std::fmt::Display) {
        let total = self.lines.fetch_add(n, Ordering::Relaxed) + n;
        if self.warned.ready(Duration::from_secs(60)) {
            tracing::warn!("access log: {why}; {total} line(s) lost so far");
        }
    }
}

impl AccessLog {
    /// Opens the target and starts the writer thread.
    pub fn open(target: &AccessLogTarget, format: LogFormat) -> std::io::Result<AccessLog> {
        let (writer, path): (Box<dyn Write + Send>, _) = match target {
            AccessLogTarget::Off => {
                return Ok(AccessLog {
                    format,
                    ..AccessLog::off()
                })
            }
            AccessLogTarget::Stdout => (Box::new(std::io::stdout()), None),
            AccessLogTarget::File(path) => (Box::new(append_to(path)?), Some(path.clone())),
        };
        AccessLog::to_writer(writer, path, format, QUEUE_LINES)
    }

    /// A log written to `writer` (reopened from `path` when asked), behind a
    /// queue of `queue` lines.
    fn to_writer(
        writer: Box<dyn Write + Send>,
        path: Option<PathBuf>,
        format: LogFormat,
        queue: usize,
    ) -> std::io::Result<AccessLog> {
        let (sender, receiver) = mpsc::sync_channel::<Message>(queue);
        let lost = Arc::new(Lost::default());
        let writer_lost = lost.clone();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(receiver, writer, path, &writer_lost))?;
        Ok(AccessLog {
            sender: Some(sender),
            format,
            lost,
        })
    }

    /// A log that writes nothing.
    pub fn off() -> AccessLog {
        AccessLog {
            sender: None,
            format: LogFormat::Text,
            lost: Arc::default(),
        }
    }

    /// Lines lost so far (queue full, or the sink refused them).
    pub fn lost(&self) -> u64 {
        self.lost.lines.load(Ordering::Relaxed)
    }

    /// Whether lines are written (not `off`): when not, no record need be built.
    pub fn is_enabled(&self) -> bool {
        self.sender.is_some()
    }

    pub fn record(&self, record: &AccessRecord) {
        if let Some(sender) = &self.sender {
            if let Err(mpsc::TrySendError::Full(_)) =
                sender.try_send(Message::Line(record.format(self.format)))
            {
                self.lost.add(
                    1,
                    &format_args!(
                        "{QUEUE_LINES} lines wait for a sink that does not take them (a stalled pipe or disk): lines are dropped"
                    ),
                );
            }
        }
    }

    /// Waits, at most `timeout`, until every line recorded so far is written
    /// and flushed to the sink: at exit, whose end does not wait for the
    /// writer thread. `false` when the sink did not take them in time (a
    /// stalled pipe).
    pub fn flush(&self, timeout: std::time::Duration) -> bool {
        let Some(sender) = self.sender.clone() else {
            return true;
        };
        let (done, flushed) = mpsc::sync_channel(1);
        // Sent from a thread of its own: a full queue blocks the send.
        std::thread::spawn(move || {
            let _ = sender.send(Message::Flushed(done));
        });
        flushed.recv_timeout(timeout).is_ok()
    }

    /// Reopens a file log by its path (SIGUSR1 and SIGHUP), after the lines
    /// already recorded: logrotate (or `mv`) renames the file, then the node
    /// writes to a new one of the old name. A file that cannot be opened
    /// keeps the lines going to the old one, and says so on standard error.
    pub fn reopen(&self) {
        if let Some(sender) = &self.sender {
            if let Err(mpsc::TrySendError::Full(_)) = sender.try_send(Message::Reopen) {
                tracing::error!("access log: cannot reopen: the writer is stalled");
            }
        }
    }
}

fn append_to(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// Writes lines as they come, flushing whenever the queue is empty;
/// reopens `path` (a file log's) when asked.
fn write_lines(
    receiver: mpsc::Receiver<Message>,
    writer: Box<dyn Write + Send>,
    path: Option<PathBuf>,
    lost: &Lost,
) {
    let mut out = BufWriter::new(writer);
    // Lines in the buffer since the last flush that worked.
    let mut pending = 0u64;
    while let Ok(message) = receiver.recv() {
        let mut next = Some(message);
        while let Some(message) = next.take() {
            match message {
                Message::Line(line) => match writeln!(out, "{line}") {
                    Ok(()) => pending += 1,
                    Err(e) => lost.add(1, &format_args!("cannot write ({e})")),
                },
                Message::Flushed(done) => {
                    flush(&mut out, &mut pending, lost);
                    let _ = done.send(());
                }
                Message::Reopen => {
                    let _ = out.flush();
                    if let Some(path) = &path {
                        match append_to(path) {
                            Ok(file) => out = BufWriter::new(Box::new(file)),
                            Err(e) => tracing::error!(
                                path = %path.display(),
                                "access log: cannot reopen ({e}); writing on to the file open before"
                            ),
                        }
                    }
                }
            }
            next = receiver.try_recv().ok();
        }
        flush(&mut out, &mut pending, lost);
    }
}

/// Flushes `out`; the `pending` lines its buffer held are lost with it on an
/// error (a full disk, a closed pipe), and counted.
fn flush(out: &mut BufWriter<Box<dyn Write + Send>>, pending: &mut u64, lost: &Lost) {
    if let Err(e) = out.flush() {
        lost.add(*pending, &format_args!("cannot write ({e})"));
        let failed = std::mem::replace(out, BufWriter::new(Box::new(std::io::sink())));
        *out = BufWriter::new(failed.into_parts().0);
    }
    *pending = 0;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord {
        AccessRecord {
            time: std::time::UNIX_EPOCH,
            site: Some("demo".into()),
            client: "127.0.0.1".into(),
            method: "GET".into(),
            path: "/a \"b\"\\\n".into(),
            protocol: "HTTP/1.1",
            status: 200,
            bytes: 12,
            duration_ms: Duration::from_micros(1500),
            cache: "pass",
            origin_request_id: Some("RID".into()),
            complete: true,
        }
    }

    #[test]
    fn text_lines_hold_every_field_on_one_line() {
        let line = record().format(LogFormat::Text);
        assert_eq!(
            line,
            "1970-01-01T00:00:00Z demo 127.0.0.1 \"GET /a \\\"b\\\"\\\\\\n HTTP/1.1\" 200 12 1.500ms cache=pass origin_id=RID"
        );
    }

    /// An origin's (or a peer's) request id cannot add fields to the line,
    /// nor mark a complete answer incomplete.
    #[test]
    fn an_origin_s_request_id_stays_one_field() {
        let mut hostile = record();
        hostile.origin_request_id =
            Some("R1\" 200 0 0.1ms cache=hit origin_id=F\\ incomplete\u{e9}".into());
        let line = hostile.format(LogFormat::Text);
        assert!(
            line.ends_with(
                "cache=pass origin_id=R1\\x22\\x20200\\x200\\x200.1ms\\x20cache=hit\\x20origin_id=F\\x5c\\x20incomplete\\u{e9}"
            ),
            "{line}"
        );
        assert_eq!(
            line.split(' ').count(),
            record().format(LogFormat::Text).split(' ').count()
        );
        let mut plain = record();
        plain.origin_request_id = Some("4442587FB7D0A2F9".into());
        assert!(plain
            .format(LogFormat::Text)
            .ends_with("origin_id=4442587FB7D0A2F9"));
    }

    /// `flush` returns once every line recorded before it is in the file:
    /// what the exit relies on, the writer thread not being waited for.
    #[test]
    fn flush_returns_once_every_recorded_line_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::open(&AccessLogTarget::File(path.clone()), LogFormat::Text).unwrap();
        for _ in 0..5_000 {
            log.record(&record());
        }
        assert!(log.flush(Duration::from_secs(10)));
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.lines().count(), 5_000);
        assert!(AccessLog::off().flush(Duration::from_millis(1)));
    }

    /// A writer that takes nothing until `open` is set, then everything.
    struct Stalled(
        Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
        Arc<AtomicU64>,
    );

    impl Write for Stalled {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (open, changed) = &*self.0;
            let mut is_open = open.lock().unwrap();
            while !*is_open {
                is_open = changed.wait(is_open).unwrap();
            }
            self.1.fetch_add(
                buf.iter().filter(|b| **b == b'\n').count() as u64,
                Ordering::SeqCst,
            );
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A sink that stalls costs lines, counted, never unbounded memory, and
    /// never a worker blocked on `record`; once it takes lines again the
    /// queued ones are written.
    #[test]
    fn a_stalled_sink_drops_lines_past_the_queue_and_never_blocks() {
        let gate = Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let written = Arc::new(AtomicU64::new(0));
        let writer = Stalled(gate.clone(), written.clone());
        let log = AccessLog::to_writer(Box::new(writer), None, LogFormat::Text, 100).unwrap();
        let started = std::time::Instant::now();
        for _ in 0..5_000 {
            log.record(&record());
        }
        assert!(started.elapsed() < Duration::from_secs(5), "record blocked");
        // The queue holds 100; the writer thread may hold a few in its buffer.
        let lost = log.lost();
        assert!((4_800..=4_900).contains(&lost), "{lost} lost");
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while written.load(Ordering::SeqCst) + lost < 5_000 {
            assert!(
                std::time::Instant::now() < deadline,
                "queued lines not written"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A sink that refuses lines (a full disk): they are counted as lost.
    #[test]
    fn lines_a_sink_refuses_are_counted() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("no space left on device"))
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Err(std::io::Error::other("no space left on device"))
            }
        }
        let log = AccessLog::to_writer(Box::new(Full), None, LogFormat::Text, 100).unwrap();
        for _ in 0..10 {
            log.record(&record());
            std::thread::sleep(Duration::from_millis(5));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while log.lost() < 10 {
            assert!(std::time::Instant::now() < deadline, "{} lost", log.lost());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn json_lines_are_objects_with_named_fields() {
        let line = record().format(LogFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&line).expect("json");
        assert_eq!(v["site"], "demo");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["origin_request_id"], "RID");
        assert_eq!(v["time"], "1970-01-01T00:00:00Z");
        // A request refused before a site was chosen: `-`, as in text.
        let mut refused = record();
        refused.site = None;
        let v: serde_json::Value =
            serde_json::from_str(&refused.format(LogFormat::Json)).expect("json");
        assert_eq!(v["site"], "-");
    }
}
