//! Records of `__consumer_offsets`, in Kafka's layout.
//!
//! Keys start with a version: 0 or 1 is an offset commit (group, topic,
//! partition), 2 is group metadata (group). Values are versioned too; a null
//! value is a tombstone. Strings are i16-length-prefixed, byte arrays
//! i32-length-prefixed, everything big-endian. Decoding checks every length
//! against the bytes present.

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// One record of `__consumer_offsets`. `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecord {
    Offset { group: String, topic: String, partition: i32, value: Option<OffsetValue> },
    Group { group: String, value: Option<GroupValue> },
}

impl GroupRecord {
    pub fn group(&self) -> &str {
        match self {
            GroupRecord::Offset { group, .. } | GroupRecord::Group { group, .. } => group,
        }
    }

    /// (key, value) bytes.
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        let mut k = Vec::new();
        match self {
            GroupRecord::Offset { group, topic, partition, value } => {
                put_i16(&mut k, 1);
                put_str(&mut k, group);
                put_str(&mut k, topic);
                k.extend_from_slice(&partition.to_be_bytes());
                let v = value.as_ref().map(|o| {
                    let mut v = Vec::new();
                    put_i16(&mut v, 3);
                    v.extend_from_slice(&o.offset.to_be_bytes());
                    v.extend_from_slice(&o.leader_epoch.to_be_bytes());
                    put_str(&mut v, &o.metadata);
                    v.extend_from_slice(&o.commit_timestamp.to_be_bytes());
                    v
                });
                (k, v)
            }
            GroupRecord::Group { group, value } => {
                put_i16(&mut k, 2);
                put_str(&mut k, group);
                let v = value.as_ref().map(|g| {
                    let mut v = Vec::new();
                    put_i16(&mut v, 3);
                    put_str(&mut v, &g.protocol_type);
                    v.extend_from_slice(&g.generation.to_be_bytes());
                    put_opt_str(&mut v, g.protocol.as_deref());
                    put_opt_str(&mut v, g.leader.as_deref());
                    v.extend_from_slice(&g.state_timestamp.to_be_bytes());
                    v.extend_from_slice(&(g.members.len() as i32).to_be_bytes());
                    for m in &g.members {
                        put_str(&mut v, &m.member_id);
                        put_opt_str(&mut v, m.group_instance_id.as_deref());
                        put_str(&mut v, &m.client_id);
                        put_str(&mut v, &m.client_host);
                        v.extend_from_slice(&m.rebalance_timeout_ms.to_be_bytes());
                        v.extend_from_slice(&m.session_timeout_ms.to_be_bytes());
                        put_bytes(&mut v, &m.subscription);
                        put_bytes(&mut v, &m.assignment);
                    }
                    v
                });
                (k, v)
            }
        }
    }

    /// Decodes a record; `None` for keys of unknown versions (skipped on replay).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<GroupRecord>, DecodeError> {
        let mut r = Reader(key);
        match r.i16()? {
            0 | 1 => {
                let group = r.string()?;
                let topic = r.string()?;
                let partition = r.i32()?;
                let value = match value {
                    None => None,
                    Some(v) => {
                        let mut r = Reader(v);
                        let version = r.i16()?;
                        let offset = r.i64()?;
                        let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
                        let metadata = r.string()?;
                        let commit_timestamp = r.i64()?;
                        Some(OffsetValue { offset, leader_epoch, metadata, commit_timestamp })
                    }
                };
                Ok(Some(GroupRecord::Offset { group, topic, partition, value }))
            }
            2 => {
                let group = r.string()?;
                let value = match value {
                    None => None,
                    Some(v) => Some(decode_group_value(v)?),
                };
                Ok(Some(GroupRecord::Group { group, value }))
            }
            _ => Ok(None),
        }
    }
}

/// One batch of `__consumer_offsets` as a replay sees it: transactional offset
/// commits stay pending until their producer's marker, so the batch header
/// matters, not only its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayBatch {
    /// A batch of group records. `transactional` batches (TxnOffsetCommit) carry
    /// the producer id whose marker completes them.
    Records { producer_id: i64, transactional: bool, records: Vec<GroupRecord> },
    /// A transaction marker (control batch) of `producer_id`: commit or abort.
    Marker { producer_id: i64, commit: bool },
}

