//! The agent's disk buffer: every sample is written here before it is
//! sent, and leaves only once the server has stored it, so neither a
//! server outage nor a restart of the agent loses a sample.
//!
//! Layout of the spool directory:
//! - `spool-<gen>.jsonl`: one reading per line (JSON), oldest first,
//!   appended and flushed to disk (`fdatasync`) per sample;
//! - `cursor`: `<gen> <offset>` — the file in use and the byte offset of
//!   its first unsent line, replaced atomically (write, fsync, rename).
//!
//! Sent lines are not deleted in place. When everything is sent, or the
//! sent part is over half of a large file, the unsent tail is copied into
//! `spool-<gen+1>.jsonl` and only then does the cursor move to it; a crash
//! between the two leaves the old cursor valid, and opening removes any
//! file the cursor does not name. A line cut short by a crash mid-write is
//! dropped on open (it was never acknowledged to anyone).
//!
//! The spool is bounded (`max_bytes`): past it the oldest unsent samples
//! are dropped, counted and logged, so a server gone for weeks cannot fill
//! the agent's disk.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use enms_core::Reading;

use crate::HostError;

/// Rotate when at least this much has been sent and it is over half the file.
const COMPACT_AFTER: u64 = 256 << 10;

/// A batch read from the spool: the readings and where they end.
#[derive(Debug)]
pub struct Batch {
    pub readings: Vec<Reading>,
    /// Pass to [`Spool::commit`] once the server has stored them.
    pub end: u64,
    /// Lines that were not readings (a damaged file); skipped.
    pub skipped: usize,
}

