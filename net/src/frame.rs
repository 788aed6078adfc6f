//! The wire format of one link.
//!
//! A sender opens one unidirectional QUIC stream per connection, writes [`PREAMBLE`] once and
//! then frames: a `u32` big-endian length followed by that many bytes of message. A length above
//! the receiver's `max_frame` is refused as soon as the four length bytes arrive, before any
//! of the body is buffered. Anything that is not a preamble followed by whole frames (other
//! bytes first, a stream that ends inside a frame) is garbage.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use thiserror::Error;

/// The first bytes of every stream: protocol name and version.
pub const PREAMBLE: [u8; 8] = *b"LANES\x00\x00\x01";

/// Bytes of the length prefix.
pub const LEN_BYTES: usize = 4;

/// Why a peer's stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// A frame announced more bytes than the limit.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    Oversize {
        /// Announced length.
        len: u64,
        /// The receiver's limit.
        max: usize,
    },
    /// The stream did not start with [`PREAMBLE`].
    #[error("stream does not start with the lanes-net preamble")]
    BadPreamble,
    /// The stream ended in the middle of a frame.
    #[error("stream ended inside a frame ({0} bytes pending)")]
    Truncated(usize),
}

/// Appends one frame (length prefix and body) to `out`.
pub fn encode_frame(msg: &[u8], out: &mut BytesMut) {
    out.reserve(LEN_BYTES + msg.len());
    out.put_u32(msg.len() as u32);
    out.put_slice(msg);
}

/// Incremental decoder for one stream. Memory is bounded by `max_frame` plus the largest chunk
/// pushed at once.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame: usize,
    buf: BytesMut,
    preamble_seen: usize,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameDecoder {
            max_frame,
            buf: BytesMut::new(),
            preamble_seen: 0,
        }
    }

    /// Feeds received bytes. Checks the preamble as it arrives, so garbage is refused on its
    /// first wrong byte.
    pub fn push(&mut self, mut data: &[u8]) -> Result<(), FrameError> {
        if self.preamble_seen < PREAMBLE.len() {
            let n = data.len().min(PREAMBLE.len() - self.preamble_seen);
            if data[..n] != PREAMBLE[self.preamble_seen..self.preamble_seen + n] {
                return Err(FrameError::BadPreamble);
            }
            self.preamble_seen += n;
            data = &data[n..];
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete frame, `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.buf.len() < LEN_BYTES {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        if len as u64 > self.max_frame as u64 {
            return Err(FrameError::Oversize {
                len: len as u64,
                max: self.max_frame,
            });
        }
        let need = LEN_BYTES.saturating_add(len as usize);
        if self.buf.len() < need {
            // Make room for the whole frame once instead of growing chunk by chunk.
            self.buf.reserve(need - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(LEN_BYTES);
        Ok(Some(self.buf.split_to(len as usize).freeze()))
    }

    /// Checks that the stream ended on a frame boundary.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.preamble_seen < PREAMBLE.len() && self.preamble_seen > 0 {
            return Err(FrameError::Truncated(self.preamble_seen));
        }
        if !self.buf.is_empty() {
            return Err(FrameError::Truncated(self.buf.len()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(msgs: &[&[u8]]) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.extend_from_slice(&PREAMBLE);
        for m in msgs {
            encode_frame(m, &mut out);
        }
        out.to_vec()
    }

    fn decode_all(d: &mut FrameDecoder) -> Result<Vec<Bytes>, FrameError> {
        let mut out = Vec::new();
        while let Some(f) = d.next_frame()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn round_trip_in_any_chunking() {
        let msgs: Vec<&[u8]> = vec![b"a", b"", b"hello world", &[7u8; 300]];
        let wire = stream(&msgs);
        for chunk in [1, 2, 3, 5, 8, 13, 1000] {
            let mut d = FrameDecoder::new(1000);
            let mut got = Vec::new();
            for c in wire.chunks(chunk) {
                d.push(c).unwrap();
                got.extend(decode_all(&mut d).unwrap());
            }
            d.finish().unwrap();
            assert_eq!(got, msgs, "chunk size {chunk}");
        }
    }

    #[test]
    fn oversize_is_refused_at_the_length_prefix() {
        let mut d = FrameDecoder::new(10);
        d.push(&PREAMBLE).unwrap();
        d.push(&11u32.to_be_bytes()).unwrap();
        assert_eq!(
            d.next_frame(),
            Err(FrameError::Oversize { len: 11, max: 10 })
        );
        let mut d = FrameDecoder::new(10);
        d.push(&stream(&[&[1u8; 10]])).unwrap();
        assert_eq!(d.next_frame().unwrap().unwrap().len(), 10);
    }

    #[test]
    fn garbage_and_truncation() {
        let mut d = FrameDecoder::new(10);
        assert_eq!(d.push(b"GET / HTTP/1.1"), Err(FrameError::BadPreamble));
        let mut d = FrameDecoder::new(10);
        d.push(&PREAMBLE[..3]).unwrap();
        assert_eq!(d.push(b"X"), Err(FrameError::BadPreamble));
        let mut d = FrameDecoder::new(10);
        d.push(&PREAMBLE[..3]).unwrap();
        assert_eq!(d.finish(), Err(FrameError::Truncated(3)));
        let mut d = FrameDecoder::new(10);
        let wire = stream(&[b"abc"]);
        d.push(&wire[..wire.len() - 1]).unwrap();
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated(6)));
        // An empty stream is fine.
        assert_eq!(FrameDecoder::new(10).finish(), Ok(()));
    }
}
