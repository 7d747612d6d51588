//! The usage spool: every event is appended to a local file and made durable (fsync, a group
//! at a time) before it goes on to the batch writer, so a process killed at any moment loses
//! only what arrived since the last sync. Each event carries a sequence number; the writer
//! records the highest number it committed (`usage_spool_marks`, in the same transaction as the
//! events), and a start replays what the file holds beyond that mark. Segments wholly written
//! are deleted.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::UsageRecord;

/// A segment grows to about this size before the next one starts.
const SEGMENT_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("usage spool {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.to_path_buf(), source }
}

/// What a start found in the spool: events not yet in the store, in order.
pub(crate) struct Recovered {
    pub(crate) events: Vec<(u64, UsageRecord)>,
}

/// The spool's files. Owned by the spool task; the writer reports what it committed through
/// `committed`.
pub(crate) struct Spool {
    dir: PathBuf,
    /// This process's name in `usage_spool_marks`, kept in the folder.
    pub(crate) node: String,
    current: (u64, File),
    written: u64,
    /// Finished segments and the last sequence number each holds.
    finished: Vec<(u64, u64)>,
    next_seq: u64,
    /// The highest sequence number the writer has committed.
    pub(crate) committed: Arc<AtomicU64>,
    buffer: Vec<u8>,
}

impl Spool {
    /// The name of the node whose spool `dir` is (made on first use).
    pub(crate) fn node(dir: &Path) -> Result<String, SpoolError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let node_file = dir.join("node");
        match std::fs::read_to_string(&node_file) {
            Ok(n) if !n.trim().is_empty() => Ok(n.trim().to_owned()),
            _ => {
                let n = angage_core::ids::new_id("node");
                std::fs::write(&node_file, &n).map_err(io(&node_file))?;
                Ok(n)
            }
        }
    }

    /// Opens the spool in `dir`, returning what earlier runs left beyond `mark` (the highest
    /// sequence number the store has from this node).
    pub(crate) fn open(dir: &Path, mark: u64) -> Result<(Self, Recovered), SpoolError> {
        let node = Self::node(dir)?;
        let mut segments = segments(dir)?;
        segments.sort_unstable();
        let mut events = Vec::new();
        let mut last = mark;
        for number in &segments {
            let path = segment_path(dir, *number);
            let file = File::open(&path).map_err(io(&path))?;
            for line in BufReader::new(file).split(b'\n') {
                let line = line.map_err(io(&path))?;
                // A line cut short by a crash is where that segment ends.
                let Some((seq, event)) = parse(&line) else { break };
                last = last.max(seq);
                if seq > mark {
                    events.push((seq, event));
                }
            }
        }
        let first = segments.last().map_or(1, |n| n + 1);
        let path = segment_path(dir, first);
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
        let spool = Self {
            dir: dir.to_path_buf(),
            node,
            current: (first, file),
            written: 0,
            // Old segments are deleted once what they held beyond the mark is written.
            finished: segments.into_iter().map(|n| (n, last)).collect(),
            next_seq: last + 1,
            committed: Arc::new(AtomicU64::new(mark)),
            buffer: Vec::with_capacity(64 * 1024),
        };
        Ok((spool, Recovered { events }))
    }

    /// Appends events (numbering them) to the buffer; `sync` makes them durable.
    pub(crate) fn append(&mut self, event: &UsageRecord) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.buffer.extend_from_slice(seq.to_string().as_bytes());
        self.buffer.push(b'\t');
        // A record always serializes (strings and numbers only).
        let _ = serde_json::to_writer(&mut self.buffer, event);
        self.buffer.push(b'\n');
        seq
    }

    /// Writes and syncs what was appended; starts a new segment when this one is full and
    /// deletes the segments the writer has committed.
    pub(crate) fn sync(&mut self) -> Result<(), SpoolError> {
        if !self.buffer.is_empty() {
            let path = segment_path(&self.dir, self.current.0);
            self.current.1.write_all(&self.buffer).map_err(io(&path))?;
            self.current.1.sync_data().map_err(io(&path))?;
            self.written += self.buffer.len() as u64;
            self.buffer.clear();
        }
        if self.written >= SEGMENT_BYTES {
            let next = self.current.0 + 1;
            let path = segment_path(&self.dir, next);
            let file = OpenOptions::new().create(true).append(true).open(&path).map_err(io(&path))?;
            let done = std::mem::replace(&mut self.current, (next, file));
            self.finished.push((done.0, self.next_seq - 1));
            self.written = 0;
        }
        let committed = self.committed.load(Ordering::Acquire);
        self.finished.retain(|(number, last)| {
            if *last > committed {
                return true;
            }
            let _ = std::fs::remove_file(segment_path(&self.dir, *number));
            false
        });
        Ok(())
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:012}.log"))
}

fn segments(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let name = entry.file_name();
        if let Some(n) = name.to_str().and_then(|n| n.strip_suffix(".log")).and_then(|n| n.parse().ok()) {
            out.push(n);
        }
    }
    Ok(out)
}

fn parse(line: &[u8]) -> Option<(u64, UsageRecord)> {
    let tab = line.iter().position(|b| *b == b'\t')?;
    let seq = std::str::from_utf8(&line[..tab]).ok()?.parse().ok()?;
    let event = serde_json::from_slice(&line[tab + 1..]).ok()?;
    Some((seq, event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u16) -> UsageRecord {
        UsageRecord {
            tenant_id: Some("ten_1".into()),
            key_id: None,
            endpoint: "GET /customers".into(),
            module: "customers".into(),
            status: n,
            status_class: "2xx".into(),
            error_code: None,
            error_detail: None,
            latency_us: 1,
            tags: vec![("rule".into(), "default@v1".into())],
            at_ms: 0,
            line: Default::default(),
            keep_raw: true,
        }
    }

    #[test]
    fn what_was_synced_and_not_committed_comes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut spool, recovered) = Spool::open(dir.path(), 0).expect("open");
        assert!(recovered.events.is_empty());
        for n in 200..205 {
            spool.append(&event(n));
        }
        spool.sync().expect("sync");
        let node = spool.node.clone();
        drop(spool);
        // The store had committed the first two; a half-written line follows the rest.
        let mut f = OpenOptions::new().append(true).open(segment_path(dir.path(), 1)).expect("segment");
        f.write_all(b"6\t{\"tenant_id\":").expect("torn line");
        let (spool, recovered) = Spool::open(dir.path(), 2).expect("reopen");
        let statuses: Vec<u16> = recovered.events.iter().map(|(_, e)| e.status).collect();
        assert_eq!(statuses, [202, 203, 204]);
        assert_eq!(spool.node, node, "the node keeps its name");
        assert_eq!(spool.next_seq, 6, "numbering goes on after what the file held");
    }
}