pub struct Spool {
    dir: PathBuf,
    generation: u64,
    /// Offset of the first unsent line in the current file.
    cursor: u64,
    /// Length of the current file.
    len: u64,
    file: File,
    max_bytes: u64,
    dropped: u64,
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, holding at most `max_bytes`
    /// of unsent samples.
    pub fn open(dir: &Path, max_bytes: u64) -> Result<Self, HostError> {
        fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let cursor_path = dir.join("cursor");
        let (generation, cursor) = match fs::read_to_string(&cursor_path) {
            Ok(text) => parse_cursor(&text).ok_or_else(|| HostError::Spool {
                path: cursor_path.clone(),
                message: format!("unreadable cursor {text:?}"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0),
            Err(e) => return Err(io(&cursor_path, e)),
        };
        // Files the cursor does not name are a rotation cut short.
        for entry in fs::read_dir(dir).map_err(|e| io(dir, e))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = name
                .strip_prefix("spool-")
                .and_then(|n| n.strip_suffix(".jsonl"))
                .is_some_and(|g| g.parse::<u64>().ok() != Some(generation));
            if stale || name == "cursor.tmp" {
                let _ = fs::remove_file(entry.path());
            }
        }
        let path = file_path(dir, generation);
        let file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(|e| io(&path, e))?;
        let len = complete_length(&file, &path)?;
        file.set_len(len).map_err(|e| io(&path, e))?;
        let spool = Self { dir: dir.to_owned(), generation, cursor: cursor.min(len), len, file, max_bytes, dropped: 0 };
        if cursor > len {
            spool.write_cursor()?;
        }
        Ok(spool)
    }

    /// Bytes of samples not yet sent.
    pub fn pending_bytes(&self) -> u64 {
        self.len - self.cursor
    }

    /// Samples dropped because the spool was full, since it was opened.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Appends a reading and flushes it to disk before returning.
    pub fn append(&mut self, reading: &Reading) -> Result<(), HostError> {
        let path = file_path(&self.dir, self.generation);
        let mut line =
            serde_json::to_vec(reading).map_err(|e| HostError::Spool { path: path.clone(), message: e.to_string() })?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(|e| io(&path, e))?;
        self.file.sync_data().map_err(|e| io(&path, e))?;
        self.len += line.len() as u64;
        if self.pending_bytes() > self.max_bytes {
            self.drop_oldest()?;
        }
        Ok(())
    }

    /// Up to `max` unsent readings, oldest first.
    pub fn peek(&mut self, max: usize) -> Result<Batch, HostError> {
        let path = file_path(&self.dir, self.generation);
        let mut file = File::open(&path).map_err(|e| io(&path, e))?;
        file.seek(SeekFrom::Start(self.cursor)).map_err(|e| io(&path, e))?;
        let mut reader = BufReader::new(file.take(self.len - self.cursor));
        let mut batch = Batch { readings: Vec::new(), end: self.cursor, skipped: 0 };
        let mut line = Vec::new();
        while batch.readings.len() < max {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(|e| io(&path, e))?;
            if n == 0 {
                break;
            }
            batch.end += n as u64;
            match serde_json::from_slice::<Reading>(&line) {
                Ok(r) => batch.readings.push(r),
                Err(e) => {
                    tracing::warn!(error = %e, offset = batch.end - n as u64, "spool: skipped a damaged line");
                    batch.skipped += 1;
                }
            }
        }
        Ok(batch)
    }

    /// Marks everything before `end` as sent.
    pub fn commit(&mut self, end: u64) -> Result<(), HostError> {
        self.cursor = end.clamp(self.cursor, self.len);
        let sent = self.cursor;
        if sent == self.len || (sent >= COMPACT_AFTER && sent * 2 > self.len) {
            self.rotate()
        } else {
            self.write_cursor()
        }
    }

    /// Moves the unsent tail into the next file, then the cursor to it.
    fn rotate(&mut self) -> Result<(), HostError> {
        let old = file_path(&self.dir, self.generation);
        let next = file_path(&self.dir, self.generation + 1);
        let mut out =
            OpenOptions::new().create(true).write(true).truncate(true).open(&next).map_err(|e| io(&next, e))?;
        if self.cursor < self.len {
            let mut src = File::open(&old).map_err(|e| io(&old, e))?;
            src.seek(SeekFrom::Start(self.cursor)).map_err(|e| io(&old, e))?;
            std::io::copy(&mut src.take(self.len - self.cursor), &mut out).map_err(|e| io(&next, e))?;
        }
        out.sync_all().map_err(|e| io(&next, e))?;
        drop(out);
        self.generation += 1;
        self.len -= self.cursor;
        self.cursor = 0;
        self.write_cursor()?;
        self.file = OpenOptions::new().read(true).append(true).open(&next).map_err(|e| io(&next, e))?;
        let _ = fs::remove_file(&old);
        Ok(())
    }

    /// Drops whole lines from the front until the spool is within its bound.
    fn drop_oldest(&mut self) -> Result<(), HostError> {
        let path = file_path(&self.dir, self.generation);
        let mut file = File::open(&path).map_err(|e| io(&path, e))?;
        file.seek(SeekFrom::Start(self.cursor)).map_err(|e| io(&path, e))?;
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        let mut dropped = 0;
        while self.pending_bytes() > self.max_bytes {
            line.clear();
            let n = reader.read_until(b'\n', &mut line).map_err(|e| io(&path, e))?;
            if n == 0 {
                break;
            }
            self.cursor += n as u64;
            dropped += 1;
        }
        self.dropped += dropped;
        tracing::warn!(
            dropped,
            total = self.dropped,
            max_bytes = self.max_bytes,
            "spool full: dropped the oldest samples"
        );
        self.commit(self.cursor)
    }

    fn write_cursor(&self) -> Result<(), HostError> {
        let tmp = self.dir.join("cursor.tmp");
        let path = self.dir.join("cursor");
        let mut f = File::create(&tmp).map_err(|e| io(&tmp, e))?;
        writeln!(f, "{} {}", self.generation, self.cursor).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        // The rename itself is durable once the directory is synced.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn file_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("spool-{generation}.jsonl"))
}

fn parse_cursor(text: &str) -> Option<(u64, u64)> {
    let mut parts = text.split_whitespace();
    let generation = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    parts.next().is_none().then_some((generation, offset))
}

/// The length up to the last complete line.
fn complete_length(file: &File, path: &Path) -> Result<u64, HostError> {
    let len = file.metadata().map_err(|e| io(path, e))?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut f = file;
    let mut pos = len;
    let mut buf = [0u8; 4096];
    while pos > 0 {
        let n = buf.len().min(pos as usize);
        pos -= n as u64;
        f.seek(SeekFrom::Start(pos)).map_err(|e| io(path, e))?;
        f.read_exact(&mut buf[..n]).map_err(|e| io(path, e))?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            let complete = pos + i as u64 + 1;
            if complete < len {
                tracing::warn!(path = %path.display(), bytes = len - complete, "spool: dropped a line cut short");
            }
            return Ok(complete);
        }
    }
    Ok(0)
}

fn io(path: &Path, e: std::io::Error) -> HostError {
    HostError::Spool { path: path.to_owned(), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone, Utc};
    use uuid::Uuid;

    fn reading(i: i64) -> Reading {
        Reading {
            machine_id: Uuid::nil(),
            timestamp: Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(i),
            power_kw: 0.1,
            energy_kwh: 0.0001,
            production_units: None,
            outdoor_temp_c: None,
            extra: [("cpu_percent".to_owned(), i as f64 % 100.0)].into(),
        }
    }

    fn seconds(b: &Batch) -> Vec<i64> {
        b.readings.iter().map(|r| r.timestamp.timestamp() - 1_767_225_600).collect()
    }

    #[test]
    fn samples_survive_reopening_until_committed() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        for i in 0..5 {
            s.append(&reading(i)).unwrap();
        }
        let b = s.peek(3).unwrap();
        assert_eq!(seconds(&b), [0, 1, 2]);
        s.commit(b.end).unwrap();
        drop(s);
        // A restart: the two unsent samples are still there, in order.
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.append(&reading(5)).unwrap();
        let b = s.peek(10).unwrap();
        assert_eq!(seconds(&b), [3, 4, 5]);
        s.commit(b.end).unwrap();
        assert_eq!(s.pending_bytes(), 0);
        assert_eq!(s.peek(10).unwrap().readings.len(), 0);
        // Sending everything rotated to a fresh file; the old one is gone.
        let files: Vec<_> = fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(files.len(), 2, "one spool file and the cursor: {files:?}");
    }