/// Reads a control record's key (version i16, type i16): `Some(true)` for a
/// COMMIT marker (type 1), `Some(false)` for ABORT (type 0), `None` for other
/// control records or keys too short to hold a type.
pub fn decode_marker(key: &[u8]) -> Option<bool> {
    let mut r = Reader(key);
    let _version = r.i16().ok()?;
    match r.i16().ok()? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

fn decode_group_value(v: &[u8]) -> Result<GroupValue, DecodeError> {
    let mut r = Reader(v);
    let version = r.i16()?;
    if version != 3 {
        return Err(DecodeError(format!("group metadata value version {version}")));
    }
    let protocol_type = r.string()?;
    let generation = r.i32()?;
    let protocol = r.opt_string()?;
    let leader = r.opt_string()?;
    let state_timestamp = r.i64()?;
    let n = r.i32()?;
    if n < 0 {
        return Err(DecodeError("negative member count".into()));
    }
    let mut members = Vec::new();
    for _ in 0..n {
        members.push(MemberValue {
            member_id: r.string()?,
            group_instance_id: r.opt_string()?,
            client_id: r.string()?,
            client_host: r.string()?,
            rebalance_timeout_ms: r.i32()?,
            session_timeout_ms: r.i32()?,
            subscription: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(GroupValue { protocol_type, generation, protocol, leader, state_timestamp, members })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad __consumer_offsets record: {0}")]
pub struct DecodeError(pub String);

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError(format!("need {n} bytes, have {}", self.0.len())));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn i16(&mut self) -> Result<i16, DecodeError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }
    fn opt_string(&mut self) -> Result<Option<String>, DecodeError> {
        let n = self.i16()?;
        if n < 0 {
            return Ok(None);
        }
        let b = self.take(n as usize)?;
        Ok(Some(String::from_utf8_lossy(b).into_owned()))
    }
    fn string(&mut self) -> Result<String, DecodeError> {
        Ok(self.opt_string()?.unwrap_or_default())
    }
    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.i32()?;
        if n < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(n as usize)?))
    }
}

fn put_i16(out: &mut Vec<u8>, v: i16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(i16::MAX as usize)];
    put_i16(out, b.len() as i16);
    out.extend_from_slice(b);
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => put_i16(out, -1),
        Some(s) => put_str(out, s),
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as i32).to_be_bytes());
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let recs = vec![
            GroupRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(OffsetValue { offset: 42, leader_epoch: 0, metadata: "m".into(), commit_timestamp: 9 }),
            },
            GroupRecord::Offset { group: "g".into(), topic: "t".into(), partition: 3, value: None },
            GroupRecord::Group {
                group: "g".into(),
                value: Some(GroupValue {
                    protocol_type: "consumer".into(),
                    generation: 4,
                    protocol: Some("range".into()),
                    leader: Some("m1".into()),
                    state_timestamp: 7,
                    members: vec![MemberValue {
                        member_id: "m1".into(),
                        group_instance_id: Some("i1".into()),
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        rebalance_timeout_ms: 300000,
                        session_timeout_ms: 45000,
                        subscription: Bytes::from_static(b"sub"),
                        assignment: Bytes::from_static(b"asg"),
                    }],
                }),
            },
            GroupRecord::Group { group: "g".into(), value: None },
        ];
        for r in recs {
            let (k, v) = r.encode();
            assert_eq!(GroupRecord::decode(&k, v.as_deref()).unwrap(), Some(r));
        }
    }

    #[test]
    fn markers_decode_by_type() {
        assert_eq!(decode_marker(&[0, 0, 0, 1]), Some(true));
        assert_eq!(decode_marker(&[0, 0, 0, 0]), Some(false));
        assert_eq!(decode_marker(&[0, 0, 0, 5]), None);
        assert_eq!(decode_marker(&[0, 0, 0]), None);
    }

    #[test]
    fn truncated_records_are_errors() {
        let (k, v) = GroupRecord::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 1,
            value: Some(OffsetValue { offset: 1, leader_epoch: 0, metadata: String::new(), commit_timestamp: 0 }),
        }
        .encode();
        let v = v.unwrap();
        assert!(GroupRecord::decode(&k[..k.len() - 1], Some(&v)).is_err());
        assert!(GroupRecord::decode(&k, Some(&v[..v.len() - 1])).is_err());
        assert_eq!(GroupRecord::decode(&[0, 9], None).unwrap(), None);
    }
}
