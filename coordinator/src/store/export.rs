//! `lab-coordinator store export` / `store import`: every tree of a store, key by key, in one
//! file, so a store moves between sled and etcd and a sled store has a backup that does not
//! depend on sled's on-disk format.
//!
//! File format (all integers big-endian): the line `labfleet-store-export 1\n`; then per
//! record: tree name length (u8), tree name, key length (u32), key, value length (u32), value;
//! then a 0 byte (a record with an empty tree name ends the records), the record count (u64)
//! and the SHA-256 of every byte before it. Records are grouped by tree and in key order.
//!
//! Import writes into an empty store only, then reads every record back and compares the
//! count and digest per tree with the file (the consistency check).

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::kv::{Keys, Op, Order, TreeId};
use super::{Location, Store, StoreError, StoreOptions};

const MAGIC: &[u8] = b"labfleet-store-export 1\n";
/// Writes per flush while importing.
const IMPORT_BATCH: usize = 1024;

/// Records and digest of one tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeSummary {
    /// Records.
    pub records: u64,
    /// SHA-256 over every (key length, key, value length, value) in key order, hex.
    pub digest: String,
}

/// What an export or import covered, by tree name.
pub type Summary = BTreeMap<&'static str, TreeSummary>;

/// An export or import failure.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file could not be read or written.
    #[error("cannot read or write {path}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not an export or is damaged.
    #[error("{path} is not a complete labfleet store export: {what}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// Import needs an empty store.
    #[error("the target store {0} is not empty (tree '{1}' has records); import into a new store")]
    NotEmpty(String, &'static str),
    /// What was read back differs from the file.
    #[error("consistency check failed after import into {store}: tree '{tree}' has {found} records (digest {found_digest}), the file {expected} (digest {expected_digest})")]
    Mismatch {
        /// The target store.
        store: String,
        /// The tree.
        tree: &'static str,
        /// Records read back.
        found: u64,
        /// Their digest.
        found_digest: String,
        /// Records in the file.
        expected: u64,
        /// Their digest.
        expected_digest: String,
    },
}

/// Per-tree digests while reading or writing.
#[derive(Default)]
struct Summer {
    trees: BTreeMap<&'static str, (u64, Sha256)>,
}

impl Summer {
    fn add(&mut self, tree: TreeId, key: &[u8], value: &[u8]) {
        let (n, h) = self.trees.entry(tree.name()).or_default();
        *n += 1;
        h.update((key.len() as u32).to_be_bytes());
        h.update(key);
        h.update((value.len() as u32).to_be_bytes());
        h.update(value);
    }

    fn finish(self) -> Summary {
        self.trees
            .into_iter()
            .map(|(name, (records, h))| {
                let digest = hex::encode(h.finalize());
                (name, TreeSummary { records, digest })
            })
            .collect()
    }
}

/// Opens the existing store at `location` and exports it to `path`.
pub async fn export_store(location: &Location, path: &Path) -> Result<Summary, ExportError> {
    let options = StoreOptions {
        create: false,
        min_free_bytes: 0,
        ..Default::default()
    };
    let store = Store::open_at(location, &options).await?;
    export(&store, path)
}

/// Reads and checks `path` first (a missing or damaged file changes nothing), then creates the
/// store at `location` (it must be empty) and imports the file into it.
pub async fn import_store(location: &Location, path: &Path) -> Result<Summary, ExportError> {
    let file = parse(path)?;
    let options = StoreOptions {
        min_free_bytes: 0,
        ..Default::default()
    };
    let store = Store::open_at(location, &options).await?;
    write(&store, file).await
}

/// Count and digest of every non-empty tree of `store`.
pub fn summarize(store: &Store) -> Result<Summary, StoreError> {
    let kv = store.t()?;
    let mut sums = Summer::default();
    for tree in TreeId::ALL {
        kv.scan(tree, Keys::All, Order::Forward, &mut |k, v| {
            sums.add(tree, k, v);
            Ok(true)
        })?;
    }
    Ok(sums.finish())
}

