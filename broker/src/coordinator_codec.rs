//! Primitives of the coordinators' internal-topic record formats
//! (`__consumer_offsets`, `__transaction_state`): Kafka's big-endian
//! integers, `int16`-length strings, `int32`-length bytes and counts, and the
//! flexible encodings' unsigned varints, compact lengths and tagged fields.
//!
//! [`Reader`] is bounds-checked: it never panics on any input, and every
//! failure names the record and the field ([`FieldError`]). The record
//! formats themselves live with their coordinators (`group::codec`,
//! `txn::codec`); this module knows no record.

use bytes::{BufMut, BytesMut};

/// A field that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The bytes end before the field does.
    #[error("{record} is truncated: {field} needs {needed} more bytes, {left} left")]
    Truncated { record: &'static str, field: &'static str, needed: usize, left: usize },
    /// A length prefix is negative (null) where null is not allowed.
    #[error("{record} has a null or negative length for non-nullable field {field}")]
    UnexpectedNull { record: &'static str, field: &'static str },
    /// A string field is not UTF-8.
    #[error("{record} field {field} is not valid UTF-8")]
    InvalidUtf8 { record: &'static str, field: &'static str },
    /// An unsigned varint longer than 5 bytes.
    #[error("{record} field {field} has a malformed varint")]
    BadVarint { record: &'static str, field: &'static str },
}

