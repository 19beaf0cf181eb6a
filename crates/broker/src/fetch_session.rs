//! Incremental fetch sessions (KIP-227).
//!
//! A client opens a session with a full fetch (session id 0, epoch 0) and then
//! sends only what changed, with the epoch counting up. The broker remembers each
//! session's partitions and, per partition, what it last told the client, so an
//! incremental response carries only partitions with news: records, an error, or
//! a moved high watermark or log start offset.
//!
//! Concurrency: one std mutex over the cache; it is held only to look up or
//! update a session, never across I/O.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use strom_protocol::ErrorCode;
use uuid::Uuid;

pub type Key = (String, i32);

#[derive(Debug, Clone)]
pub struct PartState {
    pub topic_id: Uuid,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub last_hw: i64,
    pub last_log_start: i64,
}

#[derive(Debug)]
struct Session {
    next_epoch: i32,
    parts: IndexMap<Key, PartState>,
    last_used: Instant,
}

/// What the fetch handler should read, and how to answer.
#[derive(Debug)]
pub struct Plan {
    /// Session id to return (0 = sessionless).
    pub session_id: i32,
    /// Whether the response may omit partitions without news.
    pub incremental: bool,
    pub parts: Vec<(Key, PartState)>,
}

pub struct FetchSessions {
    inner: Mutex<(i32, HashMap<i32, Session>)>,
    max_sessions: usize,
}

/// A partition a fetch request names: key, topic id, fetch offset, max bytes.
pub type Requested = (Key, Uuid, i64, i32);

impl FetchSessions {
    pub fn new(max_sessions: usize) -> Self {
        FetchSessions { inner: Mutex::new((1, HashMap::new())), max_sessions }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (i32, HashMap<i32, Session>)> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies a request's session fields; returns what to read or a top-level error.
    pub fn plan(&self, session_id: i32, epoch: i32, requested: Vec<Requested>, forgotten: Vec<Key>) -> Result<Plan, ErrorCode> {
        let fresh = |r: &Requested| PartState { topic_id: r.1, fetch_offset: r.2, max_bytes: r.3, last_hw: -1, last_log_start: -1 };
        let mut guard = self.lock();
        let (next_id, sessions) = &mut *guard;
        if epoch == -1 {
            // Full sessionless fetch; closes the named session if any.
            if session_id != 0 {
                sessions.remove(&session_id);
            }
            let parts = requested.iter().map(|r| (r.0.clone(), fresh(r))).collect();
            return Ok(Plan { session_id: 0, incremental: false, parts });
        }
        if epoch == 0 {
            if session_id != 0 {
                sessions.remove(&session_id);
            }
            let mut parts = IndexMap::new();
            for r in &requested {
                parts.insert(r.0.clone(), fresh(r));
            }
            let list: Vec<_> = parts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            if sessions.len() >= self.max_sessions {
                return Ok(Plan { session_id: 0, incremental: false, parts: list });
            }
            let id = *next_id;
            *next_id = if *next_id == i32::MAX { 1 } else { *next_id + 1 };
            sessions.insert(id, Session { next_epoch: 1, parts, last_used: Instant::now() });
            return Ok(Plan { session_id: id, incremental: false, parts: list });
        }
        if session_id == 0 {
            return Err(ErrorCode::InvalidFetchSessionEpoch);
        }
        let s = sessions.get_mut(&session_id).ok_or(ErrorCode::FetchSessionIdNotFound)?;
        if s.next_epoch != epoch {
            return Err(ErrorCode::InvalidFetchSessionEpoch);
        }
        s.next_epoch = if epoch == i32::MAX { 1 } else { epoch + 1 };
        s.last_used = Instant::now();
        for k in forgotten {
            s.parts.shift_remove(&k);
        }
        for r in &requested {
            match s.parts.get_mut(&r.0) {
                Some(p) => {
                    p.fetch_offset = r.2;
                    p.max_bytes = r.3;
                    p.topic_id = r.1;
                }
                None => {
                    s.parts.insert(r.0.clone(), fresh(r));
                }
            }
        }
        let parts = s.parts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        Ok(Plan { session_id, incremental: true, parts })
    }

    /// Decides whether an incremental response includes a partition, recording
    /// what was sent. Full responses always include it.
    pub fn note_sent(&self, session_id: i32, key: &Key, hw: i64, log_start: i64, has_news: bool, incremental: bool) -> bool {
        if session_id == 0 {
            return true;
        }
        let mut guard = self.lock();
        let Some(s) = guard.1.get_mut(&session_id) else {
            return true;
        };
        let Some(p) = s.parts.get_mut(key) else {
            return !incremental;
        };
        let changed = has_news || p.last_hw != hw || p.last_log_start != log_start;
        p.last_hw = hw;
        p.last_log_start = log_start;
        !incremental || changed
    }

    pub fn forget_topic(&self, topic: &str) {
        let mut guard = self.lock();
        for s in guard.1.values_mut() {
            s.parts.retain(|k, _| k.0 != topic);
        }
    }

    pub fn expire(&self, idle: Duration) {
        let mut guard = self.lock();
        guard.1.retain(|_, s| s.last_used.elapsed() < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(t: &str, p: i32, off: i64) -> Requested {
        ((t.to_string(), p), Uuid::nil(), off, 1000)
    }

    #[test]
    fn session_lifecycle() {
        let s = FetchSessions::new(10);
        let plan = s.plan(0, 0, vec![req("a", 0, 0), req("a", 1, 5)], vec![]).unwrap();
        assert!(!plan.incremental);
        let id = plan.session_id;
        assert!(id > 0);
        // First incremental: nothing named, both partitions still fetched.
        let plan = s.plan(id, 1, vec![], vec![]).unwrap();
        assert!(plan.incremental);
        assert_eq!(plan.parts.len(), 2);
        // Wrong epoch.
        assert_eq!(s.plan(id, 1, vec![], vec![]).unwrap_err(), ErrorCode::InvalidFetchSessionEpoch);
        // Forget one, move the other.
        let plan = s.plan(id, 2, vec![req("a", 0, 9)], vec![("a".into(), 1)]).unwrap();
        assert_eq!(plan.parts.len(), 1);
        assert_eq!(plan.parts[0].1.fetch_offset, 9);
        assert_eq!(s.plan(77, 1, vec![], vec![]).unwrap_err(), ErrorCode::FetchSessionIdNotFound);
        // Close.
        let plan = s.plan(id, -1, vec![req("a", 0, 9)], vec![]).unwrap();
        assert_eq!(plan.session_id, 0);
        assert_eq!(s.plan(id, 3, vec![], vec![]).unwrap_err(), ErrorCode::FetchSessionIdNotFound);
    }

    #[test]
    fn incremental_responses_carry_only_news() {
        let s = FetchSessions::new(10);
        let id = s.plan(0, 0, vec![req("a", 0, 0)], vec![]).unwrap().session_id;
        let k = ("a".to_string(), 0);
        assert!(s.note_sent(id, &k, 10, 0, false, false));
        assert!(!s.note_sent(id, &k, 10, 0, false, true));
        assert!(s.note_sent(id, &k, 11, 0, false, true));
        assert!(s.note_sent(id, &k, 11, 0, true, true));
    }
}
