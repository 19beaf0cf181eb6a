//! The four Kafka codecs. Every decompression is capped: the output may not exceed
//! the limit the caller passes, so a small compressed batch cannot expand without
//! bound.

use std::io::{Read, Write};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Codec {
    pub fn from_attributes(attrs: i16) -> Option<Codec> {
        match attrs & 0x07 {
            0 => Some(Codec::None),
            1 => Some(Codec::Gzip),
            2 => Some(Codec::Snappy),
            3 => Some(Codec::Lz4),
            4 => Some(Codec::Zstd),
            _ => None,
        }
    }
    pub fn id(self) -> i16 {
        match self {
            Codec::None => 0,
            Codec::Gzip => 1,
            Codec::Snappy => 2,
            Codec::Lz4 => 3,
            Codec::Zstd => 4,
        }
    }
    pub fn parse(name: &str) -> Option<Codec> {
        match name {
            "none" | "uncompressed" => Some(Codec::None),
            "gzip" => Some(Codec::Gzip),
            "snappy" => Some(Codec::Snappy),
            "lz4" => Some(Codec::Lz4),
            "zstd" => Some(Codec::Zstd),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    #[error("decompressed size exceeds the limit of {0} bytes")]
    TooLarge(usize),
    #[error("{codec:?} data is corrupt: {reason}")]
    Corrupt { codec: Codec, reason: String },
}

fn corrupt(codec: Codec, e: impl std::fmt::Display) -> CompressionError {
    CompressionError::Corrupt { codec, reason: e.to_string() }
}

/// Reads at most `limit` bytes; one byte more means the data is over the limit.
fn read_capped(codec: Codec, r: impl Read, limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    r.take(limit as u64 + 1).read_to_end(&mut out).map_err(|e| corrupt(codec, e))?;
    if out.len() > limit {
        return Err(CompressionError::TooLarge(limit));
    }
    Ok(out)
}

const XERIAL_MAGIC: &[u8] = &[0x82, b'S', b'N', b'A', b'P', b'P', b'Y', 0];

fn snappy_raw(data: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CompressionError> {
    let n = snap::raw::decompress_len(data).map_err(|e| corrupt(Codec::Snappy, e))?;
    if out.len() + n > limit {
        return Err(CompressionError::TooLarge(limit));
    }
    let start = out.len();
    out.resize(start + n, 0);
    snap::raw::Decoder::new().decompress(data, &mut out[start..]).map_err(|e| corrupt(Codec::Snappy, e))?;
    Ok(())
}

/// Snappy as Kafka clients write it: either one raw block, or the xerial framing
/// (magic, two version words, then length-prefixed raw blocks).
fn snappy_decompress(data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    let mut out = Vec::new();
    if !data.starts_with(XERIAL_MAGIC) {
        snappy_raw(data, limit, &mut out)?;
        return Ok(out);
    }
    let mut rest = data.get(16..).ok_or_else(|| corrupt(Codec::Snappy, "short xerial header"))?;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err(corrupt(Codec::Snappy, "short xerial block length"));
        }
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let block = rest.get(4..4 + len).ok_or_else(|| corrupt(Codec::Snappy, "short xerial block"))?;
        snappy_raw(block, limit, &mut out)?;
        rest = &rest[4 + len..];
    }
    Ok(out)
}

/// Decompresses `data`, producing at most `limit` bytes.
pub fn decompress(codec: Codec, data: &[u8], limit: usize) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Codec::None => {
            if data.len() > limit {
                return Err(CompressionError::TooLarge(limit));
            }
            Ok(data.to_vec())
        }
        Codec::Gzip => read_capped(codec, flate2::read::MultiGzDecoder::new(data), limit),
        Codec::Snappy => snappy_decompress(data, limit),
        Codec::Lz4 => read_capped(codec, lz4_flex::frame::FrameDecoder::new(data), limit),
        Codec::Zstd => {
            let d = zstd::stream::read::Decoder::new(data).map_err(|e| corrupt(codec, e))?;
            read_capped(codec, d, limit)
        }
    }
}

/// Compresses `data` (used by Strom's own client).
pub fn compress(codec: Codec, data: &[u8]) -> Result<Vec<u8>, CompressionError> {
    match codec {
        Codec::None => Ok(data.to_vec()),
        Codec::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(data).map_err(|e| corrupt(codec, e))?;
            e.finish().map_err(|e| corrupt(codec, e))
        }
        Codec::Snappy => snap::raw::Encoder::new().compress_vec(data).map_err(|e| corrupt(codec, e)),
        Codec::Lz4 => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(data).map_err(|e| corrupt(codec, e))?;
            e.finish().map_err(|e| corrupt(codec, e))
        }
        Codec::Zstd => zstd::bulk::compress(data, 3).map_err(|e| corrupt(codec, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_codec_round_trips() {
        let data: Vec<u8> = (0..10_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        for c in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let z = compress(c, &data).unwrap();
            assert_eq!(decompress(c, &z, data.len()).unwrap(), data, "{c:?}");
        }
    }

    #[test]
    fn bombs_hit_the_cap() {
        let data = vec![0u8; 1 << 20];
        for c in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let z = compress(c, &data).unwrap();
            assert!(matches!(decompress(c, &z, 1000), Err(CompressionError::TooLarge(1000))), "{c:?}");
        }
    }

    #[test]
    fn xerial_snappy_decodes() {
        let data = b"hello hello hello hello".to_vec();
        let block = snap::raw::Encoder::new().compress_vec(&data).unwrap();
        let mut framed = XERIAL_MAGIC.to_vec();
        framed.extend_from_slice(&1u32.to_be_bytes());
        framed.extend_from_slice(&1u32.to_be_bytes());
        framed.extend_from_slice(&(block.len() as u32).to_be_bytes());
        framed.extend_from_slice(&block);
        assert_eq!(decompress(Codec::Snappy, &framed, 100).unwrap(), data);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for c in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            assert!(decompress(c, &[1, 2, 3, 4, 5, 6, 7, 8, 9], 100).is_err(), "{c:?}");
        }
    }
}