/// A bounds-checked reader over one record's bytes.
pub struct Reader<'a> {
    buf: &'a [u8],
    record: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf`, naming `record` in errors.
    pub fn new(buf: &'a [u8], record: &'static str) -> Reader<'a> {
        Reader { buf, record }
    }

    /// The rest of the bytes, now named `record` (once a key type says which record it is).
    pub fn renamed(self, record: &'static str) -> Reader<'a> {
        Reader { buf: self.buf, record }
    }

    /// The error for a null `field` where null is not allowed.
    pub fn null(&self, field: &'static str) -> FieldError {
        FieldError::UnexpectedNull { record: self.record, field }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], FieldError> {
        if self.buf.len() < n {
            return Err(FieldError::Truncated { record: self.record, field, needed: n, left: self.buf.len() });
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn fixed<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], FieldError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, field)?);
        Ok(out)
    }

    /// An `int8`.
    pub fn i8(&mut self, field: &'static str) -> Result<i8, FieldError> {
        Ok(i8::from_be_bytes(self.fixed(field)?))
    }

    /// An `int16`.
    pub fn i16(&mut self, field: &'static str) -> Result<i16, FieldError> {
        Ok(i16::from_be_bytes(self.fixed(field)?))
    }

    /// An `int32`.
    pub fn i32(&mut self, field: &'static str) -> Result<i32, FieldError> {
        Ok(i32::from_be_bytes(self.fixed(field)?))
    }

    /// An `int64`.
    pub fn i64(&mut self, field: &'static str) -> Result<i64, FieldError> {
        Ok(i64::from_be_bytes(self.fixed(field)?))
    }

    /// `n` bytes of UTF-8.
    pub fn utf8(&mut self, n: usize, field: &'static str) -> Result<String, FieldError> {
        let bytes = self.take(n, field)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| FieldError::InvalidUtf8 { record: self.record, field })
    }

    /// A classic nullable string (`int16` length, negative: null).
    pub fn nullable_string(&mut self, field: &'static str) -> Result<Option<String>, FieldError> {
        match usize::try_from(self.i16(field)?) {
            Ok(n) => self.utf8(n, field).map(Some),
            Err(_) => Ok(None),
        }
    }

    /// A classic non-nullable string (`int16` length).
    pub fn string(&mut self, field: &'static str) -> Result<String, FieldError> {
        self.nullable_string(field)?.ok_or(self.null(field))
    }

    /// Classic non-nullable bytes (`int32` length).
    pub fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], FieldError> {
        let n = self.count(field)?;
        self.take(n, field)
    }

    /// A classic non-nullable array count (`int32`).
    pub fn count(&mut self, field: &'static str) -> Result<usize, FieldError> {
        self.len_i32(field)?.ok_or(self.null(field))
    }

    /// A classic array count (`int32`; -1, null, reads as 0) whose elements,
    /// of at least `min_size` bytes each, must fit in the bytes left: a count
    /// read from untrusted bytes never sizes an allocation beyond them.
    pub fn bounded_count(&mut self, field: &'static str, min_size: usize) -> Result<usize, FieldError> {
        let n = match self.i32(field)? {
            -1 => 0,
            n => usize::try_from(n).map_err(|_| self.null(field))?,
        };
        let needed = n.saturating_mul(min_size);
        if needed > self.buf.len() {
            return Err(FieldError::Truncated { record: self.record, field, needed, left: self.buf.len() });
        }
        Ok(n)
    }

    /// A classic nullable array count (`int32`, negative: null).
    pub fn len_i32(&mut self, field: &'static str) -> Result<Option<usize>, FieldError> {
        Ok(usize::try_from(self.i32(field)?).ok())
    }

    /// A compact length (unsigned varint N+1, 0: null).
    pub fn compact_len(&mut self, field: &'static str) -> Result<Option<usize>, FieldError> {
        Ok(self.uvarint(field)?.checked_sub(1).map(|n| n as usize))
    }

    /// An unsigned varint of at most 5 bytes.
    pub fn uvarint(&mut self, field: &'static str) -> Result<u32, FieldError> {
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.fixed::<1>(field)?;
            value |= ((b & 0x7f) as u32) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(FieldError::BadVarint { record: self.record, field })
    }

    /// Tagged fields, skipped.
    pub fn skip_tagged_fields(&mut self) -> Result<(), FieldError> {
        for _ in 0..self.uvarint("taggedFields")? {
            self.uvarint("tag")?;
            let size = self.uvarint("tagSize")? as usize;
            self.take(size, "taggedField")?;
        }
        Ok(())
    }
}

/// Writes a classic string (`int16` length). Names and ids stored here came
/// through the Kafka protocol, which bounds them by the same `i16` length; a
/// longer one would be cut at a character boundary, never panic.
pub fn put_string(buf: &mut BytesMut, s: &str) {
    let mut n = s.len().min(i16::MAX as usize);
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    buf.put_i16(n as i16);
    buf.put_slice(&s.as_bytes()[..n]);
}

/// Writes a classic nullable string (`int16` length, -1: null).
pub fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

/// Writes classic bytes (`int32` length).
pub fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

/// Writes an unsigned varint.
pub fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn strings_bytes_and_counts_read_what_is_written() {
        let mut buf = BytesMut::new();
        put_string(&mut buf, "héllo");
        put_nullable_string(&mut buf, None);
        put_bytes(&mut buf, &[1, 2, 3]);
        put_uvarint(&mut buf, 300);
        buf.put_i32(-1);
        let mut r = Reader::new(&buf, "test");
        assert_eq!(r.string("s"), Ok("héllo".to_string()));
        assert_eq!(r.nullable_string("n"), Ok(None));
        assert_eq!(r.bytes("b"), Ok(&[1u8, 2, 3][..]));
        assert_eq!(r.uvarint("v"), Ok(300));
        assert_eq!(r.len_i32("a"), Ok(None));
        assert_eq!(r.i8("end"), Err(FieldError::Truncated { record: "test", field: "end", needed: 1, left: 0 }));
    }

    #[test]
    fn nulls_where_not_allowed_and_bad_bytes_name_the_field() {
        assert_eq!(
            Reader::new(&[0xff, 0xff], "rec").string("name"),
            Err(FieldError::UnexpectedNull { record: "rec", field: "name" })
        );
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xfe], "rec").count("items"),
            Err(FieldError::UnexpectedNull { record: "rec", field: "items" })
        );
        assert_eq!(
            Reader::new(&[0, 1, 0xff], "rec").string("name"),
            Err(FieldError::InvalidUtf8 { record: "rec", field: "name" })
        );
        assert_eq!(
            Reader::new(&[0x80; 6], "rec").uvarint("len"),
            Err(FieldError::BadVarint { record: "rec", field: "len" })
        );
        assert_eq!(Reader::new(&[0], "rec").compact_len("c"), Ok(None));
    }

    #[test]
    fn bounded_counts_fit_in_the_bytes_left() {
        assert_eq!(Reader::new(&[0xff, 0xff, 0xff, 0xff], "rec").bounded_count("a", 4), Ok(0), "null");
        assert_eq!(
            Reader::new(&[0xff, 0xff, 0xff, 0xfe], "rec").bounded_count("a", 4),
            Err(FieldError::UnexpectedNull { record: "rec", field: "a" })
        );
        assert_eq!(
            Reader::new(&[0x7f, 0xff, 0xff, 0xff, 0, 0], "rec").bounded_count("a", 1),
            Err(FieldError::Truncated { record: "rec", field: "a", needed: i32::MAX as usize, left: 2 })
        );
        assert_eq!(Reader::new(&[0, 0, 0, 2, 0, 0, 0, 0], "rec").bounded_count("a", 2), Ok(2));
    }

    proptest! {
        #[test]
        fn reading_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut r = Reader::new(&bytes, "any");
            let _ = r.string("s");
            let _ = r.bytes("b");
            let _ = r.compact_len("c");
            let _ = r.skip_tagged_fields();
            let _ = r.i64("i");
        }
    }
}
