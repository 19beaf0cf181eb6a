//! `strom group …`: list, describe (with lag), reset-offsets and delete.

use anyhow::{bail, Context};
use strom_client::Client;

pub enum Target {
    Earliest,
    Latest,
    Offset(i64),
    Datetime(i64),
    ShiftBy(i64),
}

pub async fn list(c: &mut Client) -> anyhow::Result<()> {
    let mut groups = c.list_groups().await?;
    groups.sort();
    for (id, _, state) in groups {
        println!("{id}\t{state}");
    }
    Ok(())
}

/// One row per partition the group has committed or is assigned:
/// committed offset, log end offset and lag = end - committed.
pub async fn describe(c: &mut Client, group: &str) -> anyhow::Result<()> {
    let info = c.describe_group(group).await?;
    let committed = c.fetch_offsets(group).await?;
    if info.state == "Dead" && committed.is_empty() {
        bail!("Consumer group '{group}' does not exist.");
    }
    println!("GROUP {group}  STATE {}  PROTOCOL {}  MEMBERS {}", info.state, info.protocol, info.members.len());
    let mut owner: Vec<((String, i32), String)> = Vec::new();
    for m in &info.members {
        println!(
            "MEMBER {}  INSTANCE {}  CLIENT {}  HOST {}  ASSIGNMENT {}",
            m.member_id,
            m.group_instance_id.as_deref().unwrap_or("-"),
            m.client_id,
            m.client_host,
            m.assignment.iter().map(|(t, ps)| format!("{t}:{ps:?}")).collect::<Vec<_>>().join(",")
        );
        for (t, ps) in &m.assignment {
            for p in ps {
                owner.push(((t.clone(), *p), m.member_id.clone()));
            }
        }
    }
    let mut rows: Vec<(String, i32)> = committed.iter().map(|(t, p, _, _)| (t.clone(), *p)).collect();
    rows.extend(owner.iter().map(|(k, _)| k.clone()));
    rows.sort();
    rows.dedup();
    println!("{:<30} {:>9} {:>15} {:>15} {:>10} CONSUMER-ID", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG");
    for (t, p) in rows {
        let current = committed.iter().find(|(ct, cp, _, _)| *ct == t && *cp == p).map(|(_, _, o, _)| *o).filter(|o| *o >= 0);
        let end = c.list_offset(&t, p, -1).await.ok();
        let lag = match (current, end) {
            (Some(cur), Some(e)) => (e - cur).max(0).to_string(),
            _ => "-".into(),
        };
        let who = owner.iter().find(|(k, _)| *k == (t.clone(), p)).map(|(_, m)| m.as_str()).unwrap_or("-");
        let show = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
        println!("{:<30} {:>9} {:>15} {:>15} {:>10} {who}", t, p, show(current), show(end), lag);
    }
    Ok(())
}

pub async fn reset(c: &mut Client, group: &str, topic: &str, target: Target, execute: bool) -> anyhow::Result<()> {
    let info = c.describe_group(group).await?;
    if !matches!(info.state.as_str(), "Empty" | "Dead") {
        bail!("Assignments can only be reset if the group '{group}' is inactive, but the current state is {}.", info.state);
    }
    let partitions = c.topic(topic, false).await?.partitions;
    let committed = c.fetch_offsets(group).await?;
    let mut plan = Vec::new();
    for p in partitions.iter().map(|p| p.partition) {
        let start = c.list_offset(topic, p, -2).await?;
        let end = c.list_offset(topic, p, -1).await?;
        let current = committed.iter().find(|(t, cp, o, _)| t == topic && *cp == p && *o >= 0).map(|(_, _, o, _)| *o);
        let wanted = match target {
            Target::Earliest => start,
            Target::Latest => end,
            Target::Offset(o) => o,
            Target::ShiftBy(n) => current.unwrap_or(start).saturating_add(n),
            Target::Datetime(ts) => match c.list_offset(topic, p, ts).await? {
                -1 => end,
                o => o,
            },
        };
        plan.push((topic.to_string(), p, wanted.clamp(start, end)));
    }
    println!("{:<30} {:>9} {:>12}", "TOPIC", "PARTITION", "NEW-OFFSET");
    for (t, p, o) in &plan {
        println!("{t:<30} {p:>9} {o:>12}");
    }
    if execute {
        c.commit_offsets(group, &plan).await?;
        println!("Offsets of group {group} reset.");
    } else {
        println!("Dry run: nothing changed. Add --execute to apply.");
    }
    Ok(())
}

pub async fn delete(c: &mut Client, group: &str) -> anyhow::Result<()> {
    c.delete_group(group).await?;
    println!("Deleted group {group}.");
    Ok(())
}

/// Milliseconds since the epoch from either a number or
/// `YYYY-MM-DDTHH:MM:SS[.fff][Z|±HH:MM]` (no zone means UTC).
pub fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let bad = || format!("cannot read '{s}' as YYYY-MM-DDTHH:MM:SS[.fff][Z|+HH:MM] or epoch milliseconds");
    let (date, rest) = s.split_once('T').with_context(bad)?;
    let d: Vec<i64> = date.split('-').map(|x| x.parse::<i64>()).collect::<Result<_, _>>().ok().with_context(bad)?;
    let [y, mo, da] = d[..] else { bail!(bad()) };
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, m) = z[1..].split_once(':').with_context(bad)?;
        (t, sign * (h.parse::<i64>().ok().with_context(bad)? * 60 + m.parse::<i64>().ok().with_context(bad)?))
    } else {
        (rest, 0)
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let t: Vec<i64> = hms.split(':').map(|x| x.parse::<i64>()).collect::<Result<_, _>>().ok().with_context(bad)?;
    let [h, mi, se] = t[..] else { bail!(bad()) };
    let ms: i64 = format!("{frac:0<3}")[..3].parse().ok().with_context(bad)?;
    // Days from civil (proleptic Gregorian), after Howard Hinnant's algorithm.
    let (y2, m2) = if mo <= 2 { (y - 1, mo + 9) } else { (y, mo - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(((days * 86_400 + h * 3600 + mi * 60 + se) - offset_min * 60) * 1000 + ms)
}

#[cfg(test)]
mod tests {
    use super::parse_datetime;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("0").unwrap(), 0);
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_datetime("2026-11-22T15:00:00.5Z").unwrap(), 1_795_359_600_500);
        assert_eq!(parse_datetime("2026-11-22T16:00:00+01:00").unwrap(), 1_795_359_600_000);
        assert!(parse_datetime("yesterday").is_err());
    }
}
