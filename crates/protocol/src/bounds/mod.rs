//! A bounds check over request bodies, run before the `kafka-protocol` codec sees them.
//!
//! The codec sizes `Vec::with_capacity(n)` from array counts it reads off the wire,
//! and an allocation that cannot be served aborts the process. This module walks a
//! request body with a table of its field layout ([`tables`]) and checks, for every
//! array, that `count × (smallest possible element on the wire)` fits in the bytes
//! that remain, and for every string and byte field that its length fits. It reads
//! exactly what the codec reads, in the same order, so a body that passes can only
//! make the codec allocate in proportion to its real content.
//!
//! The walk is iterative over fields and recursive only over nesting, which the
//! tables bound (at most four levels). It allocates nothing.

mod tables;

use kafka_protocol::messages::ApiKey;

/// The highest version a field can apply to (the tables' "and later").
pub const MAX: i16 = i16::MAX;

/// A field's wire type.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    I8,
    I16,
    I32,
    I64,
    F64,
    Bool,
    Uuid,
    UVarint,
    Str,
    CStr,
    Bytes,
    CBytes,
    Arr(&'static Ty),
    CArr(&'static Ty),
    Struct(&'static Schema),
    /// A nullable struct: an i8 marker, then the struct when the marker is 1
    /// (the codec reads any other marker as null).
    OptStruct(&'static Schema),
}

/// A field present in versions `lo..=hi`.
#[derive(Debug)]
pub struct Field {
    pub lo: i16,
    pub hi: i16,
    pub ty: Ty,
}

/// A tagged field: the codec decodes known tags in place, so the walk does too.
#[derive(Debug)]
pub struct Tagged {
    pub tag: u32,
    pub lo: i16,
    pub hi: i16,
    pub ty: Ty,
}

/// The layout of one message or nested struct.
#[derive(Debug)]
pub struct Schema {
    /// First version with a tagged-field section, if any.
    pub flexible: Option<i16>,
    pub fields: &'static [Field],
    pub tagged: &'static [Tagged],
}

impl Schema {
    fn is_flexible(&self, v: i16) -> bool {
        self.flexible.is_some_and(|f| v >= f)
    }
}

/// Why a body failed the check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BoundsError {
    #[error("body ends inside a field at byte {0}")]
    Truncated(usize),
    #[error("array at byte {at} claims {count} elements of at least {min} bytes, but only {remaining} bytes remain")]
    ImpossibleCount { at: usize, count: u64, min: usize, remaining: usize },
    #[error("tag {tag} is not valid in this version")]
    InvalidTag { tag: u32 },
    #[error("no layout known for {0:?}")]
    UnknownApi(ApiKey),
}

/// The layout of a request body, for the APIs the broker accepts.
pub fn request_schema(api: ApiKey) -> Option<&'static Schema> {
    tables::request(api)
}

/// Checks a request body (positioned after the header) for `api` at `version`.
/// Returns how many bytes the codec will read, which is what the walk read.
pub fn check_request(api: ApiKey, version: i16, body: &[u8]) -> Result<usize, BoundsError> {
    let schema = tables::request(api).ok_or(BoundsError::UnknownApi(api))?;
    let mut w = Walker { buf: body, pos: 0 };
    w.schema(schema, version)?;
    Ok(w.pos)
}

struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn skip(&mut self, n: usize) -> Result<(), BoundsError> {
        if n > self.remaining() {
            return Err(BoundsError::Truncated(self.pos));
        }
        self.pos += n;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Result<[u8; N], BoundsError> {
        let bytes = self.buf.get(self.pos..self.pos + N).ok_or(BoundsError::Truncated(self.pos))?;
        self.pos += N;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// The codec's unsigned varint: at most five bytes; excess high bits are dropped.
    fn uvarint(&mut self) -> Result<u32, BoundsError> {
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.take::<1>()?;
            value |= (u32::from(b) & 0x7F) << (i * 7);
            if b < 0x80 {
                break;
            }
        }
        Ok(value)
    }

    fn count_fits(&self, at: usize, count: u64, elem: &Ty, v: i16) -> Result<(), BoundsError> {
        let min = min_size(elem, v).max(1);
        let remaining = self.remaining();
        if count.saturating_mul(min as u64) > remaining as u64 {
            return Err(BoundsError::ImpossibleCount { at, count, min, remaining });
        }
        Ok(())
    }

    fn elements(&mut self, count: u64, elem: &Ty, v: i16) -> Result<(), BoundsError> {
        for _ in 0..count {
            self.ty(elem, v)?;
        }
        Ok(())
    }

    fn ty(&mut self, ty: &Ty, v: i16) -> Result<(), BoundsError> {
        match ty {
            Ty::I8 | Ty::Bool => self.skip(1),
            Ty::I16 => self.skip(2),
            Ty::I32 => self.skip(4),
            Ty::I64 | Ty::F64 => self.skip(8),
            Ty::Uuid => self.skip(16),
            Ty::UVarint => self.uvarint().map(|_| ()),
            Ty::Str => {
                let n = i16::from_be_bytes(self.take()?);
                self.skip(n.max(0) as usize)
            }
            Ty::Bytes => {
                let n = i32::from_be_bytes(self.take()?);
                self.skip(n.max(0) as usize)
            }
            Ty::CStr | Ty::CBytes => {
                let n = self.uvarint()?;
                self.skip(n.saturating_sub(1) as usize)
            }
            Ty::Arr(elem) => {
                let at = self.pos;
                let n = i32::from_be_bytes(self.take()?);
                let count = n.max(0) as u64;
                self.count_fits(at, count, elem, v)?;
                self.elements(count, elem, v)
            }
            Ty::CArr(elem) => {
                let at = self.pos;
                let count = u64::from(self.uvarint()?.saturating_sub(1));
                self.count_fits(at, count, elem, v)?;
                self.elements(count, elem, v)
            }
            Ty::Struct(s) => self.schema(s, v),
            Ty::OptStruct(s) => {
                let [present] = self.take::<1>()?;
                if present == 1 {
                    self.schema(s, v)?;
                }
                Ok(())
            }
        }
    }

    fn schema(&mut self, s: &Schema, v: i16) -> Result<(), BoundsError> {
        for f in s.fields {
            if v >= f.lo && v <= f.hi {
                self.ty(&f.ty, v)?;
            }
        }
        if s.is_flexible(v) {
            let n = self.uvarint()?;
            for _ in 0..n {
                let tag = self.uvarint()?;
                let size = self.uvarint()?;
                match s.tagged.iter().find(|t| t.tag == tag) {
                    Some(t) if v >= t.lo && v <= t.hi => self.ty(&t.ty, v)?,
                    Some(_) => return Err(BoundsError::InvalidTag { tag }),
                    None => self.skip(size as usize)?,
                }
            }
        }
        Ok(())
    }
}

/// The fewest bytes a value of this type can take on the wire at version `v`.
pub fn min_size(ty: &Ty, v: i16) -> usize {
    match ty {
        Ty::I8 | Ty::Bool | Ty::UVarint | Ty::CStr | Ty::CBytes | Ty::CArr(_) | Ty::OptStruct(_) => 1,
        Ty::I16 | Ty::Str => 2,
        Ty::I32 | Ty::Bytes | Ty::Arr(_) => 4,
        Ty::I64 | Ty::F64 => 8,
        Ty::Uuid => 16,
        Ty::Struct(s) => {
            let fields: usize = s.fields.iter().filter(|f| v >= f.lo && v <= f.hi).map(|f| min_size(&f.ty, v)).sum();
            fields + usize::from(s.is_flexible(v))
        }
    }
}

#[cfg(test)]
mod tests;