    #[test]
    fn an_uncommitted_batch_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.append(&reading(0)).unwrap();
        let first = s.peek(10).unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(seconds(&s.peek(10).unwrap()), seconds(&first));
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.append(&reading(0)).unwrap();
        s.append(&reading(1)).unwrap();
        drop(s);
        let path = dir.path().join("spool-0.jsonl");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"machine_id\":\"0000").unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.append(&reading(2)).unwrap();
        let b = s.peek(10).unwrap();
        assert_eq!((seconds(&b), b.skipped), (vec![0, 1, 2], 0));
    }

    #[test]
    fn a_rotation_cut_short_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        s.append(&reading(0)).unwrap();
        drop(s);
        // A next file written, the cursor never moved to it.
        fs::write(dir.path().join("spool-1.jsonl"), b"").unwrap();
        let mut s = Spool::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(seconds(&s.peek(10).unwrap()), [0]);
        assert!(!dir.path().join("spool-1.jsonl").exists());
    }

    #[test]
    fn a_full_spool_drops_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let line = serde_json::to_vec(&reading(0)).unwrap().len() as u64 + 1;
        let mut s = Spool::open(dir.path(), line * 4).unwrap();
        for i in 0..10 {
            s.append(&reading(i)).unwrap();
        }
        assert_eq!(s.dropped(), 6);
        assert_eq!(seconds(&s.peek(100).unwrap()), [6, 7, 8, 9]);
    }

    #[test]
    fn a_large_sent_part_is_compacted_away() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 64 << 20).unwrap();
        let n = 4000;
        for i in 0..n {
            s.append(&reading(i)).unwrap();
        }
        let b = s.peek(3000).unwrap();
        s.commit(b.end).unwrap();
        let size = fs::metadata(file_path(dir.path(), s.generation)).unwrap().len();
        assert_eq!(size, s.pending_bytes(), "only the unsent tail is kept");
        drop(s);
        let mut s = Spool::open(dir.path(), 64 << 20).unwrap();
        let rest = s.peek(10_000).unwrap();
        assert_eq!(seconds(&rest), (3000..n).collect::<Vec<_>>());
    }
}
