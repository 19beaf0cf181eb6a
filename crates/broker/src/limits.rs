//! Process limits a broker needs raised.

/// Raises the soft open-file limit (`RLIMIT_NOFILE`) to the hard limit, as the
/// Go runtime and many servers do: every partition holds descriptors, and the
/// usual soft default of 1,024 would stop a broker at a few hundred
/// partitions. Returns (soft limit before, soft limit now), or None when there
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
