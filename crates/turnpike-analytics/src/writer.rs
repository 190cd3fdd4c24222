//! The access log's writer thread: drains the queue in batches, writes to stdout or a
//! file, and rotates the file by size.
//!
//! It polls the queue on a short timer instead of blocking on it, so senders on the
//! request path never have to wake it (no futex call per line).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::Duration;

use turnpike_config::model::{self, AccessLogFormat};

use crate::AnalyticsError;
use crate::access_log::{Record, format};

/// How long the writer rests when the queue is empty.
const IDLE: Duration = Duration::from_millis(10);

/// Opens the output and starts the thread; the thread ends (after a last flush) once every
/// sender is gone.
pub(crate) fn start(cfg: &model::AccessLog) -> Result<SyncSender<Record>, AnalyticsError> {
    let out = Output::open(cfg)?;
    let (tx, rx) = sync_channel(cfg.buffer.max(1));
    let fmt = cfg.format;
    std::thread::Builder::new()
        .name("turnpike-access-log".to_owned())
        .spawn(move || run(rx, out, fmt))
        .map_err(AnalyticsError::Thread)?;
    Ok(tx)
}

fn run(rx: Receiver<Record>, mut out: Output, fmt: AccessLogFormat) {
    let mut line = String::with_capacity(512);
    loop {
        let mut wrote = false;
        loop {
            match rx.try_recv() {
                Ok(record) => {
                    line.clear();
                    format(&record, fmt, &mut line);
                    out.write(line.as_bytes());
                    wrote = true;
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    out.flush();
                    return;
                }
            }
        }
        if wrote {
            out.flush();
        }
        std::thread::sleep(IDLE);
    }
}

/// Where lines go.
enum Output {
    Stdout(BufWriter<std::io::Stdout>),
    File(RotatingFile),
}

impl Output {
    fn open(cfg: &model::AccessLog) -> Result<Self, AnalyticsError> {
        if cfg.output == "stdout" {
            return Ok(Self::Stdout(BufWriter::new(std::io::stdout())));
        }
        let path = PathBuf::from(&cfg.output);
        let file = append(&path)?;
        let size = file.metadata().map_or(0, |m| m.len());
        Ok(Self::File(RotatingFile {
            path,
            file: BufWriter::new(file),
            size,
            rotate: cfg.rotate.as_ref().map(|r| (r.max_size.bytes(), r.keep)),
        }))
    }

    fn write(&mut self, line: &[u8]) {
        let result = match self {
            Self::Stdout(w) => w.write_all(line),
            Self::File(f) => f.write(line),
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "cannot write the access log");
        }
    }

    fn flush(&mut self) {
        let result = match self {
            Self::Stdout(w) => w.flush(),
            Self::File(f) => f.file.flush(),
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "cannot write the access log");
        }
    }
}

fn append(path: &Path) -> Result<File, AnalyticsError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| AnalyticsError::Open {
            path: path.display().to_string(),
            source,
        })
}

/// A log file that moves aside to `PATH.1` (older ones to `.2`, ...) at `max_size`.
struct RotatingFile {
    path: PathBuf,
    file: BufWriter<File>,
    size: u64,
    /// `(max_size, keep)`.
    rotate: Option<(u64, usize)>,
}

impl RotatingFile {
    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if let Some((max, keep)) = self.rotate {
            let len = line.len() as u64;
            if self.size > 0 && self.size + len > max {
                self.rotate(keep)?;
            }
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    fn rotate(&mut self, keep: usize) -> std::io::Result<()> {
        self.file.flush()?;
        let numbered = |n: usize| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            // The oldest falls off; the rest move up one.
            let _ = std::fs::remove_file(numbered(keep));
            for n in (1..keep).rev() {
                let _ = std::fs::rename(numbered(n), numbered(n + 1));
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        let file = append(&self.path).map_err(|e| match e {
            AnalyticsError::Open { source, .. } => source,
            AnalyticsError::Thread(e) => e,
        })?;
        self.file = BufWriter::new(file);
        self.size = 0;
        Ok(())
    }
}
