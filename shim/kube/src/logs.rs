//! Container logs in the CRI format and layout, so log shippers that read the kubelet's files
//! read podshim's unchanged: `<log root>/<namespace>_<pod>_<uid>/<container>/<restart>.log`,
//! one line per log line, `<RFC3339Nano time> <stdout|stderr> <P|F> <text>`, lines longer than
//! 16 KiB split into `P` (partial) parts ending with an `F` (full) part.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};

/// The longest line part the CRI writes (containerd's `maxLen`).
pub const MAX_PART: usize = 16 * 1024;

/// The directory of a Pod's logs.
pub fn pod_dir(root: &Path, namespace: &str, name: &str, uid: &str) -> PathBuf {
    root.join(format!("{namespace}_{name}_{uid}"))
}

/// The log file of one run of a container (`restart` = the restart count at its start).
pub fn file(pod_dir: &Path, container: &str, restart: u32) -> PathBuf {
    pod_dir.join(container).join(format!("{restart}.log"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// An open CRI log file of one container run.
#[derive(Debug)]
pub struct Writer {
    file: File,
}

impl Writer {
    /// Create (or append to) the log file of a container run, with its directories.
    pub fn create(path: &Path) -> io::Result<Writer> {
        if let Some(dir) = path.parent() {
            podshim_engine::private::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(podshim_engine::private::FILE_MODE)
            .open(path)?;
        Ok(Writer { file })
    }

    /// Write whole lines (each `line` without its `\n`; `complete` false for the tail of a
    /// stream that ended without a newline, still written as a full line as containerd does).
    pub fn write_line(&mut self, stream: Stream, line: &[u8]) -> io::Result<()> {
        let ts = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
        let mut out = Vec::with_capacity(line.len() + 48);
        let mut parts = line.chunks(MAX_PART).peekable();
        if parts.peek().is_none() {
            out.extend_from_slice(format!("{ts} {} F \n", stream.as_str()).as_bytes());
        }
        while let Some(part) = parts.next() {
            let tag = if parts.peek().is_some() { "P" } else { "F" };
            out.extend_from_slice(format!("{ts} {} {tag} ", stream.as_str()).as_bytes());
            out.extend_from_slice(part);
            out.push(b'\n');
        }
        self.file.write_all(&out)
    }
}

/// One log line read back (its parts joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub time: String,
    pub stream: String,
    pub text: Vec<u8>,
}

/// Parse CRI log lines; `pending` carries a line whose `P` parts continue in a later read.
fn parse(buf: &[u8], pending: &mut Option<Line>, out: &mut Vec<Line>) {
    for raw in buf.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let mut fields = raw.splitn(4, |b| *b == b' ');
        let (Some(time), Some(stream), Some(tag)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let text = fields.next().unwrap_or_default();
        let line = pending.get_or_insert_with(|| Line {
            time: String::from_utf8_lossy(time).into_owned(),
            stream: String::from_utf8_lossy(stream).into_owned(),
            text: Vec::new(),
        });
        line.text.extend_from_slice(text);
        if tag != b"P" {
            out.extend(pending.take());
        }
    }
}

/// Read every complete line of a log file.
pub fn read(path: &Path) -> io::Result<Vec<Line>> {
    let mut buf = Vec::new();
    File::open(path)?.read_to_end(&mut buf)?;
    // A last line still being written (no `\n` yet) is left out.
    let end = buf.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
    let mut lines = Vec::new();
    parse(&buf[..end], &mut None, &mut lines);
    Ok(lines)
}

/// How `podshim logs` prints lines.
#[derive(Debug, Clone, Copy, Default)]
pub struct Format {
    pub timestamps: bool,
}

/// Print lines the way `kubectl logs` does: the text (both streams to stdout), with the time
/// first under `--timestamps`.
pub fn print(out: &mut impl Write, lines: &[Line], f: Format) -> io::Result<()> {
    for l in lines {
        if f.timestamps {
            write!(out, "{} ", l.time)?;
        }
        out.write_all(&l.text)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Print what gets appended to `path` from byte `offset` on, until `done()` says the writer is
/// finished (checked every 100 ms); then print the rest and return.
pub fn follow(
    out: &mut impl Write,
    path: &Path,
    offset: u64,
    f: Format,
    mut done: impl FnMut() -> bool,
) -> io::Result<()> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut pending = None;
    let mut partial = Vec::new();
    loop {
        let finished = done();
        loop {
            let mut chunk = Vec::new();
            let n = reader.read_until(b'\n', &mut chunk)?;
            if n == 0 {
                break;
            }
            partial.extend_from_slice(&chunk);
            if partial.ends_with(b"\n") {
                let mut lines = Vec::new();
                parse(&partial, &mut pending, &mut lines);
                partial.clear();
                print(out, &lines, f)?;
            }
        }
        if finished {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn lines_round_trip_with_long_lines_split() {
        let dir = tempfile::tempdir().unwrap();
        let path = file(dir.path(), "c", 0);
        let mut w = Writer::create(&path).unwrap();
        w.write_line(Stream::Stdout, b"hello world").unwrap();
        let long = vec![b'x'; MAX_PART * 2 + 5];
        w.write_line(Stream::Stderr, &long).unwrap();
        w.write_line(Stream::Stdout, b"").unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let tags: Vec<&str> = text.lines().map(|l| l.split(' ').nth(2).unwrap()).collect();
        assert_eq!(tags, ["F", "P", "P", "F", "F"]);
        let first = text.lines().next().unwrap();
        let (ts, rest) = first.split_once(' ').unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(ts).is_ok(), "{ts}");
        assert_eq!(rest, "stdout F hello world");
        let lines = read(&path).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].text, b"hello world");
        assert_eq!(lines[1].stream, "stderr");
        assert_eq!(lines[1].text, long);
        assert_eq!(lines[2].text, b"");
        let mut out = Vec::new();
        print(&mut out, &lines[..1], Format { timestamps: true }).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{first_ts} hello world\n", first_ts = ts)
        );
    }
}
