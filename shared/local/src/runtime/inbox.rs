//! The inbox: a directory standing for S3 uploads. A file dropped at `inbox/a/b.csv` under the
//! data directory becomes the object `inbox/a/b.csv` in the local bucket, and the bucket's
//! notifications from `template.yaml` raise the same S3 event an upload raises in AWS.
//!
//! A file is taken only once its size has been the same on two consecutive scans, so a copy
//! still being written is not picked up half-way (writers that rename into place are best).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::blobs::LocalBlobs;
use tokio::sync::watch;

pub const INBOX_DIR: &str = "inbox";
pub const INBOX_SCAN_MS: u64 = 250;
/// Files above this size are refused, as S3 refuses a single PUT above 5 GiB. The file is
/// copied into the bucket, never read into memory, so size costs disk, not RAM.
pub const INBOX_FILE_BYTES_MAX: u64 = 5 * 1024 * 1024 * 1024;

pub async fn run(data_dir: PathBuf, blobs: Arc<LocalBlobs>, mut stop: watch::Receiver<bool>) {
    let root = data_dir.join(INBOX_DIR);
    if let Err(e) = tokio::fs::create_dir_all(&root).await {
        tracing::error!(dir = %root.display(), error = %e, "cannot create the inbox");
        return;
    }
    let mut sizes: HashMap<PathBuf, u64> = HashMap::new();
    loop {
        let files = tokio::task::spawn_blocking({
            let root = root.clone();
            move || list_files(&root)
        })
        .await
        .unwrap_or_default();
        let mut seen = HashMap::new();
        for (path, size) in files {
            if sizes.get(&path) == Some(&size) {
                take(&root, &path, size, blobs.as_ref()).await;
            } else {
                seen.insert(path, size);
            }
        }
        sizes = seen;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(INBOX_SCAN_MS)) => {}
            _ = stop.changed() => return,
        }
    }
}

async fn take(root: &Path, path: &Path, size: u64, blobs: &LocalBlobs) {
    let Ok(relative) = path.strip_prefix(root) else {
        return;
    };
    let key = format!(
        "{INBOX_DIR}/{}",
        relative.to_string_lossy().replace('\\', "/")
    );
    if size > INBOX_FILE_BYTES_MAX {
        tracing::error!(key, size, "inbox file too large; left in place");
        return;
    }
    let content_type = content_type_for(&key);
    match blobs.put_file(&key, path, content_type).await {
        // Removed only after the object (and its notification) is stored: a crash in between
        // uploads it again, which is what S3 would see from a retrying client too.
        Ok(_) => {
            if let Err(e) = tokio::fs::remove_file(path).await {
                tracing::warn!(key, error = %e, "uploaded but could not remove the inbox file");
            }
            tracing::info!(key, size, "inbox file uploaded");
        }
        Err(e) => tracing::warn!(key, error = %e, "inbox upload failed; will retry"),
    }
}

pub fn content_type_for(key: &str) -> &'static str {
    match key
        .rsplit('.')
        .next()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => "text/csv",
        Some("xml") => "application/xml",
        Some("json") => "application/json",
        Some("parquet") => "application/vnd.apache.parquet",
        Some("txt") => "text/plain",
        _ => "application/octet-stream",
    }
}

/// Regular files below `root`, skipping hidden files (editors' and copiers' temporaries).
fn list_files(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            match entry.metadata() {
                Ok(m) if m.is_dir() => dirs.push(entry.path()),
                Ok(m) if m.is_file() => out.push((entry.path(), m.len())),
                _ => {}
            }
        }
    }
    out
}
