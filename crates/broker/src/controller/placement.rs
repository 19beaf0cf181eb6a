//! Replica placement: spread replicas over brokers and racks, balance leaders.
//!
//! Brokers are ordered so that racks alternate (r1, r2, r3, r1, r2, …). Partition
//! `p`'s first replica (its preferred leader) is the broker at `(seed + p) % n`,
//! so leaders rotate over every broker. Followers follow at a distance that grows
//! every `n` partitions, as in Kafka, so follower sets also vary; among the
//! candidates, a broker on a rack the partition does not use yet comes first.

use std::collections::BTreeMap;

/// `count` assignments of `rf` distinct brokers each, for partitions numbered from `first`.
/// `brokers` are (id, rack); `rf` must not exceed their number.
pub fn place(brokers: &[(i32, Option<String>)], count: i32, rf: usize, first: i32, seed: u64) -> Vec<Vec<i32>> {
    let ordered = rack_alternating(brokers);
    let n = ordered.len();
    if n == 0 || rf == 0 {
        return Vec::new();
    }
    let rf = rf.min(n);
    let racks_total = ordered.iter().filter_map(|(_, r)| r.as_ref()).collect::<std::collections::BTreeSet<_>>().len();
    (0..count.max(0))
        .map(|i| {
            let p = (first + i) as u64;
            let start = ((seed % n as u64 + p) % n as u64) as usize;
            let shift = (p / n as u64) as usize;
            let mut chosen = vec![start];
            // Candidate followers in Kafka's shifted order.
            let candidates: Vec<usize> =
                if n > 1 { (0..n - 1).map(|j| (start + 1 + (shift + j) % (n - 1)) % n).collect() } else { Vec::new() };
            while chosen.len() < rf {
                let used: Vec<&Option<String>> = chosen.iter().map(|c| &ordered[*c].1).collect();
                let all_racks_used = racks_total == 0
                    || used.iter().filter_map(|r| r.as_ref()).collect::<std::collections::BTreeSet<_>>().len() >= racks_total;
                let pick = candidates
                    .iter()
                    .copied()
                    .filter(|c| !chosen.contains(c))
                    .find(|c| all_racks_used || ordered[*c].1.is_none() || !used.contains(&&ordered[*c].1))
                    .or_else(|| candidates.iter().copied().find(|c| !chosen.contains(c)));
                match pick {
                    Some(c) => chosen.push(c),
                    None => break,
                }
            }
            chosen.into_iter().map(|c| ordered[c].0).collect()
        })
        .collect()
}

/// Brokers sorted by id within each rack, then interleaved rack by rack.
fn rack_alternating(brokers: &[(i32, Option<String>)]) -> Vec<(i32, Option<String>)> {
    let mut by_rack: BTreeMap<Option<String>, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack.entry(rack.clone()).or_default().push(*id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let mut out = Vec::with_capacity(brokers.len());
    let mut round = 0;
    while out.len() < brokers.len() {
        for (rack, ids) in &by_rack {
            if let Some(id) = ids.get(round) {
                out.push((*id, rack.clone()));
            }
        }
        round += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaders_balance_and_replicas_are_distinct() {
        let brokers: Vec<_> = (1..=3).map(|i| (i, None)).collect();
        let a = place(&brokers, 6, 3, 0, 0);
        let mut leaders = BTreeMap::new();
        for r in &a {
            let mut d = r.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 3);
            *leaders.entry(r[0]).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
    }

    #[test]
    fn racks_are_spread() {
        let brokers = vec![(1, Some("a".to_string())), (2, Some("a".to_string())), (3, Some("b".to_string())), (4, Some("b".to_string()))];
        for seed in 0..8 {
            for r in place(&brokers, 8, 2, 0, seed) {
                let racks: Vec<_> = r.iter().map(|b| if *b <= 2 { "a" } else { "b" }).collect();
                assert_ne!(racks[0], racks[1], "{r:?}");
            }
        }
    }

    #[test]
    fn one_broker_and_more_partitions_later() {
        assert_eq!(place(&[(5, None)], 3, 1, 0, 9), vec![vec![5], vec![5], vec![5]]);
        assert_eq!(place(&[(1, None), (2, None)], 2, 1, 2, 0), vec![vec![1], vec![2]]);
    }
}