/// Writes every record of `store` to `path` (replaced atomically).
pub fn export(store: &Store, path: &Path) -> Result<Summary, ExportError> {
    let io = |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("partial");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut out = HashingWriter {
        inner: BufWriter::new(file),
        hash: Sha256::new(),
    };
    out.write_all(MAGIC).map_err(io)?;
    let kv = store.t()?;
    let mut sums = Summer::default();
    let mut count = 0u64;
    let mut failed = None;
    for tree in TreeId::ALL {
        let name = tree.name().as_bytes();
        kv.scan(tree, Keys::All, Order::Forward, &mut |k, v| {
            sums.add(tree, k, v);
            count += 1;
            let written = (|| {
                out.write_all(&[name.len() as u8])?;
                out.write_all(name)?;
                out.write_all(&(k.len() as u32).to_be_bytes())?;
                out.write_all(k)?;
                out.write_all(&(v.len() as u32).to_be_bytes())?;
                out.write_all(v)
            })();
            match written {
                Ok(()) => Ok(true),
                Err(e) => {
                    failed = Some(e);
                    Ok(false)
                }
            }
        })?;
        if let Some(e) = failed.take() {
            return Err(io(e));
        }
    }
    out.write_all(&[0]).map_err(io)?;
    out.write_all(&count.to_be_bytes()).map_err(io)?;
    let digest = out.hash.clone().finalize();
    let mut file = out.inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.write_all(&digest).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(sums.finish())
}

/// The records of an export file, checked whole (checksum, header, every record, count).
struct ExportFile {
    records: Vec<(TreeId, Vec<u8>, Vec<u8>)>,
    summary: Summary,
}

/// Imports `path` into `store`, which must be empty. The file is read and checked whole before
/// anything is written.
pub async fn import(store: &Store, path: &Path) -> Result<Summary, ExportError> {
    let file = parse(path)?;
    write(store, file).await
}

/// Reads `path` and checks it whole: checksum, header, every record, the count.
fn parse(path: &Path) -> Result<ExportFile, ExportError> {
    let format = |what: String| ExportError::Format {
        path: path.display().to_string(),
        what,
    };
    let bytes = std::fs::read(path).map_err(|source| ExportError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let body = bytes
        .len()
        .checked_sub(32)
        .filter(|&n| n >= MAGIC.len() + 9)
        .ok_or_else(|| format("too short".into()))?;
    if Sha256::digest(&bytes[..body])[..] != bytes[body..] {
        return Err(format(
            "its checksum does not match (cut short or changed)".into(),
        ));
    }
    if !bytes.starts_with(MAGIC) {
        return Err(format("it does not start with the export header".into()));
    }
    let mut r: &[u8] = &bytes[MAGIC.len()..body];
    let mut sums = Summer::default();
    let mut records = Vec::new();
    let short = |_| format("a record is cut short".into());
    loop {
        let mut len = [0u8; 1];
        r.read_exact(&mut len).map_err(short)?;
        if len[0] == 0 {
            break;
        }
        let mut name = vec![0u8; len[0] as usize];
        r.read_exact(&mut name).map_err(short)?;
        let name = String::from_utf8_lossy(&name).into_owned();
        let tree = TreeId::from_name(&name)
            .ok_or_else(|| format(format!("it has a tree '{name}' this coordinator does not know (written by a newer labfleet?)")))?;
        let key = read_block(&mut r).map_err(short)?;
        let value = read_block(&mut r).map_err(short)?;
        sums.add(tree, &key, &value);
        records.push((tree, key, value));
    }
    let mut n = [0u8; 8];
    r.read_exact(&mut n).map_err(short)?;
    if u64::from_be_bytes(n) != records.len() as u64 {
        return Err(format("its record count does not match".into()));
    }
    Ok(ExportFile {
        records,
        summary: sums.finish(),
    })
}

/// Writes a checked file into `store` (refused unless every tree is empty), then reads every
/// record back and compares count and digest per tree with the file.
async fn write(store: &Store, file: ExportFile) -> Result<Summary, ExportError> {
    let kv = store.kv()?;
    for tree in TreeId::ALL {
        if !kv.is_empty(tree)? {
            return Err(ExportError::NotEmpty(
                store.location().to_string(),
                tree.name(),
            ));
        }
    }
    let mut ops = Vec::new();
    for (tree, key, value) in file.records {
        ops.push(Op::Put(tree, key, value));
        if ops.len() >= IMPORT_BATCH {
            kv.apply(std::mem::take(&mut ops))?;
            store.flush().await?;
        }
    }
    kv.apply(ops)?;
    store.flush().await?;
    let expected = file.summary;
    let found = summarize(store)?;
    for tree in TreeId::ALL {
        let name = tree.name();
        let (e, f) = (
            expected.get(name).cloned().unwrap_or_default(),
            found.get(name).cloned().unwrap_or_default(),
        );
        if e != f {
            return Err(ExportError::Mismatch {
                store: store.location().to_string(),
                tree: name,
                found: f.records,
                found_digest: f.digest,
                expected: e.records,
                expected_digest: e.digest,
            });
        }
    }
    Ok(found)
}

/// A length-prefixed block; a length beyond what is left is an error, not an allocation.
fn read_block(r: &mut &[u8]) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > r.len() {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let (block, rest) = r.split_at(len);
    *r = rest;
    Ok(block.to_vec())
}

/// A writer that hashes what passes through.
struct HashingWriter<W: Write> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
