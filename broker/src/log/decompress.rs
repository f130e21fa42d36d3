//! Bounded decompression of stored record batches.
//!
//! Batches are stored as producers compressed them (unless the topic's
//! `compression.type` names a codec), so the broker only decompresses when
//! it must look inside one (a timestamp lookup within a batch, compaction,
//! keyless records sent to a compacted topic, recompression). A batch is at most `max.message.bytes` compressed, but
//! a crafted one can expand a thousandfold; every codec here therefore stops
//! at [`MAX_DECOMPRESSED_BATCH_BYTES`] and reports the batch as corrupt instead
//! of exhausting memory. Formats are Kafka's: gzip, LZ4 frames, zstd frames,
//! and snappy in the xerial framing Java clients use, or raw.

use std::io::Read;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes};
use kafka_protocol::records::{Compression, RecordBatchDecoder, RecordSet};

use super::batch::{BatchHeader, check_records};

/// Largest decompressed size of one batch's records.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 256 << 20;

const XERIAL_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// Decodes one whole record batch, decompressing within the bound and
/// checking the records' structure (see [`check_records`]) before the
/// decoder allocates anything from their counts.
pub fn decode_batch(buf: &mut Bytes) -> anyhow::Result<RecordSet> {
    let header = BatchHeader::parse(buf).map_err(anyhow::Error::new)?;
    RecordBatchDecoder::decode_with_custom_compression(
        buf,
        Some(|records: &mut Bytes, compression| {
            let plain = decompress(records, compression, MAX_DECOMPRESSED_BATCH_BYTES)?;
            check_records(&plain, header.records_count).map_err(anyhow::Error::new)?;
            Ok(plain)
        }),
    )
}

/// Decompresses `compressed` with `compression`, refusing output over `limit` bytes.
pub fn decompress(compressed: &mut Bytes, compression: Compression, limit: usize) -> anyhow::Result<Bytes> {
    let input = compressed.copy_to_bytes(compressed.remaining());
    match compression {
        Compression::None => Ok(input),
        Compression::Gzip => read_bounded(flate2::read::GzDecoder::new(input.reader()), limit, "gzip"),
        Compression::Lz4 => {
            let decoder = lz4::Decoder::new(input.reader()).context("reading the lz4 frame header")?;
            read_bounded(decoder, limit, "lz4")
        }
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(input.reader()).context("reading the zstd frame")?;
            read_bounded(decoder, limit, "zstd")
        }
        Compression::Snappy => snappy(&input, limit),
    }
}

fn read_bounded(reader: impl Read, limit: usize, codec: &str) -> anyhow::Result<Bytes> {
    let mut out = Vec::new();
    reader.take(limit as u64 + 1).read_to_end(&mut out).with_context(|| format!("decompressing {codec} records"))?;
    if out.len() > limit {
        bail!("{codec} records expand past {limit} bytes");
    }
    Ok(Bytes::from(out))
}

/// Snappy, xerial-framed (magic, then length-prefixed blocks) or raw.
fn snappy(input: &[u8], limit: usize) -> anyhow::Result<Bytes> {
    let mut decoder = snap::raw::Decoder::new();
    let mut block = |compressed: &[u8], out: &mut Vec<u8>| -> anyhow::Result<()> {
        let len = snap::raw::decompress_len(compressed).context("reading a snappy block length")?;
        if out.len() + len > limit {
            bail!("snappy records expand past {limit} bytes");
        }
        let start = out.len();
        out.resize(start + len, 0);
        decoder.decompress(compressed, &mut out[start..]).context("decompressing a snappy block")?;
        Ok(())
    };
    let mut out = Vec::new();
    let Some(mut rest) = input.strip_prefix(&XERIAL_MAGIC[..]) else {
        block(input, &mut out)?;
        return Ok(Bytes::from(out));
    };
    while !rest.is_empty() {
        let Some((len, tail)) = rest.split_first_chunk::<4>() else { bail!("truncated snappy block length") };
        let len = u32::from_be_bytes(*len) as usize;
        let Some((compressed, tail)) = tail.split_at_checked(len) else { bail!("truncated snappy block") };
        block(compressed, &mut out)?;
        rest = tail;
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::batch::tests::encode_batch;

    #[test]
    fn every_codec_decodes_like_kafka_protocol() {
        for compression in
            [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd]
        {
            let batch = Bytes::from(encode_batch(20, 100, 1000, compression));
            let ours = decode_batch(&mut batch.clone()).unwrap();
            let theirs = RecordBatchDecoder::decode(&mut batch.clone()).unwrap();
            assert_eq!(ours.records, theirs.records, "{compression:?}");
        }
    }

    #[test]
    fn a_bomb_is_refused_at_the_limit() {
        for compression in [Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            // 2 MiB of one byte compresses to a few KiB; a 1 MiB limit stops it.
            let batch = Bytes::from(encode_batch(1, 2 << 20, 1000, compression));
            assert!(batch.len() < 200 << 10, "{compression:?} compressed to {}", batch.len());
            let mut buf = batch.clone();
            let mut records = buf.split_off(61);
            let err = decompress(&mut records, compression, 1 << 20).unwrap_err();
            assert!(err.to_string().contains("expand past"), "{compression:?}: {err}");
            assert!(
                decompress(&mut batch.slice(61..), compression, 4 << 20).is_ok(),
                "{compression:?} within the limit"
            );
        }
    }
}
