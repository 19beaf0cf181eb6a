//! Process limits a broker needs raised.

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit, as the
/// Go runtime and many servers do: more room for connections and for the
/// segment-file cache ([`log_file_cache_size`]). Returns (soft limit before, soft limit now), or None when there
/// is nothing to raise or it cannot be read.
pub fn raise_open_files() -> Option<(u64, u64)> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    // An unlimited hard limit still cannot exceed the kernel's per-process ceiling.
    let ceiling = std::fs::read_to_string("/proc/sys/fs/nr_open").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(1 << 20);
    let target = limit.maximum.unwrap_or(ceiling).min(ceiling);
    if target <= soft {
        return Some((soft, soft));
    }
    match setrlimit(Resource::Nofile, Rlimit { current: Some(target), maximum: limit.maximum }) {
        Ok(()) => Some((soft, target)),
        Err(e) => {
            tracing::warn!(soft, hard = target, error = %e, "could not raise the open-file limit");
            Some((soft, soft))
        }
    }
}

/// How many segment `.log` files to keep open: `configured` if positive,
/// else a quarter of the open-file limit (the rest is for connections,
/// checkpoints and files opened briefly), at least 64.
pub fn log_file_cache_size(configured: i64, open_file_limit: Option<u64>) -> usize {
    if configured > 0 {
        return configured as usize;
    }
    let limit = open_file_limit.unwrap_or(1024).min(1 << 24) as usize;
    (limit / 4).max(64)
}

/// Logs the descriptor budget: descriptors in use against the limit, and the
/// segment-file cache's size, hits and misses (every few minutes).
pub fn log_descriptors() {
    let in_use = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).ok();
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let c = strom_storage::files::stats();
    tracing::info!(in_use = ?in_use, limit = ?limit, cached = c.open, capacity = c.capacity, hits = c.hits, misses = c.misses,
        "file descriptors (segment files are cached up to log.fd.cache.size)");
}
