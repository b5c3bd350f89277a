//! `ferry cache status`: what the block caches under a cache folder hold,
//! read from the folders themselves (no store or key needed), plus the
//! live counters of the mounts using them.

use std::path::{Path, PathBuf};

use ferry_store::blockcache::{BlockCache, DEFAULT_QUOTA, Usage};
use serde::Serialize;
use serde_json::Value;

use crate::control::query_stats;
use crate::error::{Error, Result};

/// One store's block cache.
#[derive(Debug, Serialize)]
pub struct StoreCache {
    /// The store id (hex), also the cache folder's name.
    pub store_id: String,
    /// The cache folder.
    pub dir: PathBuf,
    /// Space used, the quota, pinned bytes.
    #[serde(flatten)]
    pub usage: Usage,
    /// Pinned paths.
    pub pins: Vec<Value>,
    /// Mounts using this cache now, with their counters.
    pub mounts: Vec<Value>,
}

/// A mount registered in a cache folder (`mounts/<pid>.json`).
pub(crate) fn register(cache: &Path, pid: u32, info: &Value) -> Result<PathBuf> {
    let dir = cache.join("mounts");
    ferry_store::private::create_dir_all(&dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let p = dir.join(format!("{pid}.json"));
    std::fs::write(&p, info.to_string()).map_err(|e| Error::io(format!("writing {}", p.display()), e))?;
    Ok(p)
}

/// Every store's block cache under `cache_dir`.
pub fn status(cache_dir: &Path) -> Result<Vec<StoreCache>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(cache_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(Error::io(format!("listing {}", cache_dir.display()), e)),
    };
    for ent in rd.flatten() {
        let dir = ent.path();
        let name = ent.file_name().to_string_lossy().into_owned();
        if name.len() != 32 || !name.bytes().all(|b| b.is_ascii_hexdigit()) || !dir.join("blocks").is_dir() {
            continue;
        }
        let quota = BlockCache::recorded_quota(&dir).unwrap_or(DEFAULT_QUOTA);
        let usage = BlockCache::usage_of(&dir, quota)?;
        let cache = BlockCache::open_existing(&dir, quota);
        let pins = cache
            .pins()?
            .iter()
            .map(|p| {
                let mut v: Value = serde_json::from_slice(&p.label).unwrap_or(Value::Null);
                v["blocks"] = p.blocks.len().into();
                v
            })
            .collect();
        let mut mounts = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir.join("mounts")) {
            for m in rd.flatten() {
                let Ok(text) = std::fs::read_to_string(m.path()) else { continue };
                let Ok(mut v) = serde_json::from_str::<Value>(&text) else { continue };
                let socket = PathBuf::from(v["socket"].as_str().unwrap_or_default());
                match query_stats(&socket) {
                    // A mount that was killed left its record: drop it.
                    Err(_) => {
                        let _ = std::fs::remove_file(m.path());
                    }
                    Ok(stats) => {
                        v["stats"] = stats.unwrap_or(Value::Null);
                        mounts.push(v);
                    }
                }
            }
        }
        out.push(StoreCache { store_id: name, dir, usage, pins, mounts });
    }
    out.sort_by(|a, b| a.store_id.cmp(&b.store_id));
    Ok(out)
}
