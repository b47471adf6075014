//! One line per request (`--access-log PATH|-|off`, `--log-format text|json`),
//! written by a dedicated thread so workers never block on the disk.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::mpsc;
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
                self.origin_request_id.as_deref().unwrap_or("-"),
                if self.complete { "" } else { " incomplete" },
            ),
        }
    }
}

/// Keeps a log line on one line whatever the client sent.
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() || c == '"' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// What the writer thread is sent.
enum Message {
    Line(String),
    /// Reopen the file by its path ([`AccessLog::reopen`]).
    Reopen,
}

/// The access log writer. Cloning shares the writer thread.
#[derive(Clone)]
pub struct AccessLog {
    sender: Option<mpsc::Sender<Message>>,
    format: LogFormat,
}

impl AccessLog {
    /// Opens the target and starts the writer thread.
    pub fn open(target: &AccessLogTarget, format: LogFormat) -> std::io::Result<AccessLog> {
        let (writer, path): (Box<dyn Write + Send>, _) = match target {
            AccessLogTarget::Off => {
                return Ok(AccessLog {
                    sender: None,
                    format,
                })
            }
            AccessLogTarget::Stdout => (Box::new(std::io::stdout()), None),
            AccessLogTarget::File(path) => (Box::new(append_to(path)?), Some(path.clone())),
        };
        let (sender, receiver) = mpsc::channel::<Message>();
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(receiver, writer, path))?;
        Ok(AccessLog {
            sender: Some(sender),
            format,
        })
    }

    /// A log that writes nothing.
    pub fn off() -> AccessLog {
        AccessLog {
            sender: None,
            format: LogFormat::Text,
        }
    }

    /// Whether lines are written (not `off`): when not, no record need be built.
    pub fn is_enabled(&self) -> bool {
        self.sender.is_some()
    }

    pub fn record(&self, record: &AccessRecord) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(Message::Line(record.format(self.format)));
        }
    }

    /// Reopens a file log by its path (SIGUSR1 and SIGHUP), after the lines
    /// already recorded: logrotate (or `mv`) renames the file, then the node
    /// writes to a new one of the old name. A file that cannot be opened
    /// keeps the lines going to the old one, and says so on standard error.
    pub fn reopen(&self) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(Message::Reopen);
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
) {
    let mut out = BufWriter::new(writer);
    while let Ok(message) = receiver.recv() {
        let mut next = Some(message);
        while let Some(message) = next.take() {
            match message {
                Message::Line(line) => {
                    let _ = writeln!(out, "{line}");
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
        let _ = out.flush();
    }
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
            path: "/a \"b\"\n".into(),
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
            "1970-01-01T00:00:00Z demo 127.0.0.1 \"GET /a \\\"b\\\"\\n HTTP/1.1\" 200 12 1.500ms cache=pass origin_id=RID"
        );
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
    }
}
